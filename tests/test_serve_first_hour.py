"""The first hour with `scimgate serve`, as the README runs it: the URLs it prints and answers with
follow `--bind`, the demo organization is named, its token stays out of service logs, and what the
gateway writes is readable by its own user only."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from gateway_processes import SCIMGATE, free_port

USER = "urn:ietf:params:scim:schemas:core:2.0:User"


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    # GATEWAY_BIND is left at its default (127.0.0.1:8080): only --bind names the port
    env.update(GATEWAY_DATA_DIR=str(data_dir), GATEWAY_WEB_WORKERS="1")
    return env


def _wait_ready(url: str, proc: subprocess.Popen, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, "serve exited"
        try:
            if requests.get(url + "/readyz", timeout=3).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise AssertionError("serve did not become ready")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Invited:
    data_dir: Path
    url: str
    banner: str
    location: str
    mail: str


@pytest.fixture(scope="module")
def invited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Invited]:
    """`scimgate serve --bind 127.0.0.1:PORT` on a fresh data dir (stdout a pipe, as under a
    service manager), one user created with the demo token, and the invitation mail written."""
    data_dir = tmp_path_factory.mktemp("first") / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [SCIMGATE, "serve", "--bind", f"127.0.0.1:{port}"],
        env=_env(data_dir),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        _wait_ready(url, proc)
        banner = ""
        while "Bearer token:" not in banner:
            banner += proc.stdout.readline()
        base = re.search(r"SCIM base URL: (\S+)", banner).group(1)
        token = (data_dir / "demo-token").read_text().strip()
        created = requests.post(
            base + "/Users",
            json={
                "schemas": [USER],
                "userName": "ada@example.test",
                "emails": [{"value": "ada@example.test", "primary": True}],
            },
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        deadline = time.monotonic() + 60
        while not list((data_dir / "mail").glob("*.eml")) and time.monotonic() < deadline:
            time.sleep(0.2)
        mails = list((data_dir / "mail").glob("*.eml"))
        assert mails, "the background worker wrote no invitation mail"
        location = created.json()["meta"]["location"]
        yield Invited(data_dir, url, banner, location, mails[0].read_text())
    finally:
        _stop(proc)


def test_serve_bind_option_is_the_url_printed_and_answered(invited: Invited) -> None:
    base = re.search(r"SCIM base URL: (\S+)", invited.banner).group(1)
    assert base.startswith(invited.url + "/scim/v2/")
    assert invited.location.startswith(base + "/Users/")
    links = set(re.findall(r"https?://[^/\s\"']+", invited.mail.replace("=\n", "")))
    assert links == {invited.url}, "the invitation links point at the bound address"


def test_serve_names_the_demo_organization_beside_its_settings(invited: Invited) -> None:
    assert re.search(r"Organization:\s+Demo \(for the CLI: --org Demo\)", invited.banner)


def test_serve_writes_the_demo_token_to_a_private_file_when_not_on_a_terminal(
    invited: Invited,
) -> None:
    token_file = invited.data_dir / "demo-token"
    assert f"Bearer token:  in {token_file}" in invited.banner
    assert re.fullmatch(r"sgt_\S+\n", token_file.read_text())
    assert token_file.read_text().strip() not in invited.banner


def test_data_dir_is_private_and_so_is_every_file_the_gateway_writes(invited: Invited) -> None:
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    assert mode(invited.data_dir) == 0o700
    files = [p for p in invited.data_dir.rglob("*") if p.is_file()]
    names = {p.name for p in files}
    assert {"scimgate.db", "secret_key", "demo-token"} <= names
    assert any(name.endswith(".eml") for name in names)
    readable = {str(p.relative_to(invited.data_dir)): oct(mode(p)) for p in files}
    assert {name: m for name, m in readable.items() if int(m, 8) & 0o077} == {}
    for directory in (p for p in invited.data_dir.rglob("*") if p.is_dir()):
        assert mode(directory) & 0o077 == 0, directory


def test_serve_prints_the_demo_token_on_a_terminal_and_writes_no_file(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [SCIMGATE, "serve", "--bind", f"127.0.0.1:{port}", "--no-worker"],
        env=_env(data_dir),
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
    )
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"Bearer token:" not in seen or not seen.endswith(b"\n"):
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            if select.select([leader], [], [], 1)[0]:
                seen += os.read(leader, 4096)
        _wait_ready(f"http://127.0.0.1:{port}", proc)
    finally:
        _stop(proc)
        os.close(leader)
    text = seen.decode()
    token = re.search(r"Bearer token:\s+(sgt_\S+)", text).group(1)
    base = re.search(r"SCIM base URL: (\S+)", text).group(1)
    assert base.startswith(f"http://127.0.0.1:{port}/scim/v2/")
    assert not (data_dir / "demo-token").exists()
    assert len(token) > 30


def _admin_create(data_dir: Path, *args: str, password: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SCIMGATE, "admin", "create", *args],
        input=password + "\n",
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_admin_create_takes_a_piped_password_without_a_warning(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    subprocess.run([SCIMGATE, "db", "upgrade"], env=_env(data_dir), check=True, timeout=60)
    for args in (["ada@example.test"], ["bob@example.test", "--password-stdin"]):
        done = _admin_create(data_dir, *args, password="correct horse battery staple")
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr
        assert f"Created provider_admin {args[0]}." in done.stdout
