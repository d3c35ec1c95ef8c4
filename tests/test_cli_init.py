"""`campaign init`, `campaign create` (offline parts, and its rendering of client results), `config show`."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from campaign.errors import ConnectionFailed


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(mix_stderr=False)


def init(runner: CliRunner, directory: Path, *args: str) -> Any:
    return runner.invoke(cli, ["init", str(directory), *args])


def test_init_writes_campaign_and_guidelines(runner: CliRunner, tmp_path: Path) -> None:
    result = init(
        runner, tmp_path / "nl", "--template", "rating", "-n", "4", "--language", "nl", "--name", "aya-nl"
    )
    assert result.exit_code == 0, result.stderr
    text = (tmp_path / "nl" / "campaign.yaml").read_text(encoding="utf-8")
    assert "name: aya-nl" in text and "responses: 4" in text and "language: nl" in text
    assert (tmp_path / "nl" / "guidelines.md").read_text(encoding="utf-8").startswith("# Rating guidelines")
    assert "campaign create --campaign" in result.stderr
    assert result.stdout == ""


def test_init_refuses_overwrite_then_force(runner: CliRunner, tmp_path: Path) -> None:
    assert init(runner, tmp_path, "--template", "binary").exit_code == 0
    (tmp_path / "guidelines.md").write_text("# mine\n", encoding="utf-8")
    refused = init(runner, tmp_path, "--template", "ranking")
    assert refused.exit_code == 1
    assert "already exist" in refused.stderr and "--force" in refused.stderr
    assert (tmp_path / "guidelines.md").read_text(encoding="utf-8") == "# mine\n"
    forced = init(runner, tmp_path, "--template", "ranking", "--force")
    assert forced.exit_code == 0
    assert "template: ranking" in (tmp_path / "campaign.yaml").read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--template", "likert"], "Unknown template 'likert'"),
        (["--template", "rating", "--responses", "12"], "takes 2 to 8 responses per prompt, not 12"),
        (["--template", "ranking", "--responses", "1"], "takes 2 to 8 responses per prompt, not 1"),
        (["--template", "binary", "--responses", "3"], "takes exactly 1 response per prompt"),
        (["--template", "rating", "--workspace", "a/b"], "Invalid --workspace 'a/b'"),
        (["--template", "nowhere/t.yaml"], "Template file nowhere/t.yaml does not exist"),
    ],
)
def test_init_usage_errors_exit_2(runner: CliRunner, tmp_path: Path, args: list[str], expected: str) -> None:
    result = init(runner, tmp_path / "c", *args)
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "c").exists()


@pytest.fixture
def campaign_dir(runner: CliRunner, tmp_path: Path) -> Path:
    directory = tmp_path / "haiku"
    assert init(runner, directory, "--template", "binary", "--min-submitted", "3").exit_code == 0
    return directory


def test_create_dry_run_json(runner: CliRunner, campaign_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_client(monkeypatch, Result())
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir), "--dry-run", "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["dataset"] == "haiku" and data["workspace"] == "haiku"
    assert [f["name"] for f in data["settings"]["fields"]] == ["prompt", "completion"]
    assert data["settings"]["questions"][0]["options"] == {"good": "👍 good", "bad": "👎 bad"}
    assert data["settings"]["distribution"]["min_submitted"] == 3
    assert fake.calls == []


def test_create_dry_run_table(runner: CliRunner, campaign_dir: Path) -> None:
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir), "--dry-run"])
    assert result.exit_code == 0, result.stderr
    for text in ("Fields", "Questions", "Metadata", "completion", "label_selection", "min_submitted=3"):
        assert text in result.stdout
    assert "Dry run" in result.stderr


def test_create_reports_campaign_errors_with_line(runner: CliRunner, campaign_dir: Path) -> None:
    path = campaign_dir / "campaign.yaml"
    path.write_text(
        path.read_text(encoding="utf-8").replace("\nround: 1", "\nround: first"), encoding="utf-8"
    )
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir), "--dry-run"])
    assert result.exit_code == 1
    assert f"{path}:" in result.stderr and "key 'round'" in result.stderr
    assert "Traceback" not in result.stderr


def test_create_without_campaign(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["create", "--campaign", str(tmp_path), "--dry-run"])
    assert result.exit_code == 1
    assert "campaign init" in result.stderr


@dataclass
class Result:
    created: bool = False
    workspace_created: bool = False
    dataset_id: str = "d-1"
    url: str = "http://127.0.0.1:6900/dataset/d-1/annotation-mode"
    differences: list[str] = field(default_factory=list)


class FakeClient(ModuleType):
    """Stands in for the server side of `campaign create`, which the server tests cover."""

    def __init__(self, result: Result | Exception) -> None:
        super().__init__("campaign.client")
        self.result = result
        self.calls: list[tuple[Any, Any]] = []

    def ensure_dataset(self, *, name: str, workspace: str, settings: Any) -> Result:
        self.calls.append(((name, workspace), settings))
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def use_client(monkeypatch: pytest.MonkeyPatch, result: Result | Exception) -> FakeClient:
    fake = FakeClient(result)
    monkeypatch.setattr("campaign.templates.ensure_dataset", fake.ensure_dataset)
    return fake


def test_create_created(runner: CliRunner, campaign_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake = use_client(monkeypatch, Result(created=True, workspace_created=True))
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir)])
    assert result.exit_code == 0, result.stderr
    assert "Created workspace 'haiku'" in result.stderr
    assert "Created dataset 'haiku'" in result.stderr
    [((name, workspace), settings)] = fake.calls
    assert (name, workspace) == ("haiku", "haiku")
    assert [f.name for f in settings.fields] == ["prompt", "completion"]


def test_create_up_to_date_json(
    runner: CliRunner, campaign_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client(monkeypatch, Result())
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir)])
    assert result.exit_code == 0
    assert "already up to date" in result.stderr
    as_json = runner.invoke(cli, ["create", "--campaign", str(campaign_dir), "--json"])
    assert json.loads(as_json.stdout)["created"] is False


def test_create_refuses_on_differences(
    runner: CliRunner, campaign_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client(monkeypatch, Result(differences=["distribution.min_submitted: expected 3, found 2"]))
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir)])
    assert result.exit_code == 1
    assert "distribution.min_submitted: expected 3, found 2" in result.stderr
    assert "Refusing to change" in result.stderr


def test_create_translates_client_errors(
    runner: CliRunner, campaign_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_client(
        monkeypatch, ConnectionFailed("No Argilla at http://127.0.0.1:6900. Run 'campaign server start'.")
    )
    result = runner.invoke(cli, ["create", "--campaign", str(campaign_dir)])
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: No Argilla at http://127.0.0.1:6900. Run 'campaign server start'."


def test_config_show_json_redacts(
    runner: CliRunner, campaign_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGILLA_API_URL", "http://example.org")
    monkeypatch.setenv("ARGILLA_API_KEY", "very-secret")
    result = runner.invoke(cli, ["config", "show", "--campaign", str(campaign_dir), "--json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["connection"]["api_url"] == {"value": "http://example.org", "source": "env ARGILLA_API_URL"}
    assert data["connection"]["api_key"]["value"] == "***"
    assert "very-secret" not in result.stdout
    assert data["campaign"]["name"] == "haiku"
    assert data["campaign"]["path"] == str(campaign_dir / "campaign.yaml")


def test_config_show_without_campaign(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["config", "show", "--campaign", str(tmp_path)])
    assert result.exit_code == 0
    assert "api_url" in result.stdout
    assert "campaign init" in result.stderr


@pytest.mark.parametrize("command", [["init"], ["create"], ["config"], ["config", "show"]])
def test_help_has_example(runner: CliRunner, command: list[str]) -> None:
    result = runner.invoke(cli, [*command, "--help"])
    assert result.exit_code == 0
    assert "Example:" in result.output


@pytest.mark.parametrize("option", ["--name", "--workspace"])
def test_init_refuses_an_empty_name(tmp_path: Path, option: str) -> None:
    result = CliRunner().invoke(cli, ["init", str(tmp_path / "c"), "--template", "rating", option, " "])
    assert result.exit_code == 2
    assert f"{option} is empty" in result.output
    assert not (tmp_path / "c" / "campaign.yaml").exists()


def test_text_with_brackets_is_shown_as_typed(runner: CliRunner, tmp_path: Path) -> None:
    """Paths and names reach rich as text: `[/b]` neither crashes nor vanishes."""
    directory = tmp_path / "team [/b] [red]nl[/red]"
    result = init(runner, directory, "--template", "binary", "--name", "haiku")
    assert result.exit_code == 0, result.stderr
    assert "team [/b] [red]nl[/red]" in result.stderr.replace("\n", "")
    shown = runner.invoke(cli, ["config", "show", "--campaign", str(directory)])
    assert shown.exit_code == 0, shown.stderr
    assert "[red]nl[/red]" in shown.stdout.replace("\n", "")
    dry = runner.invoke(cli, ["create", "--campaign", str(directory), "--dry-run"])
    assert dry.exit_code == 0, dry.stderr
