"""`campaign backup` and `campaign restore`: a round trip on the real local server, and the error paths."""

from __future__ import annotations

import json
import stat
import uuid
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from server_helpers import api, create_annotator, submit

from campaign.backup import (
    MANIFEST,
    RECORDS_FILE,
    backup_dataset,
    read_backup,
    read_settings,
    restore_dataset,
)
from campaign.cli import cli
from campaign.client import ArgillaClient
from campaign.errors import Conflict, InputError, NotFound, UsageError

TIE = [{"value": "response_1", "rank": 1}, {"value": "response_2", "rank": 1}]


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner(mix_stderr=False).invoke(cli, list(args))


def make_dataset(server: Any, tag: str) -> dict[str, Any]:
    """A dataset with rating, ranking and label questions, metadata, vectors, suggestions and responses."""
    import argilla as rg

    sdk = server.client()
    workspace = rg.Workspace(name=f"bk-{tag}", client=sdk).create()
    settings = rg.Settings(
        guidelines="Rate each response; rank them; say whether the best is good.",
        fields=[
            rg.TextField(name="prompt"),
            rg.TextField(name="response_1", use_markdown=True),
            rg.TextField(name="response_2"),
        ],
        questions=[
            rg.RatingQuestion(name="rating_1", values=[1, 2, 3, 4, 5]),
            rg.RankingQuestion(name="ranking", values=["response_1", "response_2"], required=False),
            rg.LabelQuestion(name="label", labels={"good": "👍", "bad": "👎"}, required=False),
        ],
        metadata=[
            rg.TermsMetadataProperty(name="source"),
            rg.IntegerMetadataProperty(name="round"),
            rg.FloatMetadataProperty(name="judge_score", visible_for_annotators=False),
        ],
        vectors=[rg.VectorField(name="embedding", dimensions=3)],
        distribution=rg.TaskDistribution(min_submitted=2),
    )
    dataset = rg.Dataset(name=f"data-{tag}", workspace=workspace.name, settings=settings, client=sdk).create()
    dataset.records.log(
        [
            rg.Record(
                id=f"rec-{i}",
                fields={"prompt": f"Prompt {i} ü", "response_1": f"**one** {i}", "response_2": f"two {i}"},
                metadata={"source": "aya", "round": 1 + i % 2, "judge_score": i / 4},
                suggestions=[
                    rg.Suggestion("rating_1", 1 + i, score=0.25 * i, agent="judge-model", type="model"),
                    rg.Suggestion("ranking", ["response_2", "response_1"], agent="judge-model"),
                ],
                vectors={"embedding": [0.5, -1.0, float(i)]} if i != 3 else {},
            )
            for i in range(5)
        ]
    )
    url, key = server.api_url, server.api_key
    ann1 = create_annotator(url, key, f"ann1-{tag}", str(workspace.id))
    ann2 = create_annotator(url, key, f"ann2-{tag}", str(workspace.id))
    records = api(url, key, "GET", f"/datasets/{dataset.id}/records", params={"limit": 100}).json()["items"]
    ids = {r["external_id"]: r["id"] for r in records}
    submit(url, ann1["api_key"], ids["rec-0"], {"rating_1": 3, "ranking": TIE, "label": "good"})
    submit(url, ann1["api_key"], ids["rec-1"], None, "discarded")
    submit(url, ann1["api_key"], ids["rec-2"], {"rating_1": 2}, "draft")
    submit(url, ann2["api_key"], ids["rec-0"], {"rating_1": 5, "ranking": list(reversed(TIE))})
    submit(url, ann2["api_key"], ids["rec-1"], {"rating_1": 1, "label": "bad"})
    submit(url, ann2["api_key"], ids["rec-3"], {"label": "bad"}, "discarded")
    ranked = [{"value": "response_2", "rank": 1}, {"value": "response_1", "rank": 2}]
    submit(url, ann2["api_key"], ids["rec-4"], {"rating_1": 4, "ranking": ranked}, "draft")
    return {
        "id": str(dataset.id),
        "name": dataset.name,
        "workspace": workspace.name,
        "annotators": [ann1, ann2],
    }


@pytest.fixture(scope="module")
def source(local_server) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return make_dataset(local_server, uuid.uuid4().hex[:6])


@pytest.fixture
def owner(local_server, monkeypatch: pytest.MonkeyPatch) -> ArgillaClient:  # type: ignore[no-untyped-def]
    local_server.use(monkeypatch)
    return ArgillaClient(local_server.api_url, local_server.api_key)


