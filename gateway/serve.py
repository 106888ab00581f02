"""Run the WSGI app under gunicorn from inside `scimgate serve` (no separate config file)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from gateway.config import Config


class _Gunicorn(BaseApplication):
    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self.gateway_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):  # type: ignore[no-untyped-def]
        from gateway.app import create_app

        return create_app(self.gateway_config)


def _child_exit(_server, worker) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def run_gunicorn(config: Config, *, bind: str, workers: int) -> None:
    options = {
        "bind": bind,
        "workers": workers,
        "worker_class": "gthread",
        "threads": 4,
        "accesslog": None,  # the app writes its own access line, without query strings
        "errorlog": "-",
        "timeout": 60,
        "graceful_timeout": 20,
        "proc_name": "scimgate",
        "control_socket_disable": True,
        "child_exit": _child_exit,
    }
    _Gunicorn(config, options).run()
