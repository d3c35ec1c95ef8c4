"""Run the local server in the foreground, as the main process of a container (a Hugging Face Space).

Redis, argilla-server and the worker are children of this process and write to its stdout. SIGTERM and
SIGINT stop them cleanly (exit 0); if one of them dies, the others are stopped and the exit code is 1,
so that the container's supervisor restarts it.

Environment read here (the names a Space sets, or the official Argilla Space's secret names):
  OWNER_API_KEY, OWNER_PASSWORD   the owner's credentials, instead of generated ones
  OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OPENID_PROVIDER_URL, OAUTH_SCOPES, SPACE_HOST
                                  set by a Space with `hf_oauth: true`: turns on "Sign in with Hugging Face"
  CAMPAIGN_WORKSPACE              the workspace volunteers who sign in with Hugging Face join
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import signal
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Protocol

from campaign.config import write_private_json, write_private_text
from campaign.errors import ServerError
from campaign.processes import pid_alive
from campaign.server.control.local_server import OWNER_USERNAME, LocalServer, ServerOptions

ENV_OWNER_API_KEY = "OWNER_API_KEY"
ENV_OWNER_PASSWORD = "OWNER_PASSWORD"
ENV_WORKSPACE = "CAMPAIGN_WORKSPACE"
DEFAULT_WORKSPACE = "argilla"
HF_PROVIDER_URL = "https://huggingface.co"
OAUTH_FILENAME = "oauth.yaml"
# argilla-server refuses shorter passwords at sign-in.
MIN_PASSWORD_LENGTH = 8

log = logging.getLogger("campaign.server")


class Backups(Protocol):
    """What the foreground loop asks of the database copies (campaign.deploy.db_backup.BackupSchedule)."""

    def restore_if_empty(self) -> None: ...

    def tick(self) -> None: ...

    def final(self) -> None: ...


@dataclass(frozen=True)
class SpaceOAuth:
    """The OAuth app a Space with `hf_oauth: true` gets: its client and the Space's public host."""

    client_id: str
    client_secret: str
    space_host: str
    provider_url: str = HF_PROVIDER_URL
    scopes: str = "openid profile"

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SpaceOAuth | None:
        """The OAuth settings of the Space's environment, or None outside a Space with `hf_oauth: true`."""
        client_id = env.get("OAUTH_CLIENT_ID")
        if not client_id:
            return None
        missing = [name for name in ("OAUTH_CLIENT_SECRET", "SPACE_HOST") if not env.get(name)]
        if missing:
            msg = (
                f"OAUTH_CLIENT_ID is set but {', '.join(missing)} is not. A Space with 'hf_oauth: true' "
                "sets all of them; outside a Space, unset OAUTH_CLIENT_ID or set the others."
            )
            raise ServerError(msg)
        return cls(
            client_id=client_id,
            client_secret=env["OAUTH_CLIENT_SECRET"],
            space_host=env["SPACE_HOST"].removeprefix("https://").rstrip("/"),
            provider_url=(env.get("OPENID_PROVIDER_URL") or HF_PROVIDER_URL).rstrip("/"),
            scopes=env.get("OAUTH_SCOPES") or "openid profile",
        )

    def config_yaml(self, workspace: str) -> str:
        """argilla-server's OAuth file: the huggingface provider, no secret (those travel in the environment)."""
        import yaml

        config = {
            "providers": [
                {
                    "name": "huggingface",
                    # Behind the Space's proxy the request's host is not the public one.
                    "redirect_uri": f"https://{self.space_host}/oauth/huggingface/callback",
                }
            ],
            "allowed_workspaces": [{"name": workspace}],
        }
        return str(yaml.safe_dump(config, sort_keys=False))

    def server_env(self, config_file: Path) -> dict[str, str]:
        """The settings argilla-server's `huggingface` provider reads (OAUTH2_HUGGINGFACE_*, SOCIAL_AUTH_*)."""
        return {
            "ARGILLA_AUTH_OAUTH_CFG": str(config_file),
            "OAUTH2_HUGGINGFACE_CLIENT_ID": self.client_id,
            "OAUTH2_HUGGINGFACE_CLIENT_SECRET": self.client_secret,
            "OAUTH2_HUGGINGFACE_SCOPE": self.scopes,
            "SOCIAL_AUTH_HUGGINGFACE_OIDC_ENDPOINT": self.provider_url,
            "SOCIAL_AUTH_HUGGINGFACE_AUTHORIZATION_URL": f"{self.provider_url}/oauth/authorize",
            "SOCIAL_AUTH_HUGGINGFACE_ACCESS_TOKEN_URL": f"{self.provider_url}/oauth/token",
        }