def snapshot(client: ArgillaClient, dataset_id: str) -> dict[str, Any]:
    """Everything a restore must reproduce, keyed by external id and username (no server ids)."""
    names = client.usernames_by_id()
    questions = {q["id"]: q["name"] for q in client.questions(dataset_id)}
    records = {}
    page = client.request(
        "GET",
        f"/datasets/{dataset_id}/records",
        params={"include": ["responses", "suggestions", "vectors"], "limit": 1000},
    )
    for r in page["items"]:
        records[r["external_id"]] = {
            "fields": r["fields"],
            "metadata": r["metadata"],
            "vectors": r.get("vectors") or {},
            "status": r["status"],
            "suggestions": sorted(
                (questions[s["question_id"]], json.dumps(s["value"]), s["agent"], s["score"], s["type"])
                for s in r["suggestions"]
            ),
            "responses": sorted(
                (names[x["user_id"]], x["status"], json.dumps(x["values"], sort_keys=True))
                for x in r["responses"]
            ),
        }
    return records


def progress(client: ArgillaClient, path: str) -> dict[str, Any]:
    """Argilla's progress answer, with its per-user list in a stable order."""
    answer = dict(client.request("GET", path))
    answer["users"] = sorted(answer.get("users", []), key=lambda u: u["username"])
    return answer


def users_of(client: ArgillaClient, usernames: set[str]) -> dict[str, tuple[Any, ...]]:
    return {
        u["username"]: (u["role"], u["first_name"], u["last_name"])
        for u in client.users()
        if u["username"] in usernames
    }


def test_help_has_examples() -> None:
    for command in ("backup", "restore"):
        result = run(command, "--help")
        assert result.exit_code == 0 and "Example:" in result.output


