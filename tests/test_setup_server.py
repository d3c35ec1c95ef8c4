"""`campaign init`, `create` and `annotators` against the real local Argilla (issue 4).

Every test uses its own dataset, workspace and usernames, so that tests stay independent on the
one session server.
"""

from __future__ import annotations

import csv
import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner, Result

from campaign.cli import cli
from campaign.server.control.local_server import free_port
from tests.conftest import RunningServer
from tests.server_helpers import api


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(mix_stderr=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def run(runner: CliRunner, *args: str) -> Result:
    return runner.invoke(cli, list(args))


def assert_one_line_error(result: Result, expected: str, *, exit_code: int | None = None) -> None:
    """A known failure: non-zero exit, one 'Error:' line holding `expected`, and no traceback."""
    assert result.exit_code != 0, result.stdout
    if exit_code is not None:
        assert result.exit_code == exit_code, result.stderr
    # click's own SystemExit, never an escaped exception
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    assert expected in errors[0], result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def init_campaign(runner: CliRunner, directory: Path, template: str, *args: str) -> str:
    """`campaign init` with a unique dataset name; returns the name."""
    name = unique(f"t-{template}")
    result = run(runner, "init", str(directory), "--template", template, "--name", name, *args)
    assert result.exit_code == 0, result.stderr
    return name


def create(runner: CliRunner, directory: Path, *args: str) -> Result:
    return run(runner, "create", "--campaign", str(directory), *args)


def created_campaign(runner: CliRunner, directory: Path, template: str = "rating", *args: str) -> str:
    name = init_campaign(runner, directory, template, *args)
    result = create(runner, directory)
    assert result.exit_code == 0, result.stderr
    return name


def dataset_exists(server: RunningServer, name: str) -> bool:
    datasets = api(server.api_url, server.api_key, "GET", "/me/datasets").json()["items"]
    return any(d["name"] == name for d in datasets)


def dataset_attributes(server: RunningServer, name: str) -> dict[str, Any]:
    datasets = api(server.api_url, server.api_key, "GET", "/me/datasets").json()["items"]
    (found,) = [d for d in datasets if d["name"] == name]
    return dict(api(server.api_url, server.api_key, "GET", f"/datasets/{found['id']}").json())


# -- create: each template, read back with the SDK -------------------------------------------------

TEMPLATE_CASES = [
    pytest.param("rating", 2, id="rating-2"),
    pytest.param("rating", 5, id="rating-5"),
    pytest.param("ranking", 4, id="ranking-4"),
    pytest.param("binary", 1, id="binary"),
]


@pytest.mark.parametrize(("template", "responses"), TEMPLATE_CASES)
def test_create_makes_dataset_with_template_settings(
    runner: CliRunner, server: RunningServer, tmp_path: Path, template: str, responses: int
) -> None:
    import argilla as rg

    name = init_campaign(
        runner, tmp_path, template, "--responses", str(responses), "--language", "nl", "--min-submitted", "3"
    )
    result = create(runner, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert f"Created dataset '{name}' in workspace '{name}'" in result.stderr
    assert "Created workspace" in result.stderr

    dataset = server.client().datasets(name, workspace=name)
    assert dataset is not None
    settings = dataset.settings
    slots = range(1, responses + 1)
    if template == "binary":
        assert [f.name for f in settings.fields] == ["prompt", "completion"]
        (question,) = settings.questions
        assert isinstance(question, rg.LabelQuestion)
        assert question.name == "label"
        assert question.labels == ["good", "bad"]
        assert "nl" in (question.description or "")
        per_slot = ["model", "source_index"]
    else:
        assert [f.name for f in settings.fields] == ["prompt", *[f"response_{i}" for i in slots]]
        if template == "rating":
            assert [q.name for q in settings.questions] == [f"rating_{i}" for i in slots]
            for question in settings.questions:
                assert isinstance(question, rg.RatingQuestion)
                assert question.values == [1, 2, 3, 4, 5]
        else:
            (question,) = settings.questions
            assert isinstance(question, rg.RankingQuestion)
            assert question.name == "ranking"
            assert question.values == [f"response_{i}" for i in slots]
        per_slot = [f"model_{i}" for i in slots] + [f"source_index_{i}" for i in slots]
    assert all(f.use_markdown for f in settings.fields)
    metadata = {m.name: m for m in settings.metadata}
    assert set(metadata) == {"prompt_id", "round", "source", "language", *per_slot}
    assert isinstance(metadata["round"], rg.IntegerMetadataProperty)
    assert isinstance(metadata["prompt_id"], rg.TermsMetadataProperty)
    assert metadata["language"].visible_for_annotators is True
    assert metadata["prompt_id"].visible_for_annotators is False
    assert settings.distribution.min_submitted == 3
    guidelines = (tmp_path / "guidelines.md").read_text(encoding="utf-8")
    assert (settings.guidelines or "").strip() == guidelines.strip()


def test_second_create_changes_nothing(runner: CliRunner, server: RunningServer, tmp_path: Path) -> None:
    name = created_campaign(runner, tmp_path, "ranking", "--responses", "3")
    before = dataset_attributes(server, name)
    again = create(runner, tmp_path)
    assert again.exit_code == 0, again.stderr
    assert "already up to date" in again.stderr
    assert "Created" not in again.stderr
    after = dataset_attributes(server, name)
    assert after["updated_at"] == before["updated_at"]
    assert after == before
    as_json = create(runner, tmp_path, "--json")
    assert as_json.exit_code == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert report["created"] is False and report["differences"] == []
    assert report["dataset_id"] == before["id"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("min_submitted: 2", "min_submitted: 4"), ["distribution.min_submitted: expected 4, found 2"]),
        (
            ("responses: 2", "responses: 3"),
            [
                "field 'response_3': expected, but missing",
                "question 'rating_3': expected, but missing",
                "metadata property 'model_3': expected, but missing",
            ],
        ),
    ],
    ids=["min_submitted", "responses"],
)
def test_create_refuses_changed_settings(
    runner: CliRunner, server: RunningServer, tmp_path: Path, edit: tuple[str, str], expected: list[str]
) -> None:
    name = created_campaign(runner, tmp_path, "rating", "--responses", "2")
    before = dataset_attributes(server, name)
    path = tmp_path / "campaign.yaml"
    text = path.read_text(encoding="utf-8")
    assert f"\n{edit[0]}\n" in text
    path.write_text(text.replace(f"\n{edit[0]}\n", f"\n{edit[1]}\n"), encoding="utf-8")

    result = create(runner, tmp_path)
    assert_one_line_error(result, "Refusing to change the existing dataset", exit_code=1)
    assert "differs from" in result.stderr
    for line in expected:
        assert f"  - {line}" in result.stderr
    assert dataset_attributes(server, name) == before


