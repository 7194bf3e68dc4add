"""`closewise serve --workers N`: uvicorn starts N processes on the app factory, and each builds the app from the
settings the command was given (handed over in the environment), so both cores of a small server answer."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from closewise.services.auth import issue_token
from closewise.services.users import add_user
from closewise.settings import Settings
from closewise.web.app import SETTINGS_VARIABLE, app_from_environment, settings_environment
from tests.cli_runner import run_cli


def test_the_factory_builds_the_app_from_the_settings_it_is_handed(engine: Engine, database_url: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    given = Settings(database_url=database_url, debug=True, session_hours=3, token_minutes=7)
    environment = settings_environment(given)
    assert json.loads(environment[SETTINGS_VARIABLE])["token_minutes"] == 7
    monkeypatch.setenv(SETTINGS_VARIABLE, environment[SETTINGS_VARIABLE])
    monkeypatch.setenv("CLOSEWISE_DATABASE_URL", "sqlite:////nowhere/else.db")  # the handed settings win
    app = app_from_environment()
    try:
        assert app.state.settings == given
    finally:
        app.state.engine.dispose()


def test_without_handed_settings_the_factory_reads_the_database_url(engine: Engine, database_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SETTINGS_VARIABLE, raising=False)
    monkeypatch.setenv("CLOSEWISE_DATABASE_URL", database_url)
    app = app_from_environment()
    try:
        assert app.state.settings.database_url == database_url
    finally:
        app.state.engine.dispose()


def test_serve_with_workers_hands_uvicorn_the_factory_and_the_settings(
        engine: Engine, database_url: str, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **options: calls.append((app, options)))
    monkeypatch.delenv(SETTINGS_VARIABLE, raising=False)
    result = run_cli(capsys, monkeypatch, "--db", database_url, "serve", "--port", "8123", "--workers", "2")
    assert result.code == 0, result.stdout + result.stderr
    ((app, options),) = calls
    assert app == "closewise.web.app:app_from_environment"
    assert options["factory"] is True and options["workers"] == 2 and options["port"] == 8123
    assert json.loads(os.environ[SETTINGS_VARIABLE])["database_url"] == database_url
    monkeypatch.delenv(SETTINGS_VARIABLE)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="counts the worker processes through /proc")
def test_two_workers_serve_the_api(engine: Engine, database_url: str, tmp_path: Path) -> None:
    admin = add_user(engine, email="ada.admin@example.com", role="admin")
    token = issue_token(engine, user_id=admin.id, minutes=10).secret
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if key not in (SETTINGS_VARIABLE, "CLOSEWISE_DATABASE_URL")}
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        server = subprocess.Popen(
            [sys.executable, "-c", "from closewise.cli.app import main; main()", "--db", database_url, "serve",
             "--port", str(port), "--workers", "2"], env=env, stdout=subprocess.DEVNULL, stderr=sink)
    try:
        deadline = time.monotonic() + 120
        answered: list[int] = []
        while time.monotonic() < deadline and len(answered) < 20:
            assert server.poll() is None, log.read_text()
            request = urllib.request.Request(f"http://127.0.0.1:{port}/api/me",
                                             headers={"Authorization": f"Bearer {token}"})
            try:
                with urllib.request.urlopen(request, timeout=5) as response:  # loopback only
                    answered.append(response.status)
            except OSError:  # not listening yet (an HTTP error status would also land here, and fail below)
                time.sleep(0.3)
        assert answered and set(answered) == {200}
        # uvicorn's supervisor keeps one spawned process per worker.
        assert len([pid for pid in _children(server.pid) if _is_worker(pid)]) == 2
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def _is_worker(pid: int) -> bool:
    """A process started by multiprocessing's spawn (uvicorn's workers are; its resource tracker is not)."""
    try:
        return b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
