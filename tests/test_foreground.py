"""`campaign server start --foreground`: the container's start command, run here with a Space-like environment."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from campaign.server.control.foreground import start_command
from campaign.server.control.local_server import LocalServer, free_port
from tests.server_helpers import api, create_annotator

OWNER_API_KEY = "owner-key-from-the-space-secrets-0123456789"
OWNER_PASSWORD = "owner-password-from-secrets"
CLIENT_ID = "00000000-1111-2222-3333-444444444444"
CLIENT_SECRET = "oauth-client-secret-never-printed"
SPACE_HOST = "my-org-dutch-dpo-annotate.hf.space"
SECRETS = (OWNER_API_KEY, OWNER_PASSWORD, CLIENT_SECRET)


@dataclass
class ForegroundServer:
    """A `campaign server start --foreground` process and where it listens."""

    process: subprocess.Popen[bytes]
    url: str
    home: Path
    output: Path

    def text(self) -> str:
        """What the process wrote to stdout and stderr so far."""
        return self.output.read_text(errors="replace")


def space_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment a Space with `hf_oauth: true` and the owner's secrets gives the container."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARGILLA_", "OAUTH"))}
    env.update(
        {
            "CAMPAIGN_HOME": str(home),
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "OWNER_API_KEY": OWNER_API_KEY,
            "OWNER_PASSWORD": OWNER_PASSWORD,
            "OAUTH_CLIENT_ID": CLIENT_ID,
            "OAUTH_CLIENT_SECRET": CLIENT_SECRET,
            "OAUTH_SCOPES": "openid profile",
            "OPENID_PROVIDER_URL": "https://huggingface.co",
            "SPACE_HOST": SPACE_HOST,
            "SPACE_ID": "my-org/dutch-dpo-annotate",
            "CAMPAIGN_WORKSPACE": "dutch-dpo",
        }
    )
    env.update(extra)
    return env


def start_foreground(home: Path, env: dict[str, str], *, timeout: float = 150) -> ForegroundServer:
    """Run the Dockerfile's start command (on a free port) and wait until the owner key from env works."""
    port = free_port()
    argv = start_command(port)
    argv[0] = str(Path(sys.executable).parent / "campaign")
    home.mkdir(parents=True, exist_ok=True)
    output = home.parent / f"{home.name}-stdout.txt"
    with output.open("wb") as sink:
        process = subprocess.Popen(argv, env=env, stdout=sink, stderr=subprocess.STDOUT)
    server = ForegroundServer(process=process, url=f"http://127.0.0.1:{port}", home=home, output=output)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the foreground server exited with {process.returncode}:\n{server.text()[-3000:]}")
        try:
            if api(server.url, OWNER_API_KEY, "GET", "/me").status_code == 200:
                return server
        except requests.RequestException:
            pass
        time.sleep(0.5)
    stop_foreground(server)
    pytest.fail(f"the foreground server did not answer within {timeout}s:\n{server.text()[-3000:]}")


def stop_foreground(server: ForegroundServer, sig: int = signal.SIGTERM) -> int:
    """Signal the process, wait for it, and stop whatever it left (as a container's end would)."""
    if server.process.poll() is None:
        server.process.send_signal(sig)
        try:
            server.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
    local = LocalServer(server.home)
    if any(local.pids().values()):
        local.stop()
    return int(server.process.returncode)


@pytest.fixture(scope="module")
def space(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ForegroundServer]:
    home = tmp_path_factory.mktemp("space") / "data"
    server = start_foreground(home, space_env(home))
    try:
        yield server
    finally:
        stop_foreground(server)


def test_the_owner_key_from_the_environment_works(space: ForegroundServer) -> None:
    me = api(space.url, OWNER_API_KEY, "GET", "/me")
    assert me.status_code == 200
    assert me.json()["role"] == "owner"
    assert api(space.url, "some-other-key", "GET", "/me").status_code == 401


def test_the_owner_password_from_the_environment_signs_in(space: ForegroundServer) -> None:
    username = api(space.url, OWNER_API_KEY, "GET", "/me").json()["username"]
    token = requests.post(
        f"{space.url}/api/v1/token", data={"username": username, "password": OWNER_PASSWORD}, timeout=30
    )
    assert token.status_code == 201