def test_create_dry_run_contacts_no_server(
    runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGILLA_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ARGILLA_API_KEY", "not-used")
    init_campaign(runner, tmp_path, "rating", "--responses", "3")
    result = create(runner, tmp_path, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Dry run, nothing sent" in result.stderr
    assert "rating_3" in result.stdout and "min_submitted=2" in result.stdout
    as_json = create(runner, tmp_path, "--dry-run", "--json")
    assert as_json.exit_code == 0, as_json.stderr
    summary = json.loads(as_json.stdout)["settings"]
    assert [q["name"] for q in summary["questions"]] == ["rating_1", "rating_2", "rating_3"]
    # and without --dry-run the closed port is a one-line error
    assert_one_line_error(create(runner, tmp_path), "Cannot reach Argilla", exit_code=1)


# -- annotators ------------------------------------------------------------------------------------


def login_status(server: RunningServer, username: str, password: str) -> int:
    response = requests.post(
        f"{server.api_url}/api/v1/token", data={"username": username, "password": password}, timeout=30
    )
    if response.ok:
        assert response.json()["access_token"]
    return response.status_code


def read_passwords(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["username"]: row["password"] for row in csv.DictReader(handle)}


def test_annotators_add_from_csv_yaml_and_username(
    runner: CliRunner, server: RunningServer, tmp_path: Path
) -> None:
    campaign_dir = tmp_path / "c"
    name = created_campaign(runner, campaign_dir)
    tag = uuid.uuid4().hex[:6]
    csv_users, yaml_users, flag_user = [f"csv-{tag}-a", f"csv-{tag}-b"], [f"yml-{tag}-a"], f"flag-{tag}"
    csv_file = tmp_path / "volunteers.csv"
    csv_file.write_text(
        "username,first_name,last_name\n" + "".join(f"{u},First,Last\n" for u in csv_users), encoding="utf-8"
    )
    yaml_file = tmp_path / "volunteers.yaml"
    yaml_file.write_text(f"- {yaml_users[0]}\n", encoding="utf-8")
    passwords_file = tmp_path / "passwords.csv"

    added = run(
        runner,
        "annotators",
        "add",
        str(csv_file),
        "--campaign",
        str(campaign_dir),
        "--out",
        str(passwords_file),
        "--json",
    )
    assert added.exit_code == 0, added.stderr
    assert [(r["username"], r["action"]) for r in json.loads(added.stdout)] == [
        (u, "created") for u in csv_users
    ]
    assert "password" not in added.stdout and "api_key" not in added.stdout
    assert stat.S_IMODE(passwords_file.stat().st_mode) == 0o600
    passwords = read_passwords(passwords_file)
    assert sorted(passwords) == sorted(csv_users)

    from_yaml = run(runner, "annotators", "add", str(yaml_file), "--campaign", str(campaign_dir), "--json")
    assert from_yaml.exit_code == 0, from_yaml.stderr
    (yaml_result,) = json.loads(from_yaml.stdout)
    assert yaml_result["action"] == "created"
    passwords[yaml_users[0]] = yaml_result["password"]  # shown once, without --out

    by_flag = run(runner, "annotators", "add", "--username", flag_user, "--campaign", str(campaign_dir))
    assert by_flag.exit_code == 0, by_flag.stderr
    assert "shown once" in by_flag.stderr
    row = next(line for line in by_flag.stdout.splitlines() if flag_user in line)
    passwords[flag_user] = row.split("│")[-2].strip()
    assert "api_key" not in by_flag.stdout

    for username, password in passwords.items():
        assert login_status(server, username, password) in (200, 201), username
    assert login_status(server, csv_users[0], "wrong-password") == 401

    # re-adding everyone is a no-op: no new passwords, no --out file rewritten
    passwords_file.unlink()
    again = run(
        runner,
        "annotators",
        "add",
        str(csv_file),
        "--username",
        flag_user,
        "--campaign",
        str(campaign_dir),
        "--out",
        str(passwords_file),
        "--json",
    )
    assert again.exit_code == 0, again.stderr
    assert {r["action"] for r in json.loads(again.stdout)} == {"unchanged"}
    assert not passwords_file.exists()
    assert login_status(server, csv_users[0], passwords[csv_users[0]]) in (200, 201)

    listed = run(runner, "annotators", "list", "--campaign", str(campaign_dir), "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = {r["username"]: r for r in json.loads(listed.stdout)}
    assert set(rows) == {*csv_users, *yaml_users, flag_user}
    for r in rows.values():
        assert set(r) == {"username", "role", "workspaces", "submitted"}
        assert r["role"] == "annotator" and r["workspaces"] == [name] and r["submitted"] == 0


def test_annotators_remove_needs_yes_and_keeps_responses(
    runner: CliRunner, server: RunningServer, tmp_path: Path
) -> None:
    name = created_campaign(runner, tmp_path)
    username = unique("vol")
    added = run(runner, "annotators", "add", "--username", username, "--campaign", str(tmp_path), "--json")
    assert added.exit_code == 0, added.stderr
    (result,) = json.loads(added.stdout)

    # the volunteer submits one response, with their own key obtained by logging in
    token = requests.post(
        f"{server.api_url}/api/v1/token",
        data={"username": username, "password": result["password"]},
        timeout=30,
    ).json()["access_token"]
    bearer = {"Authorization": f"Bearer {token}"}
    dataset_id = dataset_attributes(server, name)["id"]
    api(
        server.api_url,
        server.api_key,
        "POST",
        f"/datasets/{dataset_id}/records/bulk",
        json={"items": [{"fields": {"prompt": "p", "response_1": "a", "response_2": "b"}}]},
    ).raise_for_status()
    records = api(server.api_url, server.api_key, "GET", f"/datasets/{dataset_id}/records").json()["items"]
    submitted = requests.post(
        f"{server.api_url}/api/v1/records/{records[0]['id']}/responses",
        headers=bearer,
        json={"status": "submitted", "values": {"rating_1": {"value": 4}, "rating_2": {"value": 2}}},
        timeout=30,
    )
    assert submitted.status_code == 201, submitted.text

    refused = run(runner, "annotators", "remove", username, "--campaign", str(tmp_path))
    assert refused.exit_code == 2
    assert "needs --yes" in refused.stderr
    listed = json.loads(run(runner, "annotators", "list", "--campaign", str(tmp_path), "--json").stdout)
    assert [(r["username"], r["submitted"]) for r in listed] == [(username, 1)]

    removed = run(runner, "annotators", "remove", username, "--campaign", str(tmp_path), "--yes")
    assert removed.exit_code == 0, removed.stderr
    assert "responses are kept" in removed.stderr
    listed = json.loads(run(runner, "annotators", "list", "--campaign", str(tmp_path), "--json").stdout)
    assert listed == []
    page = api(
        server.api_url,
        server.api_key,
        "GET",
        f"/datasets/{dataset_id}/records",
        params={"include": "responses"},
    ).json()
    (response,) = page["items"][0]["responses"]
    assert response["status"] == "submitted"
    assert response["values"] == {"rating_1": {"value": 4}, "rating_2": {"value": 2}}

    missing = run(runner, "annotators", "remove", username, "--campaign", str(tmp_path), "--yes")
    assert_one_line_error(missing, "is not a member of workspace", exit_code=1)


# -- error paths: one line, no traceback, non-zero exit --------------------------------------------


def test_unreachable_server(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARGILLA_API_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("ARGILLA_API_KEY", "some-key")
    init_campaign(runner, tmp_path, "rating")
    assert_one_line_error(create(runner, tmp_path), "Cannot reach Argilla at http://127.0.0.1:", exit_code=1)
    listed = run(runner, "annotators", "list", "--campaign", str(tmp_path))
    assert_one_line_error(listed, "Cannot reach Argilla", exit_code=1)


def test_wrong_api_key(
    runner: CliRunner, local_server: RunningServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ARGILLA_API_URL", local_server.api_url)
    monkeypatch.setenv("ARGILLA_API_KEY", "wrong-key")
    name = init_campaign(runner, tmp_path, "binary")
    result = create(runner, tmp_path)
    assert_one_line_error(result, "rejected the API key (from env ARGILLA_API_KEY)", exit_code=1)
    added = run(runner, "annotators", "add", "--username", "nobody", "--campaign", str(tmp_path))
    assert_one_line_error(added, "rejected the API key", exit_code=1)
    assert not dataset_exists(local_server, name)


def test_workspace_name_argilla_rejects(runner: CliRunner, server: RunningServer, tmp_path: Path) -> None:
    # campaign.yaml's validator applies the SDK's rule before any request is sent
    refused = run(runner, "init", str(tmp_path), "--template", "rating", "--workspace", "my workspace!")
    assert_one_line_error(refused, "Invalid --workspace 'my workspace!'", exit_code=2)
    assert "letters, digits, '-' and '_'" in refused.stderr

    init_campaign(runner, tmp_path, "rating")
    path = tmp_path / "campaign.yaml"
    text = path.read_text(encoding="utf-8")
    edited = "\n".join(
        'workspace: "equipo/año 2"' if line.startswith("workspace:") else line for line in text.splitlines()
    )
    path.write_text(edited + "\n", encoding="utf-8")
    result = create(runner, tmp_path)
    assert_one_line_error(result, "key 'workspace'", exit_code=1)
    assert "campaign.yaml:" in result.stderr
    names = [w["name"] for w in api(server.api_url, server.api_key, "GET", "/me/workspaces").json()["items"]]
    assert "equipo/año 2" not in names


@pytest.mark.parametrize(
    ("content", "suffix", "expected"),
    [
        ("username\nalice-dup\nbob-dup\nalice-dup\n", "csv", "duplicate username 'alice-dup'"),
        ("- alice-dup\n- username: alice-dup\n", "yaml", "duplicate username 'alice-dup'"),
        ("name,first_name\nalice,Alice\n", "csv", "missing column 'username'"),
        ("- username: alice-ok\n- first_name: Bob\n", "yaml", "missing column 'username'"),
    ],
    ids=["duplicate-csv", "duplicate-yaml", "missing-column-csv", "missing-column-yaml"],
)
def test_bad_annotators_file(
    runner: CliRunner, server: RunningServer, tmp_path: Path, content: str, suffix: str, expected: str
) -> None:
    campaign_dir = tmp_path / "c"
    created_campaign(runner, campaign_dir)
    users_before = api(server.api_url, server.api_key, "GET", "/users").json()["items"]
    path = tmp_path / f"volunteers.{suffix}"
    path.write_text(content, encoding="utf-8")
    result = run(runner, "annotators", "add", str(path), "--campaign", str(campaign_dir))
    assert_one_line_error(result, expected, exit_code=1)
    assert str(path) in result.stderr
    users_after = api(server.api_url, server.api_key, "GET", "/users").json()["items"]
    assert len(users_after) == len(users_before)


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--template", "likert"], "Unknown template 'likert'"),
        (["--template", "rating", "--responses", "9"], "takes 2 to 8 responses per prompt, not 9"),
        (["--template", "ranking", "--responses", "1"], "takes 2 to 8 responses per prompt, not 1"),
        (["--template", "binary", "--responses", "2"], "takes exactly 1 response per prompt, not 2"),
    ],
    ids=["unknown-template", "rating-9", "ranking-1", "binary-2"],
)
def test_init_bad_template_or_n(runner: CliRunner, tmp_path: Path, args: list[str], expected: str) -> None:
    result = run(runner, "init", str(tmp_path / "c"), *args)
    assert_one_line_error(result, expected, exit_code=2)
    assert not (tmp_path / "c" / "campaign.yaml").exists()


@pytest.mark.parametrize(
    ("replace", "expected"),
    [
        (("min_submitted: 2", "min_submitted: [2"), "invalid YAML"),
        (("min_submitted: 2", "min_submitted: two"), "key 'min_submitted'"),
        (("responses: 2", 'responses: "2"'), "key 'responses'"),
        (("responses: 2", "responses: 12"), "key 'responses'"),
        (("template: rating", "template: likert"), "key 'template'"),
    ],
    ids=["invalid-yaml", "wrong-type", "quoted-number", "n-out-of-range", "unknown-template"],
)
def test_create_bad_campaign_yaml(
    runner: CliRunner, server: RunningServer, tmp_path: Path, replace: tuple[str, str], expected: str
) -> None:
    name = init_campaign(runner, tmp_path, "rating")
    path = tmp_path / "campaign.yaml"
    text = path.read_text(encoding="utf-8")
    assert f"\n{replace[0]}\n" in text
    path.write_text(text.replace(f"\n{replace[0]}\n", f"\n{replace[1]}\n"), encoding="utf-8")
    result = create(runner, tmp_path)
    assert_one_line_error(result, expected)
    assert f"{path}:" in result.stderr
    assert not dataset_exists(server, name)
