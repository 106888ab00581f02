"""Real scimgate processes for tests: `serve` (gunicorn on a free loopback port) and `worker`."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

SCIMGATE = str(Path(sys.executable).with_name("scimgate"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Served:
    """`scimgate serve` (or another command, e.g. `worker`) as a child process."""

    def __init__(
        self, data_dir: Path, *args: str, command: str = "serve", env: dict | None = None
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GATEWAY_DATA_DIR": str(data_dir),
            "GATEWAY_BIND": f"127.0.0.1:{self.port}",
            "GATEWAY_PUBLIC_URL": self.url,
            "GATEWAY_WEB_WORKERS": "2",
        }
        self.env.pop("GATEWAY_DATABASE_URL", None)
        self.env.update(env or {})
        self.proc = subprocess.Popen(
            [SCIMGATE, command, *args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output = ""

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"serve exited: {self.proc.stdout.read()}")
            try:
                if requests.get(self.url + "/readyz", timeout=3).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("serve did not become ready")

    def demo_settings(self) -> tuple[str, str, str]:
        """The banner `serve` prints for the demo organization (read from its output), its SCIM
        base URL, and the token from the file it is written to when stdout is not a terminal."""
        banner = ""
        while "Bearer token:" not in banner:
            line = self.proc.stdout.readline()
            assert line, f"serve printed no demo organization: {banner}"
            banner += line
        base = re.search(r"SCIM base URL: (\S+)", banner).group(1)
        data_dir = Path(self.env["GATEWAY_DATA_DIR"])
        return banner, base, (data_dir / "demo-token").read_text().strip()

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.output += self.proc.stdout.read()
        return self.output
