"""`campaign deploy space`: the Space folder, the plan, and the Hub calls up to the network boundary."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

import campaign
from campaign.config import resolve_connection
from campaign.deploy import space as space_module
from campaign.deploy.space import SpaceOptions, _check_namespace, deploy, space_url, write_space_folder
from campaign.deploy.store import HfHubStore
from campaign.errors import HubError
from campaign.server.control.db_backup import BackupSchedule, read_state
from campaign.server.control.foreground import start_command

TOKEN = "hf_secret_token_value_never_written_1234"


def front_matter(readme: str) -> dict[str, Any]:
    assert readme.startswith("---\n")
    head, _, _ = readme[4:].partition("\n---\n")
    data = yaml.safe_load(head)
    assert isinstance(data, dict)
    return data


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def online(monkeypatch: pytest.MonkeyPatch) -> str:
    """huggingface_hub allowed to try the network, at an endpoint where nothing listens."""
    import huggingface_hub.constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    endpoint = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    return endpoint


def run_cli(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(Path(sys.executable).parent / "campaign"), *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


def cli_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "ARGILLA_"))}
    env.update({"PYTHONPATH": str(Path(__file__).resolve().parents[1]), "HOME": str(tmp_path / "user-home")})
    env.update(extra)
    return env


def test_space_folder_has_the_space_yaml_and_a_dockerfile_pinned_to_this_version(tmp_path: Path) -> None:
    options = SpaceOptions(repo_id="my-org/dutch-dpo-annotate", workspace="dutch-dpo", org_only="my-org")
    written = write_space_folder(tmp_path / "space", options)
    assert sorted(p.name for p in written) == ["Dockerfile", "README.md"]

    config = front_matter((tmp_path / "space" / "README.md").read_text())
    assert config["sdk"] == "docker"
    assert config["app_port"] == 7860
    assert config["hf_oauth"] is True
    assert config["hf_oauth_authorized_org"] == "my-org"
    assert "argilla-campaign" in config["tags"]
    assert len(config["short_description"]) <= 60

    docker = (tmp_path / "space" / "Dockerfile").read_text()
    assert docker.startswith("FROM python:3.11-slim")
    assert f'"argilla-campaign=={campaign.__version__}"' in docker
    assert "CAMPAIGN_WORKSPACE=dutch-dpo" in docker
    cmd = next(line for line in docker.splitlines() if line.startswith("CMD "))
    # The Dockerfile runs the very start command the foreground tests run, on the Space's app_port.
    assert json.loads(cmd.removeprefix("CMD ")) == start_command(config["app_port"])


def test_without_org_only_there_is_no_org_restriction(tmp_path: Path) -> None:
    write_space_folder(tmp_path, SpaceOptions(repo_id="me/x"))
    assert "hf_oauth_authorized_org" not in front_matter((tmp_path / "README.md").read_text())


def test_dry_run_writes_the_folder_prints_the_plan_and_needs_no_token(tmp_path: Path) -> None:
    campaign_dir = tmp_path / "camp"
    campaign_dir.mkdir()
    env = cli_env(tmp_path, HF_TOKEN=TOKEN, OWNER_PASSWORD="do-not-copy-me-123")
    result = run_cli(
        "deploy", "space", "my-org/dutch-dpo", "--dry-run", "--private", "--hardware", "cpu-upgrade",
        "--campaign", str(campaign_dir), env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].endswith("space: Dockerfile, README.md")
    assert lines[1] == "Create the Space my-org/dutch-dpo (docker, private, hardware cpu-upgrade)"
    assert lines[2] == "Create the private dataset repo my-org/dutch-dpo-db for database copies"
    assert lines[3] == "Set the Space secrets OWNER_API_KEY, OWNER_PASSWORD, HF_TOKEN, CAMPAIGN_BACKUP_REPO"
    assert "https://my-org-dutch-dpo.hf.space" in lines[4]
    for path in (campaign_dir / "space").iterdir():
        text = path.read_text()
        assert TOKEN not in text and "do-not-copy-me-123" not in text
    assert TOKEN not in result.stdout + result.stderr
    assert not (tmp_path / "user-home").exists() or not list((tmp_path / "user-home").rglob("space.json"))


@pytest.mark.parametrize("repo_id", ["no-namespace", "a/b/c", "my org/x"])
def test_a_bad_space_id_is_a_usage_error(tmp_path: Path, repo_id: str) -> None:
    result = run_cli("deploy", "space", repo_id, "--dry-run", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 2
    assert "is not a Space id: use NAMESPACE/NAME" in result.stderr
    assert "Traceback" not in result.stderr


def test_deploy_without_a_token_says_how_to_get_one(tmp_path: Path) -> None:
    result = run_cli("deploy", "space", "me/x", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Error: No Hugging Face token. Run 'hf auth login' (a token with write access) or set HF_TOKEN."
    )


def test_deploy_when_the_hub_cannot_be_reached_is_one_line(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    env = cli_env(tmp_path, HF_TOKEN=TOKEN, HF_ENDPOINT=endpoint)
    result = run_cli("deploy", "space", "me/x", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"Error: Cannot reach the Hub at {endpoint} to check the token (ConnectionError). "
        "Check the network or HF_ENDPOINT."
    )
    assert TOKEN not in result.stdout + result.stderr
    assert not list(tmp_path.rglob("space.json"))


@pytest.mark.parametrize(
    ("user", "namespace", "expected"),
    [
        ({"name": "lead", "auth": {"accessToken": {"role": "read"}}}, "lead", "is read-only"),
        ({"name": "lead", "orgs": []}, "my-org", "lead, who is not a member of my-org"),
        (
            {"name": "lead", "orgs": [{"name": "my-org", "roleInOrg": "read"}]},
            "my-org",
            "may not create repos",
        ),
    ],
)
def test_a_token_that_cannot_write_to_the_namespace_is_refused(
    user: dict[str, Any], namespace: str, expected: str
) -> None:
    with pytest.raises(HubError, match=expected):
        _check_namespace(user, namespace)


def test_a_token_that_can_write_to_the_namespace_passes() -> None:
    _check_namespace({"name": "lead", "auth": {"accessToken": {"role": "write"}}}, "lead")
    _check_namespace({"name": "lead", "orgs": [{"name": "my-org", "roleInOrg": "write"}]}, "my-org")


def test_space_url_is_the_hub_subdomain() -> None:
    assert space_url("My-Org/dutch_dpo.annotate") == "https://my-org-dutch-dpo-annotate.hf.space"


class RecordingHub:
    """What a Hub needs to answer for a deployment, recorded: a stand-in behind HfApi's own methods."""

    def __init__(
        self, *, exists: bool = False, tags: list[str] | None = None, stage: str = "BUILD_ERROR"
    ) -> None:
        self.exists, self.tags, self.stage = exists, tags or [], stage
        self.calls: list[tuple[str, Any]] = []
        self.uploaded: dict[str, str] = {}

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from types import SimpleNamespace

        from huggingface_hub import HfApi

        hub = self
        monkeypatch.setattr(HfApi, "whoami", lambda self, token=None: {"name": "lead", "orgs": []})
        monkeypatch.setattr(HfApi, "repo_exists", lambda self, repo_id, repo_type=None, **kw: hub.exists)
        monkeypatch.setattr(HfApi, "space_info", lambda self, repo_id, **kw: SimpleNamespace(tags=hub.tags))

        def create_repo(self: HfApi, repo_id: str, **kw: Any) -> None:
            hub.calls.append(("create_repo", (repo_id, kw.get("repo_type"), kw.get("private"))))

        def add_space_secret(self: HfApi, repo_id: str, key: str, value: str, **kw: Any) -> None:
            hub.calls.append(("secret", key))

        def upload_folder(self: HfApi, *, folder_path: str, **kw: Any) -> None:
            hub.uploaded = {p.name: p.read_text() for p in Path(folder_path).iterdir()}
            hub.calls.append(("upload", kw["repo_id"]))

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "add_space_secret", add_space_secret)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
        monkeypatch.setattr(
            HfApi, "get_space_runtime", lambda self, repo_id, **kw: SimpleNamespace(stage=hub.stage)
        )