def owner_credentials_from_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """The owner's username, password and API key from OWNER_API_KEY/OWNER_PASSWORD, if set."""
    api_key = env.get(ENV_OWNER_API_KEY)
    password = env.get(ENV_OWNER_PASSWORD)
    if not api_key and not password:
        return None
    if not api_key or not password:
        missing = ENV_OWNER_PASSWORD if api_key else ENV_OWNER_API_KEY
        msg = f"{missing} is not set. Set both {ENV_OWNER_API_KEY} and {ENV_OWNER_PASSWORD}, or neither."
        raise ServerError(msg)
    if len(password) < MIN_PASSWORD_LENGTH:
        msg = f"{ENV_OWNER_PASSWORD} must have at least {MIN_PASSWORD_LENGTH} characters."
        raise ServerError(msg)
    return {"username": OWNER_USERNAME, "password": password, "api_key": api_key}


def session_secret(api_key: str) -> str:
    """The key that signs sign-in tokens: stable across restarts and HTTP workers, derived from the owner's key."""
    return hmac.new(api_key.encode(), b"argilla-campaign session tokens", hashlib.sha256).hexdigest()


def start_command(port: int) -> list[str]:
    """The command a container runs (the Space's Dockerfile CMD): the server on all interfaces, on port."""
    return ["campaign", "server", "start", "--foreground", "--host", "0.0.0.0", "--port", str(port)]


class StopRequested(BaseException):
    """SIGTERM or SIGINT arrived while the server was starting."""


def _exit_code(pid: int) -> int | None:
    """The exit code of a child that ended (reaping it), or None while it runs."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None if pid_alive(pid) else -1
    if done == 0:
        return None
    return os.waitstatus_to_exitcode(status)


def run_foreground(
    home: Path | str | None,
    options: ServerOptions,
    *,
    backups: Backups | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> int:
    """Start every process, then supervise until a signal (exit 0) or a child's death (exit 1)."""
    env = os.environ if env is None else env
    local = LocalServer(home)
    local.log_to_stdout = True
    local.home.mkdir(parents=True, exist_ok=True)
    owner = owner_credentials_from_env(env)
    oauth = SpaceOAuth.from_env(env)
    if owner is not None:
        # The launcher reads the owner from this 0600 file; the environment's values replace stored ones.
        write_private_json(
            local.credentials_file, {"api_url": f"http://{options.host}:{options.port}", **owner}
        )
    if oauth is not None:
        config_file = local.home / OAUTH_FILENAME
        write_private_text(config_file, oauth.config_yaml(env.get(ENV_WORKSPACE) or DEFAULT_WORKSPACE))
        local.extra_env.update(oauth.server_env(config_file))

    if backups is not None:
        # The web UI warns a Space without persistent storage that a restart loses data; copies make it wrong.
        local.extra_env["ARGILLA_SHOW_HUGGINGFACE_SPACE_PERSISTENT_STORAGE_WARNING"] = "false"

    stop = threading.Event()
    starting = True

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()
        if starting:
            raise StopRequested

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        try:
            if backups is not None:
                backups.restore_if_empty()
            # The key that signs sign-in tokens must be the same in every HTTP worker and after a restart.
            creds = local._credentials(options)
            local.extra_env["ARGILLA_AUTH_SECRET_KEY"] = session_secret(creds["api_key"])
            status = local.start(options, timeout=timeout)
        except StopRequested:
            # The server may have answered requests before it was reported healthy: copy what they wrote.
            log.info("Stopped during start.")
            if backups is not None:
                backups.final()
            return 0
        starting = False
        log.info("Argilla is running at %s (home %s).", status.url, local.home)
        children = {name: pid for name, pid in local.pids().items() if pid}
        exit_code = 0
        while not stop.wait(1.0):
            dead = {name: code for name, pid in children.items() if (code := _exit_code(pid)) is not None}
            if dead:
                for name, code in dead.items():
                    log.error("The %s process exited with code %s; stopping the others.", name, code)
                exit_code = 1
                break
            if backups is not None:
                backups.tick()
        if exit_code == 0:
            log.info("Stopping on signal.")
        local._stop_processes({name: pid for name, pid in children.items() if pid_alive(pid)})
        local._clean_stale_runtime()
        # Once the server has stopped, no answer can arrive after the copy.
        if backups is not None:
            backups.final()
        return exit_code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
