"""Many campaigns in one status, and the progress history, against the real local server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from campaign.cli import cli
from tests.server_helpers import api, create_annotator, submit


def _make_campaign(
    server: Any, base: Path, name: str, *, language: str, n_records: int, users: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """A rating campaign (N=2, min_submitted=2) with `n_records` seeded records and the given annotators."""
    import polars as pl

    directory = base / name
    env = {"ARGILLA_API_URL": server.api_url, "ARGILLA_API_KEY": server.api_key}
    runner = CliRunner(env=env)
    init = ["init", str(directory), "--template", "rating", "--responses", "2", "--min-submitted", "2"]
    for args in ([*init, "--language", language, "--name", name], ["create", "--campaign", str(directory)]):
        result = runner.invoke(cli, args)
        assert result.exit_code == 0, result.output
    source = directory / "rows.jsonl"
    pl.DataFrame(
        {
            "instruction": [f"{name} prompt {i}" for i in range(n_records)],
            "generations": [[f"first {i}", f"second {i}"] for i in range(n_records)],
        }
    ).write_ndjson(source)
    seeded = runner.invoke(cli, ["seed", str(source), "--campaign", str(directory), "--no-shuffle", "--json"])
    assert seeded.exit_code == 0, seeded.output
    workspace = json.loads(seeded.output)["dataset"]["workspace"]
    ws = next(
        w
        for w in api(server.api_url, server.api_key, "GET", "/me/workspaces").json()["items"]
        if w["name"] == workspace
    )
    for username in users:
        if "id" not in users[username]:
            users[username] = create_annotator(server.api_url, server.api_key, username, ws["id"])
        else:
            api(
                server.api_url,
                server.api_key,
                "POST",
                f"/workspaces/{ws['id']}/users",
                json={"user_id": users[username]["id"]},
            ).raise_for_status()
    dataset = next(
        d
        for d in api(server.api_url, server.api_key, "GET", "/me/datasets").json()["items"]
        if d["workspace_id"] == ws["id"]
    )
    records = api(
        server.api_url, server.api_key, "GET", f"/datasets/{dataset['id']}/records", params={"limit": 100}
    ).json()["items"]
    by_prompt = {r["fields"]["prompt"]: r["id"] for r in records}
    ids = [by_prompt[f"{name} prompt {i}"] for i in range(n_records)]
    return {"dir": directory, "env": env, "ids": ids, "name": name, "workspace": workspace}


@pytest.fixture(scope="module")
def community(local_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two language teams on the local server; 'both-langs' annotates in both."""
    base = tmp_path_factory.mktemp("community")
    users: dict[str, dict[str, Any]] = {"both-langs": {}, "nl-only": {}}
    nl = _make_campaign(local_server, base, "cm-nl", language="nl", n_records=6, users=users)
    fr = _make_campaign(
        local_server, base, "cm-fr", language="fr", n_records=4, users={**users, "fr-only": {}}
    )
    key = {name: user["api_key"] for name, user in users.items()}
    for i in range(4):
        submit(local_server.api_url, key["both-langs"], nl["ids"][i], {"rating_1": 4, "rating_2": 2})
        submit(local_server.api_url, key["nl-only"], nl["ids"][i], {"rating_1": 5, "rating_2": 1})
    for i in range(2):
        submit(local_server.api_url, key["both-langs"], fr["ids"][i], {"rating_1": 3, "rating_2": 3})
    return {"server": local_server, "base": base, "nl": nl, "fr": fr, "keys": key}


def _status(*args: str, env: dict[str, str]) -> Any:
    result = CliRunner(env=env, mix_stderr=False).invoke(cli, ["status", *args])
    assert result.exit_code == 0, result.output
    return result


def test_history_gets_one_line_per_changed_sync(community: dict[str, Any], tmp_path: Path) -> None:
    from campaign.history import history_path, read_history

    fr = community["fr"]
    path = history_path(fr["dir"])
    before = len(read_history(path))
    first = json.loads(_status("--campaign", str(fr["dir"]), "--json", env=fr["env"]).output)
    _status("--campaign", str(fr["dir"]), "--json", env=fr["env"])  # unchanged: no new line
    lines = read_history(path)
    assert len(lines) == before + (
        0 if before and lines[-1].snapshot_id == first["snapshot"]["snapshot_id"] else 1
    )
    assert lines[-1].snapshot_id == first["snapshot"]["snapshot_id"]
    assert lines[-1].submissions.submitted == first["progress"]["totals"]["responses"]["submitted"]
    assert (lines[-1].dataset, lines[-1].language) == ("cm-fr", "fr")

    server = community["server"]
    submit(server.api_url, community["keys"]["both-langs"], fr["ids"][2], {"rating_1": 1, "rating_2": 5})
    html = tmp_path / "fr.html"
    second = json.loads(
        _status("--campaign", str(fr["dir"]), "--json", "--html", str(html), env=fr["env"]).output
    )
    lines = read_history(path)
    assert [line.snapshot_id for line in lines[-2:]] == [
        first["snapshot"]["snapshot_id"],
        second["snapshot"]["snapshot_id"],
    ]
    assert lines[-1].submissions.submitted == lines[-2].submissions.submitted + 1
    assert len({line.snapshot_id for line in lines}) == len(lines)
    # Records texts never reach the history.
    assert "prompt" not in path.read_text()
    assert "Progress over time" in html.read_text()
