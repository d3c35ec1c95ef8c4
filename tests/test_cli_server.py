"""`campaign server` through the real console script: faults give one line and leave nothing behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.errors import ServerError
from campaign.server.control.local_server import LocalServer, free_port

# What the console script runs (sys.exit turns the returned exit code of `status` into the status).
CAMPAIGN = [sys.executable, "-c", "import sys; from campaign.cli import main; sys.exit(main())"]


def campaign(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """Run the `campaign` command as a user would, in a separate process."""
    return subprocess.run([*CAMPAIGN, *args], capture_output=True, text=True, timeout=timeout)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], expected: str) -> None:
    """A non-zero exit with a single-line error that contains `expected`, and no traceback."""
    assert result.returncode != 0, result.stdout
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    assert lines and lines[-1].startswith("Error: "), result.stderr
    errors = [line for line in lines if line.startswith("Error: ")]
    assert len(errors) == 1 and expected in errors[0], result.stderr


def processes_of(home: Path) -> list[int]:
    """PIDs whose command line, working dir or environment mention home."""
    needle = str(home).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            cmdline = (entry / "cmdline").read_bytes()
            cwd = os.readlink(entry / "cwd").encode()
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if needle in cmdline or cwd.startswith(needle) or needle in environ:
            found.append(int(entry.name))
    return found


def assert_nothing_left(home: Path, pids: list[int] | tuple[int, ...] = ()) -> None:
    """No live process of this home, no PID files, no leaked temp dirs."""
    for pid in pids:
        assert not _alive(pid), f"pid {pid} still runs"
    assert processes_of(home) == []
    run_dir = home / "run"
    assert not list(run_dir.glob("*.pid")) if run_dir.exists() else True
    tmp = run_dir / "tmp"
    assert not tmp.exists() or list(tmp.iterdir()) == []


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _force_stop(home: Path) -> None:
    with contextlib.suppress(ServerError):
        LocalServer(home).stop()


# -- faults before anything starts ----------------------------------------------------------------


def test_stop_with_nothing_running(tmp_path: Path) -> None:
    result = campaign("server", "stop", "--home", str(tmp_path / "home"))
    assert_one_line_failure(result, "No local server is running")


def test_status_with_nothing_running(tmp_path: Path) -> None:
    home = tmp_path / "home"
    result = campaign("server", "status", "--json", "--home", str(home))
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["healthy"] is False
    assert report["pids"] == {"redis": None, "server": None, "worker": None}


def test_logs_before_any_start(tmp_path: Path) -> None:
    result = campaign("server", "logs", "--home", str(tmp_path / "home"))
    assert_one_line_failure(result, "No server log yet")


def test_start_on_a_port_in_use(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = campaign("server", "start", "--home", str(home), "--port", str(port))
    assert_one_line_failure(result, f"Port {port} on 127.0.0.1 is already in use")
    assert_nothing_left(home)


def test_start_in_a_data_dir_that_cannot_be_created(tmp_path: Path) -> None:
    # Tests run as root, whom chmod does not stop; a path below a regular file fails for everyone.
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    home = blocker / "sub"
    result = campaign("server", "start", "--home", str(home), "--port", str(free_port()))
    assert_one_line_failure(result, "is not writable")
    assert "--home" in result.stderr
    assert blocker.read_text() == "not a directory"
    assert processes_of(tmp_path) == []


def test_start_with_a_redis_that_does_not_answer(tmp_path: Path) -> None:
    home = tmp_path / "home"
    redis_url = f"redis://127.0.0.1:{free_port()}/0"
    began = time.monotonic()
    result = campaign(
        "server", "start", "--home", str(home), "--port", str(free_port()), "--redis-url", redis_url
    )
    elapsed = time.monotonic() - began
    assert_one_line_failure(result, f"Redis did not answer at {redis_url}")
    assert elapsed < 12, f"took {elapsed:.1f}s to give up on a closed port"
    assert_nothing_left(home)
    assert not (home / "server.json").exists()


# -- a running server -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def started(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A server started with `campaign server start --json`, stopped at the end whatever happens."""
    home = tmp_path_factory.mktemp("cli-server-home")
    port = free_port()
    try:
        result = campaign("server", "start", "--home", str(home), "--port", str(port), "--json")
        assert result.returncode == 0, result.stderr
        yield {"home": home, "port": port, "status": json.loads(result.stdout)}
    finally:
        _force_stop(home)