def test_deploy_sets_secrets_through_the_api_records_the_space_and_reports_a_failed_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_env: Path
) -> None:
    hub = RecordingHub()
    hub.install(monkeypatch)
    options = SpaceOptions(repo_id="lead/dutch-dpo", workspace="dutch-dpo")
    with pytest.raises(HubError, match="stopped at BUILD_ERROR"):
        deploy(options, tmp_path / "space", token=TOKEN, timeout=30)
    assert hub.calls == [
        ("create_repo", ("lead/dutch-dpo", "space", False)),
        ("create_repo", ("lead/dutch-dpo-db", "dataset", True)),
        ("secret", "OWNER_API_KEY"),
        ("secret", "OWNER_PASSWORD"),
        ("secret", "HF_TOKEN"),
        ("secret", "CAMPAIGN_BACKUP_REPO"),
        ("upload", "lead/dutch-dpo"),
    ]
    record_path = isolated_env / "space.json"
    record = json.loads(record_path.read_text())
    assert stat.S_IMODE(record_path.stat().st_mode) == 0o600
    assert record["api_url"] == "https://lead-dutch-dpo.hf.space"
    for text in hub.uploaded.values():
        for secret in (TOKEN, record["api_key"], record["password"]):
            assert secret not in text

    # Later commands use the Space (environment variables still win).
    connection = resolve_connection()
    assert connection.api_url.value == "https://lead-dutch-dpo.hf.space"
    assert connection.api_key.value == record["api_key"]
    monkeypatch.setenv("ARGILLA_API_URL", "http://elsewhere:6900")
    monkeypatch.setenv("ARGILLA_API_KEY", "k")
    assert resolve_connection().api_url.value == "http://elsewhere:6900"

    # A second deploy of the same Space keeps its owner credentials and asks for the new hardware.
    from huggingface_hub import HfApi

    hub.exists, hub.tags, hub.calls = True, ["argilla-campaign"], []
    monkeypatch.setattr(
        HfApi,
        "request_space_hardware",
        lambda self, repo_id, hardware, **kw: hub.calls.append(("hw", hardware)),
    )
    with pytest.raises(HubError):
        deploy(
            SpaceOptions(repo_id="lead/dutch-dpo", hardware="cpu-upgrade"), tmp_path / "space", token=TOKEN
        )
    assert hub.calls[:2] == [("create_repo", ("lead/dutch-dpo", "space", False)), ("hw", "cpu-upgrade")]
    assert json.loads(record_path.read_text())["api_key"] == record["api_key"]
    assert space_module.forget() == "lead/dutch-dpo"
    assert not record_path.exists()