def test_oauth_providers_list_huggingface(space: ForegroundServer) -> None:
    response = requests.get(f"{space.url}/api/v1/oauth2/providers", timeout=30)
    assert response.status_code == 200
    assert [item["name"] for item in response.json()["items"]] == ["huggingface"]


def test_hf_sign_in_redirects_to_huggingface_with_the_client_id_and_a_callback_on_the_space(
    space: ForegroundServer,
) -> None:
    response = requests.get(
        f"{space.url}/api/v1/oauth2/providers/huggingface/authentication", allow_redirects=False, timeout=30
    )
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert (location.scheme, location.netloc, location.path) == (
        "https",
        "huggingface.co",
        "/oauth/authorize",
    )
    query = parse_qs(location.query)
    assert query["client_id"] == [CLIENT_ID]
    assert query["redirect_uri"] == [f"https://{SPACE_HOST}/oauth/huggingface/callback"]
    assert query["scope"] == ["openid profile"]
    assert CLIENT_SECRET not in response.headers["location"]


def test_annotators_still_sign_in_with_passwords(space: ForegroundServer) -> None:
    workspace = api(space.url, OWNER_API_KEY, "POST", "/workspaces", json={"name": "pw-team"}).json()
    user = create_annotator(space.url, OWNER_API_KEY, "volunteer-one", workspace["id"])
    token = requests.post(
        f"{space.url}/api/v1/token",
        data={"username": "volunteer-one", "password": user["password"]},
        timeout=30,
    )
    assert token.status_code == 201
    me = requests.get(
        f"{space.url}/api/v1/me",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"},
        timeout=30,
    )
    assert me.status_code == 200
    assert me.json()["username"] == "volunteer-one"


def test_hf_volunteers_are_sent_to_the_campaign_workspace(space: ForegroundServer) -> None:
    import yaml

    config = yaml.safe_load((space.home / "oauth.yaml").read_text())
    assert config["allowed_workspaces"] == [{"name": "dutch-dpo"}]
    # argilla-server creates the allowed workspace at start, so the first volunteer lands in it.
    workspaces = api(space.url, OWNER_API_KEY, "GET", "/me/workspaces").json()["items"]
    assert "dutch-dpo" in [w["name"] for w in workspaces]


def test_no_secret_in_the_log_or_the_oauth_file(space: ForegroundServer) -> None:
    text = space.text()
    assert "Argilla is running" in text
    oauth_file = (space.home / "oauth.yaml").read_text()
    assert "huggingface" in oauth_file
    for secret in SECRETS:
        assert secret not in text
        assert secret not in oauth_file


def test_sigterm_stops_every_process_cleanly(space: ForegroundServer) -> None:
    children = [pid for pid in LocalServer(space.home).pids().values() if pid]
    assert len(children) == 3
    space.process.send_signal(signal.SIGTERM)
    assert space.process.wait(timeout=60) == 0
    assert not any(LocalServer(space.home).pids().values())
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert "Traceback" not in space.text()


def test_a_child_that_dies_stops_the_others_and_exits_non_zero(tmp_path: Path) -> None:
    home = tmp_path / "data"
    server = start_foreground(home, space_env(home))
    try:
        worker = LocalServer(home).pids()["worker"]
        assert worker is not None
        os.kill(worker, signal.SIGKILL)
        assert server.process.wait(timeout=60) == 1
        assert not any(LocalServer(home).pids().values())
        assert "The worker process exited" in server.text()
    finally:
        stop_foreground(server)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({"OWNER_PASSWORD": ""}, "OWNER_PASSWORD is not set. Set both OWNER_API_KEY and OWNER_PASSWORD"),
        ({"OWNER_PASSWORD": "short"}, "OWNER_PASSWORD must have at least 8 characters."),
        ({"SPACE_HOST": ""}, "OAUTH_CLIENT_ID is set but SPACE_HOST is not."),
    ],
)
def test_incomplete_space_environment_is_one_line_error(
    tmp_path: Path, extra: dict[str, str], expected: str
) -> None:
    argv = start_command(free_port())
    argv[0] = str(Path(sys.executable).parent / "campaign")
    result = subprocess.run(
        argv, env=space_env(tmp_path / "data", **extra), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1
    assert expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not LocalServer(tmp_path / "data").credentials_file.exists()
