"""Run the WSGI app under gunicorn from inside `scimgate serve` (no separate config file).

Does: the worker model. gunicorn manages the processes (workers, graceful stop, /metrics files of
dead workers); each worker is an asyncio server (uvicorn on uvloop, httptools parser) that reads
requests, and runs the Flask app in a small thread pool only once a request's headers and whole
body have arrived. A slow or silent peer therefore holds a few kilobytes and a timer, never a
thread: headers must arrive within `header_timeout` seconds and the body within `body_timeout`,
or the connection is closed (408). Each worker takes at most `max_connections` connections
(503 past that) and closes an idle keep-alive connection after `keep_alive` seconds.
Does not: know about routes, databases or the body size limit (that is the app's
MAX_CONTENT_LENGTH, read from the app).
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import logging
import resource
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from gunicorn.app.base import BaseApplication
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn_worker import UvicornWorker

from gateway.config import Config
from gateway.serve_limits import APP_THREADS_KEY, ServeLimits

log = logging.getLogger("gateway.serve")


# --- the WSGI bridge --------------------------------------------------------------------------

_Send = Callable[[dict[str, Any]], Any]
_Receive = Callable[[], Any]


class _BodyTooLarge(Exception):
    pass


class WsgiBridge:
    """An ASGI app that buffers a request completely, then runs the WSGI app in a thread.

    The body is read on the event loop, up to the app's MAX_CONTENT_LENGTH and within
    `body_timeout`; a body past the limit is not read at all: the app sees the request with a
    CONTENT_LENGTH past its limit and no bytes, answers 413 its own way (a SCIM error on SCIM
    routes), and the connection closes after the answer.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], limits: ServeLimits) -> None:
        self.app = app
        self.limits = limits
        config = getattr(app, "config", {})
        self.max_body: int | None = config.get("MAX_CONTENT_LENGTH")
        if hasattr(config, "__setitem__"):  # the app's shares follow `serve --threads`
            config[APP_THREADS_KEY] = limits.threads
        self._pool: ThreadPoolExecutor | None = None

    def _executor(self) -> ThreadPoolExecutor:
        # Made on first use, in the worker process (after gunicorn's fork).
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.limits.threads, thread_name_prefix="app")
        return self._pool

    async def __call__(self, scope: dict[str, Any], receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":  # lifespan and websockets are switched off in the worker
            return
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        declared = _content_length(headers)
        too_large = False
        body = b""
        try:
            if declared is not None and self.max_body is not None and declared > self.max_body:
                too_large = True
            else:
                async with asyncio.timeout(self.limits.body_timeout):
                    body = await self._read_body(receive)
        except TimeoutError:
            await _plain(send, 408, b"request body not received in time\n")
            return
        except _BodyTooLarge:
            too_large = True
        except _Disconnected:
            return
        environ = _environ(scope, body)
        if too_large:
            environ["CONTENT_LENGTH"] = str((self.max_body or 0) + 1)
            environ["wsgi.input"] = io.BytesIO()
        loop = asyncio.get_running_loop()
        context = contextvars.Context()  # the request's own: Flask's context vars stay in it
        unsent = await loop.run_in_executor(
            self._executor(),
            context.run,
            _run_wsgi,
            self.app,
            environ,
            partial(_send_from_thread, loop, send, self.limits.body_timeout),
            too_large,
        )
        for message in unsent:  # the thread is free again while a slow peer reads the answer
            await send(message)

    async def _read_body(self, receive: _Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise _Disconnected
            chunk = message.get("body", b"")
            size += len(chunk)
            if self.max_body is not None and size > self.max_body:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class _Disconnected(Exception):
    pass


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    # PATH_INFO is the percent-decoded bytes as latin-1 (PEP 3333), as gunicorn gives it; from the
    # raw path, so that bytes that are not UTF-8 reach the app as sent.
    raw_path: bytes = scope.get("raw_path") or scope["path"].encode()
    server = scope.get("server") or ("127.0.0.1", 80)
    client = scope.get("client")
    query: bytes = scope.get("query_string", b"")
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "RAW_URI": (raw_path + (b"?" + query if query else b"")).decode("latin-1"),
        "SERVER_NAME": str(server[0]),
        "SERVER_PORT": str(server[1]),
        "SERVER_PROTOCOL": f"HTTP/{scope.get('http_version', '1.1')}",
        "REMOTE_ADDR": client[0] if client else "",
        "REMOTE_PORT": str(client[1]) if client else "",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope.get("scheme", "http"),
        "wsgi.input": io.BytesIO(body),
        "wsgi.input_terminated": True,
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    for name, value in scope["headers"]:
        key = name.decode("latin-1")
        if "_" in key:
            continue  # as gunicorn: X_Forwarded_For must not pass for X-Forwarded-For
        if key in {"content-length", "transfer-encoding"}:
            continue  # the body is complete and de-chunked: its length is len(body)
        text = value.decode("latin-1")
        if key == "content-type":
            environ["CONTENT_TYPE"] = text
            continue
        var = "HTTP_" + key.upper().replace("-", "_")
        environ[var] = f"{environ[var]},{text}" if var in environ else text
    return environ


def _run_wsgi(
    app: Callable[..., Iterable[bytes]],
    environ: dict[str, Any],
    emit: Callable[[dict[str, Any]], None],
    close_after: bool,
) -> list[dict[str, Any]]:
    """In an app thread: call the app and collect its answer. A body that ends within 256 KiB
    is returned whole, for the event loop to send once the thread is free; a longer one (a CSV
    export) is streamed from here through `emit`, each piece waiting for the peer within
    `body_timeout`, and nothing is returned."""
    started: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return chunks.append

    chunks: list[bytes] = []
    result = app(environ, start_response)
    streaming = False
    try:
        size = 0
        for chunk in result:
            if not chunk:
                continue
            if streaming:
                emit({"type": "http.response.body", "body": chunk, "more_body": True})
                continue
            chunks.append(chunk)
            size += len(chunk)
            if size > 256 * 1024:
                emit(_start_message(started, close_after))
                emit({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})
                chunks.clear()
                streaming = True
    finally:
        if hasattr(result, "close"):
            result.close()
    if streaming:
        emit({"type": "http.response.body", "body": b"", "more_body": False})
        return []
    return [
        _start_message(started, close_after),
        {"type": "http.response.body", "body": b"".join(chunks), "more_body": False},
    ]


def _start_message(started: list[Any], close_after: bool) -> dict[str, Any]:
    status, headers = started
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if close_after:  # an unread body is still on the socket: nothing more can be read from it
        raw = [(k, v) for k, v in raw if k != b"connection"] + [(b"connection", b"close")]
    return {"type": "http.response.start", "status": int(status.split(" ", 1)[0]), "headers": raw}


def _send_from_thread(
    loop: asyncio.AbstractEventLoop, send: _Send, timeout: float, message: dict[str, Any]
) -> None:
    asyncio.run_coroutine_threadsafe(asyncio.wait_for(send(message), timeout), loop).result()


async def _plain(send: _Send, status: int, text: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(text)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": text, "more_body": False})


# --- the connection: header deadline and size ---------------------------------------------------


class DeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools connection, plus what it lacks for peers on the internet: a deadline
    for the request line and headers (from the connection's start, or from the first byte of
    the next request on a kept-alive connection) and a bound on their size."""

    def __init__(self, *args: Any, limits: ServeLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._header_timer: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._header_bytes = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._start_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            self._header_bytes += len(data)
            if self._header_bytes > self.limits.max_header_bytes:
                self._refuse(b"431 Request Header Fields Too Large", "headers too large")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if not self._in_headers:
            self._start_headers()

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._stop_header_timer()
        super().on_headers_complete()

    def _start_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        self._stop_header_timer()
        self._header_timer = self.loop.call_later(self.limits.header_timeout, self._headers_late)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_late(self) -> None:
        self._header_timer = None
        if self.transport.is_closing():
            return
        if self._header_bytes or self.cycle is None:
            self._refuse(b"408 Request Timeout", "no complete request headers in time")
        else:  # an idle kept-alive connection that never began another request
            self.transport.close()

    def _refuse(self, status: bytes, reason: str) -> None:
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "-"
        log.info("closed the connection from %s: %s", client, reason)
        self.transport.write(
            b"HTTP/1.1 " + status + b"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        )
        self.transport.close()


# --- gunicorn ---------------------------------------------------------------------------------


class GatewayWorker(UvicornWorker):
    """A gunicorn worker running one asyncio server with the deadlines of `ServeLimits`."""

    CONFIG_KWARGS: dict[str, Any] = {
        "loop": "uvloop" if sys.platform != "win32" else "asyncio",
        "http": DeadlineProtocol,
        "ws": "none",
        "lifespan": "off",
        "interface": "asgi3",
        "access_log": False,  # the app writes its own access line, without query strings
        "proxy_headers": False,  # GATEWAY_TRUST_PROXY (in the app) decides whom to believe
        "server_header": False,
        "date_header": True,
    }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits: ServeLimits = self.app.limits
        self.config.http = partial(DeadlineProtocol, limits=limits)
        self.config.limit_concurrency = limits.max_connections
        self.config.timeout_keep_alive = limits.keep_alive
        # Requests in progress get this long to finish on SIGTERM, inside gunicorn's own bound.
        self.config.timeout_graceful_shutdown = max(1, int(self.cfg.graceful_timeout) - 2)

    def init_process(self) -> None:
        _raise_open_file_limit(self.app.limits.max_connections + 256)
        super().init_process()


def _raise_open_file_limit(wanted: int) -> None:
    """Each connection is a file descriptor; the usual soft limit (1024) is below what a worker
    is meant to hold, the hard limit usually is not."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class _Gunicorn(BaseApplication):
    def __init__(self, config: Config, options: dict[str, Any], limits: ServeLimits) -> None:
        self.gateway_config = config
        self.options = options
        self.limits = limits
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> WsgiBridge:
        from gateway.app import create_app

        return WsgiBridge(create_app(self.gateway_config), self.limits)


def _child_exit(_server, worker) -> None:  # type: ignore[no-untyped-def]
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def run_gunicorn(
    config: Config, *, bind: str, workers: int, limits: ServeLimits | None = None
) -> None:
    options = {
        "bind": bind,
        "workers": workers,
        "worker_class": GatewayWorker,
        "accesslog": None,  # the app writes its own access line, without query strings
        "errorlog": "-",
        "timeout": 60,
        "graceful_timeout": 20,
        "proc_name": "scimgate",
        "control_socket_disable": True,
        "child_exit": _child_exit,
    }
    _Gunicorn(config, options, limits or ServeLimits()).run()