def test_deploy_refuses_a_space_that_is_not_ours(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hub = RecordingHub(exists=True, tags=["gradio"])
    hub.install(monkeypatch)
    with pytest.raises(HubError, match="exists and was not made by 'campaign deploy space'"):
        deploy(SpaceOptions(repo_id="lead/theirs"), tmp_path / "space", token=TOKEN)
    assert hub.calls == []


def test_a_failure_after_creating_repos_says_what_was_created(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from huggingface_hub import HfApi

    RecordingHub().install(monkeypatch)

    def refuse(self: HfApi, repo_id: str, key: str, value: str, **kw: Any) -> None:
        raise ConnectionError("network down")

    monkeypatch.setattr(HfApi, "add_space_secret", refuse)
    with pytest.raises(HubError) as caught:
        deploy(SpaceOptions(repo_id="lead/half"), tmp_path / "space", token=TOKEN)
    assert str(caught.value).endswith(
        "Created so far: Space lead/half, dataset lead/half-db. Run the same command again to finish."
    )


def test_hub_store_calls_stop_at_the_network_boundary_with_one_line(online: str) -> None:
    store = HfHubStore("lead/dutch-dpo-db", TOKEN)
    assert store.describe() == "hf://datasets/lead/dutch-dpo-db"
    with pytest.raises(HubError) as caught:
        store.names()
    assert str(caught.value) == (
        f"Cannot reach the Hub at {online} to list the copies in lead/dutch-dpo-db (ConnectionError). "
        "Check the network or HF_ENDPOINT."
    )


def test_hub_store_download_and_delete_stop_at_the_network_boundary(online: str, tmp_path: Path) -> None:
    store = HfHubStore("lead/dutch-dpo-db", TOKEN)
    with pytest.raises(HubError, match=r"^Cannot reach the Hub at .* to download argilla-1\.sqlite\.gz from"):
        store.get("argilla-1.sqlite.gz", tmp_path / "copy.gz")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(
        HubError, match=r"^Cannot reach the Hub at .* to delete old copies in lead/dutch-dpo-db"
    ):
        store.remove(["argilla-1.sqlite.gz"])


def test_a_backup_to_an_unreachable_hub_is_retried_recorded_and_never_raises(
    online: str, tmp_path: Path
) -> None:
    import sqlite3

    home = tmp_path / "home"
    (home / "argilla").mkdir(parents=True)
    connection = sqlite3.connect(home / "argilla" / "argilla.db")
    connection.execute("CREATE TABLE records (id TEXT)")
    connection.commit()
    connection.close()
    schedule = BackupSchedule(HfHubStore("lead/dutch-dpo-db", TOKEN), home, retry_wait=0)
    assert schedule.backup_now() is False
    state = read_state(home)
    assert state is not None and state.last_error is not None
    assert state.last_error.startswith(f"Cannot reach the Hub at {online} to upload argilla-")
    assert TOKEN not in (home / "db-backup.json").read_text()


def test_deploy_help_has_an_example(tmp_path: Path) -> None:
    result = run_cli("deploy", "space", "--help", env=cli_env(tmp_path), cwd=tmp_path)
    assert result.returncode == 0
    assert "Example:" in result.stdout and "--org-only" in result.stdout