def test_round_trip_keeps_everything(source, owner, local_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "backup"
    result = run(
        "backup", str(directory), "--dataset", source["name"], "--workspace", source["workspace"], "--json"
    )
    assert result.exit_code == 0, result.stderr
    counts = json.loads(result.stdout)["counts"]
    assert counts["records"] == 5 and counts["responses"] == 7 and counts["suggestions"] == 10
    assert counts["responses_by_status"] == {"discarded": 2, "draft": 2, "submitted": 3}
    assert counts["vectors"] == 4 and counts["users"] == 2
    assert sorted(p.name for p in directory.iterdir()) == [
        "dataset.json",
        "manifest.json",
        "records.jsonl",
        "users.json",
    ]
    assert not list(tmp_path.glob(".backup.*")), "no staging directory is left behind"
    manifest = json.loads((directory / MANIFEST).read_text())
    assert (
        manifest["versions"]["argilla_server"] == "2.8.0" and manifest["source"]["dataset"] == source["name"]
    )

    # Secrets never reach the backup: no API key of anyone, no password.
    text = "".join(p.read_text(encoding="utf-8") for p in directory.iterdir())
    secrets = [local_server.api_key] + [a["api_key"] for a in source["annotators"]]
    secrets += [a["password"] for a in source["annotators"]]
    assert not [s for s in secrets if s in text]
    assert "api_key" not in text and "password" not in text

    # Restore into a new dataset in a new workspace, then compare everything.
    target_ws = f"restored-{uuid.uuid4().hex[:6]}"
    result = run("restore", str(directory), "--dataset", "copy", "--workspace", target_ws, "--json")
    assert result.exit_code == 0, result.stderr
    restored = json.loads(result.stdout)
    assert restored["dataset_created"] and restored["records"] == 5 and restored["responses"] == 7
    assert restored["users_created"] == [] and restored["passwords_file"] is None  # the users exist here

    before, after = read_settings(owner, source["id"]), read_settings(owner, restored["dataset_id"])
    before["dataset"].pop("name"), after["dataset"].pop("name")
    assert after == before
    assert snapshot(owner, restored["dataset_id"]) == snapshot(owner, source["id"])
    restored_records = snapshot(owner, restored["dataset_id"])
    assert sum(1 for r in restored_records.values() if r["vectors"]) == 4
    assert ("ann1-" in restored_records["rec-1"]["responses"][0][0]) and restored_records["rec-1"][
        "responses"
    ][0][1:] == (
        "discarded",
        "null",
    )
    assert json.dumps(TIE, sort_keys=True) in restored_records["rec-0"]["responses"][0][2]
    usernames = {a["username"] for a in source["annotators"]}
    assert users_of(owner, usernames) == {
        a["username"]: ("annotator", a["username"], None) for a in source["annotators"]
    }
    ws = owner.require_workspace(target_ws)
    assert usernames <= {u["username"] for u in owner.workspace_users(ws["id"])}

    # Argilla's own progress (which the search index answers) agrees, per user and status.
    for path in ("/datasets/{id}/progress", "/datasets/{id}/users/progress"):
        original = progress(owner, path.format(id=source["id"]))
        assert progress(owner, path.format(id=restored["dataset_id"])) == original

    # Re-running is a no-op: no duplicates, same content.
    again = run("restore", str(directory), "--dataset", "copy", "--workspace", target_ws, "--json")
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["dataset_created"] is False
    assert snapshot(owner, restored["dataset_id"]) == snapshot(owner, source["id"])

    # Restoring over the live source (records not from this backup) needs --yes.
    refused = run("restore", str(directory))
    assert refused.exit_code == 1 and "--yes" in refused.stderr and "Traceback" not in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1


def test_missing_users_are_created_with_private_passwords(local_server, owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    made = make_dataset(local_server, uuid.uuid4().hex[:6])
    directory = tmp_path / "b"
    backup_dataset(owner, directory, dataset=made["name"], workspace=made["workspace"])
    expected = snapshot(owner, made["id"])
    # Deleting the users stands in for a fresh server: the restore must bring them back.
    for annotator in made["annotators"]:
        owner.request("DELETE", f"/users/{annotator['id']}")
    passwords = tmp_path / "secret" / "passwords.json"
    result = restore_dataset(owner, directory, dataset="recreated", passwords_file=passwords)
    usernames = sorted(a["username"] for a in made["annotators"])
    assert result.users_created == usernames and result.passwords_file == passwords
    assert stat.S_IMODE(passwords.stat().st_mode) == 0o600
    logins = json.loads(passwords.read_text())
    assert sorted(logins) == usernames
    assert snapshot(owner, result.dataset_id) == expected
    # The new password works: the user can log in.
    name = usernames[0]
    token = api(local_server.api_url, "", "POST", "/token", data={"username": name, "password": logins[name]})
    assert token.status_code == 201, token.text


def test_sdk_to_disk_cannot_back_up_these_responses(source, local_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Why backup uses REST: in argilla 2.8 the SDK crashes on a discarded response without values."""
    dataset = local_server.client().datasets(source["name"], workspace=source["workspace"])
    target = tmp_path / "sdk"
    target.mkdir()
    with pytest.raises(AttributeError):
        dataset.to_disk(str(target))


def test_backup_is_atomic(source, owner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    import campaign.backup

    real = campaign.backup._record_entry
    seen: list[str] = []

    def dies_midway(record: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        seen.append(record["id"])
        if len(seen) == 3:
            raise ConnectionError("server went away")
        return real(record, **kwargs)

    monkeypatch.setattr(campaign.backup, "_record_entry", dies_midway)
    with pytest.raises(ConnectionError):
        backup_dataset(owner, tmp_path / "half", dataset=source["name"], workspace=source["workspace"])
    assert list(tmp_path.iterdir()) == []


def test_overwrite_replaces_an_earlier_backup(source, owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "b"
    backup_dataset(owner, directory, dataset=source["name"], workspace=source["workspace"])
    first = json.loads((directory / MANIFEST).read_text())["backup_id"]
    with pytest.raises(UsageError, match="--overwrite"):
        backup_dataset(owner, directory, dataset=source["name"], workspace=source["workspace"])
    backup_dataset(owner, directory, dataset=source["name"], workspace=source["workspace"], overwrite=True)
    assert json.loads((directory / MANIFEST).read_text())["backup_id"] != first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_restore_refuses_a_dataset_with_other_settings(source, owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    directory = tmp_path / "b"
    backup_dataset(owner, directory, dataset=source["name"], workspace=source["workspace"])
    other = make_dataset_with_other_settings(owner, source["workspace"])
    with pytest.raises(Conflict, match="other settings"):
        restore_dataset(owner, directory, dataset=other)


def make_dataset_with_other_settings(client: ArgillaClient, workspace: str) -> str:
    import argilla as rg

    name = f"other-{uuid.uuid4().hex[:6]}"
    settings = rg.Settings(
        fields=[rg.TextField(name="text")], questions=[rg.LabelQuestion(name="l", labels=["a", "b"])]
    )
    rg.Dataset(name=name, workspace=workspace, settings=settings, client=client.sdk).create()
    return name


# -- error paths: one line, exit 1, no traceback ----------------------------------------------------


def one_line_error(result: Any, expected: str) -> None:
    assert result.exit_code == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], result.stderr


def test_restore_missing_directory(owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one_line_error(run("restore", str(tmp_path / "nope")), "does not exist")


def test_restore_directory_without_manifest(owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    one_line_error(run("restore", str(tmp_path)), "has no manifest.json")


@pytest.fixture
def backup_dir(source, owner, tmp_path: Path) -> Path:  # type: ignore[no-untyped-def]
    directory = tmp_path / "b"
    backup_dataset(owner, directory, dataset=source["name"], workspace=source["workspace"])
    return directory


def test_corrupted_manifest(backup_dir: Path) -> None:
    (backup_dir / MANIFEST).write_text('{"format": "argilla-campaign-backup", ', encoding="utf-8")
    one_line_error(run("restore", str(backup_dir)), "not valid JSON")


def test_manifest_of_another_format(backup_dir: Path) -> None:
    (backup_dir / MANIFEST).write_text('{"format": "something-else"}', encoding="utf-8")
    one_line_error(run("restore", str(backup_dir)), "not an argilla-campaign backup")


def test_tampered_records_fail_the_checksum(backup_dir: Path) -> None:
    with (backup_dir / RECORDS_FILE).open("a", encoding="utf-8") as handle:
        handle.write('{"id": "x"}\n')
    one_line_error(run("restore", str(backup_dir)), "does not match its checksum")
    with pytest.raises(InputError):
        read_backup(backup_dir)


def test_backup_of_a_missing_dataset(owner, source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = run(
        "backup", str(tmp_path / "b"), "--dataset", "no-such-dataset", "--workspace", source["workspace"]
    )
    one_line_error(result, "does not exist")
    assert not (tmp_path / "b").exists()
    with pytest.raises(NotFound):
        backup_dataset(owner, tmp_path / "c", dataset="nope", workspace="no-such-workspace")


def test_backup_into_a_non_empty_directory(owner, source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "notes.txt").write_text("mine", encoding="utf-8")
    result = run("backup", str(tmp_path), "--dataset", source["name"], "--workspace", source["workspace"])
    assert result.exit_code == 2 and "not empty" in result.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_dataset_needs_workspace(tmp_path: Path) -> None:
    result = run("backup", str(tmp_path / "b"), "--dataset", "x")
    assert result.exit_code == 2 and "--workspace" in result.stderr


def test_backup_never_replaces_a_campaign_or_a_foreign_folder(owner, source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    campaign = tmp_path / "camp"
    campaign.mkdir()
    (campaign / "campaign.yaml").write_text("name: x\nworkspace: y\n", encoding="utf-8")
    target = ["--dataset", source["name"], "--workspace", source["workspace"], "--overwrite"]
    for directory, expected in ((campaign, "campaign folder"), (tmp_path, "camp")):
        result = run("backup", str(directory), *target)
        assert result.exit_code == 2 and expected in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camp"]
    assert [p.name for p in campaign.iterdir()] == ["campaign.yaml"]


def test_backup_to_an_impossible_directory_is_one_line(owner, source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    (tmp_path / "file").write_text("x", encoding="utf-8")
    result = run(
        "backup",
        str(tmp_path / "file" / "b"),
        "--dataset",
        source["name"],
        "--workspace",
        source["workspace"],
    )
    one_line_error(result, "is a file, not a folder")
    assert result.exit_code == 1 and "unexpected" not in result.stderr


def test_a_backup_removes_what_killed_backups_to_it_left(owner, source, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    import os
    import subprocess
    import sys

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = [
        f".b1.partial-{dead.pid}-x1",
        ".b1.partial-1a2b3c4d",
        ".b1.old-9f8e7d6c",
        f".b1.old-{dead.pid}-x2",
    ]
    for name in left:
        (tmp_path / name).mkdir()
        (tmp_path / name / RECORDS_FILE).write_text("{}\n", encoding="utf-8")
    alive = tmp_path / f".b1.partial-{os.getpid()}-live"
    alive.mkdir()
    result = run(
        "backup", str(tmp_path / "b1"), "--dataset", source["name"], "--workspace", source["workspace"]
    )
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["b1", alive.name])


def test_restore_checks_the_passwords_file_before_creating_users(local_server, owner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    made = make_dataset(local_server, uuid.uuid4().hex[:6])
    directory = tmp_path / "b"
    backup_dataset(owner, directory, dataset=made["name"], workspace=made["workspace"])
    for annotator in made["annotators"]:
        owner.request("DELETE", f"/users/{annotator['id']}")
    (tmp_path / "campaign.yaml").write_text("name: x\n", encoding="utf-8")
    result = run(
        "restore", str(directory), "--dataset", "recreated", "--out", str(tmp_path / "campaign.yaml")
    )
    assert result.exit_code == 2 and "is not a passwords file" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert (tmp_path / "campaign.yaml").read_text() == "name: x\n"
    names = {u["username"] for u in owner.users()}
    assert not names & {a["username"] for a in made["annotators"]}
    assert owner.find_dataset("recreated", made["workspace"]) is None