def test_start_prints_the_status_and_status_json_has_the_documented_keys(started: dict[str, Any]) -> None:
    home, port = started["home"], started["port"]
    assert started["status"]["url"] == f"http://127.0.0.1:{port}"
    assert started["status"]["healthy"] is True

    result = campaign("server", "status", "--json", "--home", str(home))
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert {"url", "healthy", "home", "credentials_file", "pids", "versions"} <= set(report)
    assert report["url"] == f"http://127.0.0.1:{port}"
    assert report["healthy"] is True
    assert report["home"] == str(home.resolve())
    assert report["credentials_file"] == str(home.resolve() / "credentials.json")
    assert set(report["pids"]) == {"redis", "server", "worker"}
    assert all(isinstance(pid, int) and _alive(pid) for pid in report["pids"].values())
    assert report["versions"]["argilla-server"] == "2.8.0"
    assert "argilla-campaign" in report["versions"]


def test_credentials_file_is_private_and_complete(started: dict[str, Any]) -> None:
    path = Path(started["status"]["credentials_file"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    creds = json.loads(path.read_text())
    assert {"api_url", "api_key", "username", "password"} <= set(creds)
    assert creds["api_url"] == started["status"]["url"]
    assert all(isinstance(creds[key], str) and creds[key] for key in ("api_key", "username", "password"))

    import requests

    me = requests.get(
        f"{creds['api_url']}/api/v1/me", headers={"X-Argilla-Api-Key": creds["api_key"]}, timeout=10
    )
    assert me.status_code == 200 and me.json()["username"] == creds["username"]


def test_start_while_already_running_with_the_same_options_is_success(started: dict[str, Any]) -> None:
    home, port = started["home"], started["port"]
    before = LocalServer(home).pids()
    result = campaign("server", "start", "--home", str(home), "--port", str(port))
    assert result.returncode == 0, result.stderr
    assert f"already running at http://127.0.0.1:{port}" in result.stdout
    as_json = campaign("server", "start", "--home", str(home), "--port", str(port), "--json")
    assert as_json.returncode == 0 and json.loads(as_json.stdout)["url"] == f"http://127.0.0.1:{port}"
    assert LocalServer(home).pids() == before


def test_start_while_already_running_with_other_options_names_them(started: dict[str, Any]) -> None:
    home, port = started["home"], started["port"]
    before = LocalServer(home).pids()
    other = free_port()
    result = campaign("server", "start", "--home", str(home), "--port", str(other), "--workers", "2")
    assert_one_line_failure(result, "already running")
    assert f"port {port} (asked {other})" in result.stderr and "workers 1 (asked 2)" in result.stderr
    assert "no-speedups" not in result.stderr
    assert LocalServer(home).pids() == before
    assert LocalServer(home).status().healthy


def test_logs_print_the_last_lines(started: dict[str, Any]) -> None:
    result = campaign("server", "logs", "server", "--home", str(started["home"]))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert '"owner"' in result.stdout  # the JSON line of the preparation step


def test_stale_pid_files_after_a_crash_then_stop_leaves_nothing(started: dict[str, Any]) -> None:
    home, port = started["home"], started["port"]
    crashed = [pid for pid in LocalServer(home).pids().values() if pid]
    assert len(crashed) == 3
    for pid in crashed:
        os.killpg(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in crashed) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list((home / "run").glob("*.pid")), "the crash should leave PID files behind"
    status = campaign("server", "status", "--json", "--home", str(home))
    assert status.returncode == 1
    assert sorted(json.loads(status.stdout)["stale"]) == ["redis", "server", "worker"]

    restarted = campaign("server", "start", "--home", str(home), "--port", str(port), "--json")
    assert restarted.returncode == 0, restarted.stderr
    running = [pid for pid in json.loads(restarted.stdout)["pids"].values() if pid]
    assert len(running) == 3 and not set(running) & set(crashed)
    tmp_dirs = list((home / "run" / "tmp").iterdir())
    assert tmp_dirs and all(any(str(pid) in d.name for pid in running) for d in tmp_dirs)

    stopped = campaign("server", "stop", "--home", str(home))
    assert stopped.returncode == 0, stopped.stderr
    assert "Stopped" in stopped.stderr
    assert_nothing_left(home, running + crashed)

    again = campaign("server", "stop", "--home", str(home))
    assert_one_line_failure(again, "No local server is running")
