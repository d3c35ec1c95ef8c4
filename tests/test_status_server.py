"""`campaign status` against the real local server: counts and statistics, and incremental sync."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import pytest
from click.testing import CliRunner

from campaign.cli import cli
from tests.server_helpers import api, create_annotator, submit

N_RECORDS = 12
ANNOTATORS = ("st-ann-1", "st-ann-2", "st-ann-3")
# (annotator index, record index) -> (rating_1, rating_2, status)
PLAN: dict[tuple[int, int], tuple[int | None, int | None, str]] = {}
for r in range(8):
    PLAN[(0, r)] = (1 + r % 5, 5 - r % 5, "submitted")
    PLAN[(1, r)] = (1 + (r + 1) % 5, 5 - r % 5, "submitted")
for r in range(4):
    PLAN[(2, r)] = (1 + r % 5, 4, "submitted")
PLAN[(2, 8)] = (3, 3, "draft")
PLAN[(2, 9)] = (None, None, "discarded")


def _run(*args: str) -> Any:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


@pytest.fixture(scope="module")
def campaign(local_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A rating campaign (N=2, min_submitted=2) with 12 seeded records and known responses."""
    import polars as pl

    directory = tmp_path_factory.mktemp("status") / "st"
    env = {"ARGILLA_API_URL": local_server.api_url, "ARGILLA_API_KEY": local_server.api_key}
    runner = CliRunner(env=env)
    for args in (
        ["init", str(directory), "--template", "rating", "--responses", "2", "--min-submitted", "2"],
        ["create", "--campaign", str(directory)],
    ):
        assert runner.invoke(cli, args).exit_code == 0
    source = directory / "rows.jsonl"
    pl.DataFrame(
        {
            "instruction": [f"status prompt {i}" for i in range(N_RECORDS)],
            "generations": [[f"first {i}", f"second {i}"] for i in range(N_RECORDS)],
            "generation_models": [["m-a", "m-b"]] * N_RECORDS,
        }
    ).write_ndjson(source)
    seeded = runner.invoke(cli, ["seed", str(source), "--campaign", str(directory), "--no-shuffle", "--json"])
    assert seeded.exit_code == 0, seeded.output
    workspace = json.loads(seeded.output)["dataset"]["workspace"]
    ws = next(
        w
        for w in api(local_server.api_url, local_server.api_key, "GET", "/me/workspaces").json()["items"]
        if w["name"] == workspace
    )
    users = [
        create_annotator(local_server.api_url, local_server.api_key, name, ws["id"]) for name in ANNOTATORS
    ]
    datasets = api(local_server.api_url, local_server.api_key, "GET", "/me/datasets").json()["items"]
    dataset = next(d for d in datasets if d["workspace_id"] == ws["id"])
    records = api(
        local_server.api_url,
        local_server.api_key,
        "GET",
        f"/datasets/{dataset['id']}/records",
        params={"limit": 100},
    ).json()["items"]
    by_prompt = {r["fields"]["prompt"]: r for r in records}
    record_ids = [by_prompt[f"status prompt {i}"]["id"] for i in range(N_RECORDS)]
    responses = {}
    for (a, r), (v1, v2, status) in PLAN.items():
        values = None if v1 is None else {"rating_1": v1, "rating_2": v2}
        responses[(a, r)] = submit(local_server.api_url, users[a]["api_key"], record_ids[r], values, status)
    return {"dir": directory, "env": env, "users": users, "record_ids": record_ids, "responses": responses}


def _status(campaign: dict[str, Any]) -> dict[str, Any]:
    result = CliRunner(env=campaign["env"]).invoke(
        cli, ["status", "--campaign", str(campaign["dir"]), "--json"]
    )
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.output))


def _alpha(question: int) -> float:
    """Ordinal alpha computed here, independently of campaign.agreement."""
    matrix = np.full((len(ANNOTATORS), N_RECORDS), np.nan)
    for (a, r), values in PLAN.items():
        if values[2] == "submitted":
            matrix[a, r] = values[question - 1]
    return float(krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal"))


def test_status_counts_and_agreement_match_an_independent_computation(campaign: dict[str, Any]) -> None:
    report = _status(campaign)
    totals = report["progress"]["totals"]
    submitted_per_record = [
        sum(1 for (a, r), v in PLAN.items() if r == rec and v[2] == "submitted") for rec in range(N_RECORDS)
    ]
    assert totals["records"] == N_RECORDS
    assert totals["completed"] == sum(1 for n in submitted_per_record if n >= 2)
    assert totals["remaining_submissions"] == sum(max(0, 2 - n) for n in submitted_per_record)
    assert totals["responses"] == {"submitted": 20, "draft": 1, "discarded": 1, "total": 22}
    people = {a["annotator"]: a for a in report["progress"]["annotators"]}
    assert (people["st-ann-1"]["submitted"], people["st-ann-2"]["submitted"]) == (8, 8)
    assert (
        people["st-ann-3"]["submitted"],
        people["st-ann-3"]["draft"],
        people["st-ann-3"]["discarded"],
    ) == (4, 1, 1)
    assert people["st-ann-1"]["share"] == pytest.approx(8 / 20)
    per_question = report["agreement"]["per_question"]
    for question in (1, 2):
        stat = per_question[f"rating_{question}"]
        assert stat["value"] == pytest.approx(_alpha(question), abs=1e-9)
        assert stat["n_units"] == sum(1 for n in submitted_per_record if n >= 2)
    # Argilla's own status agrees with min_submitted=2.
    assert report["progress"]["totals"]["argilla_status"].get("completed") == totals["completed"]


def test_incremental_sync_sees_new_updated_and_deleted_responses(
    local_server: Any, campaign: dict[str, Any]
) -> None:
    first = _status(campaign)
    again = _status(campaign)
    assert again["sync"]["mode"] == "unchanged"
    users, ids = campaign["users"], campaign["record_ids"]
    # New: annotator 3 submits record 10. Updated: annotator 1 changes record 0. Deleted: annotator 2's record 7.
    submit(local_server.api_url, users[2]["api_key"], ids[10], {"rating_1": 2, "rating_2": 2})
    changed = campaign["responses"][(0, 0)]
    response = api(
        local_server.api_url,
        users[0]["api_key"],
        "PUT",
        f"/responses/{changed['id']}",
        json={"values": {"rating_1": {"value": 5}, "rating_2": {"value": 5}}, "status": "submitted"},
    )
    assert response.status_code == 200, response.text
    deleted = campaign["responses"][(1, 7)]
    assert (
        api(local_server.api_url, users[1]["api_key"], "DELETE", f"/responses/{deleted['id']}").status_code
        == 200
    )

    report = _status(campaign)
    assert report["sync"]["mode"] == "incremental"
    assert report["sync"]["changed_records"] == 3
    totals = report["progress"]["totals"]
    assert totals["responses"]["submitted"] == first["progress"]["totals"]["responses"]["submitted"]  # +1 -1
    people = {a["annotator"]: a for a in report["progress"]["annotators"]}
    assert people["st-ann-2"]["submitted"] == 7
    assert people["st-ann-3"]["submitted"] == 5
    assert (
        totals["completed"] == first["progress"]["totals"]["completed"] - 1
    )  # record 7 lost its second vote

    from campaign.snapshot import load_snapshot

    snapshot = load_snapshot(campaign["dir"])
    prompt0 = snapshot.responses.filter(
        (snapshot.responses["annotator"] == "st-ann-1") & (snapshot.responses["question"] == "rating_1")
    )
    assert "5" in prompt0["value"].to_list()
    # The incremental snapshot equals a full sync of the same server state.
    from campaign.snapshot import snapshot_folder

    (snapshot_folder(campaign["dir"]) / "fingerprints.parquet").unlink()
    full = _status(campaign)
    assert full["sync"]["mode"] in ("full", "unchanged")
    (snapshot_folder(campaign["dir"]) / "meta.json").unlink()
    rebuilt = _status(campaign)
    assert rebuilt["sync"]["mode"] == "full"
    assert rebuilt["snapshot"]["snapshot_id"] == report["snapshot"]["snapshot_id"]


def test_status_reports_without_sync_and_renders_markdown_and_html(
    campaign: dict[str, Any], tmp_path: Path
) -> None:
    runner = CliRunner(env=campaign["env"])
    html = tmp_path / "report.html"
    result = runner.invoke(
        cli, ["status", "--campaign", str(campaign["dir"]), "--no-sync", "--markdown", "--html", str(html)]
    )
    assert result.exit_code == 0, result.output
    assert "st-ann-1" in result.output
    assert html.read_text().startswith("<!DOCTYPE html>")
    missing = runner.invoke(cli, ["status", "--campaign", str(tmp_path / "nowhere")])
    assert missing.exit_code != 0
    assert "Traceback" not in missing.output


def test_pairs_of_annotators_in_report(campaign: dict[str, Any]) -> None:
    report = _status(campaign)
    pairs = {(p["annotator_a"], p["annotator_b"]) for p in report["agreement"]["pairwise"]}
    assert pairs <= set(itertools.combinations(sorted(ANNOTATORS), 2))


def test_incremental_sync_rewrites_only_changed_tables_and_recovers_from_a_kill(
    local_server: Any, campaign: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import polars as pl
    from polars.testing import assert_frame_equal

    from campaign import snapshot as store
    from campaign.campaign_file import load_campaign
    from campaign.client import ArgillaClient

    client = ArgillaClient(local_server.api_url, local_server.api_key)
    spec = load_campaign(campaign["dir"])

    def sync(directory: Path) -> store.SyncResult:
        return store.sync_snapshot(
            client, directory, dataset_name=spec.name, workspace=spec.workspace, template="rating"
        )[1]

    def rate(record: int, value: int) -> None:
        response = campaign["responses"][(0, record)]
        values = {"rating_1": {"value": value}, "rating_2": {"value": value}}
        answer = api(
            local_server.api_url,
            campaign["users"][0]["api_key"],
            "PUT",
            f"/responses/{response['id']}",
            json={"values": values, "status": "submitted"},
        )
        assert answer.status_code == 200, answer.text

    sync(campaign["dir"])
    # A store written before folders and digests (its files in the store itself): the next sync moves it
    # into a folder whose tables carry digests, and removes the old files.
    directory = store.snapshot_dir(campaign["dir"])
    published = store.snapshot_folder(campaign["dir"])
    for name in store.TABLES:
        pl.read_parquet(published / f"{name}.parquet").write_parquet(directory / f"{name}.parquet")
    meta = json.loads((published / "meta.json").read_text())
    del meta[store.TABLE_DIGESTS_KEY]
    (directory / "meta.json").write_text(json.dumps(meta))
    (published / "fingerprints.parquet").rename(directory / "fingerprints.parquet")
    shutil.rmtree(published)
    (directory / "current").unlink()
    rate(1, 4)
    assert sync(campaign["dir"]).mode == "incremental"
    folder = store.snapshot_folder(campaign["dir"])
    assert all(store._stored_digest(folder / f"{name}.parquet") for name in store.CONTENT_TABLES)
    assert sorted(p.name for p in directory.iterdir()) == ["current", folder.name]

    # Only responses changed (the record stays completed): the records file is left as it was.
    before = {name: (folder / f"{name}.parquet").stat().st_mtime_ns for name in store.CONTENT_TABLES}
    rate(2, 5)
    result = sync(campaign["dir"])
    assert (result.mode, result.changed_records) == ("incremental", 1)
    folder = store.snapshot_folder(campaign["dir"])
    after = {name: (folder / f"{name}.parquet").stat().st_mtime_ns for name in store.CONTENT_TABLES}
    assert after["records"] == before["records"] and after["suggestions"] == before["suggestions"]
    assert after["responses"] != before["responses"]

    # Killed while writing the responses: the next sync still ends up equal to a full sync.
    rate(3, 2)
    real_write = store._atomic_write

    def killed(path: Path, write: Any) -> None:
        if path.name == "responses.parquet":
            raise KeyboardInterrupt
        real_write(path, write)

    monkeypatch.setattr(store, "_atomic_write", killed)
    with pytest.raises(KeyboardInterrupt):
        sync(campaign["dir"])
    monkeypatch.undo()
    assert sync(campaign["dir"]).mode == "incremental"

    incremental = store.load_snapshot(campaign["dir"])
    assert sync(tmp_path / "fresh").mode == "full"
    full = store.load_snapshot(tmp_path / "fresh")
    for name in store.CONTENT_TABLES:
        assert_frame_equal(
            incremental.table(name).sort(pl.all(), nulls_last=True),
            full.table(name).sort(pl.all(), nulls_last=True),
        )
    assert incremental.snapshot_id == full.snapshot_id
    assert incremental.snapshot_id == store.content_id(
        incremental.records, incremental.responses, incremental.suggestions
    )


def test_every_write_path_is_seen_by_the_next_sync(
    local_server: Any, campaign: dict[str, Any], tmp_path: Path
) -> None:
    """Each way the server can change a dataset shows in the next sync, on the local and a stock server.

    Bulk writes with responses and restores leave the dataset's last_activity_at alone, so a sync that
    trusted it kept stale values; after each write both stores must equal a full sync into a new folder.
    """
    from campaign import snapshot as store
    from campaign.backup import backup_dataset, restore_dataset
    from campaign.campaign_file import load_campaign
    from campaign.client import ArgillaClient

    url, owner_key = local_server.api_url, local_server.api_key
    spec = load_campaign(campaign["dir"])
    local = ArgillaClient(url, owner_key)
    stock = ArgillaClient(url, owner_key)
    stock._extensions = False  # what the client concludes from a stock server's 404
    dataset_id = str(local.require_dataset(spec.name, spec.workspace)["id"])
    users, ids = campaign["users"], campaign["record_ids"]

    def sync(client: ArgillaClient, directory: Path) -> tuple[str, str]:
        snap, result = store.sync_snapshot(
            client, directory, dataset_name=spec.name, workspace=spec.workspace, template="rating"
        )
        return snap.snapshot_id, result.mode

    def ok(answer: Any) -> Any:
        assert answer.status_code < 300, answer.text
        return answer.json() if answer.content else None

    backup = tmp_path / "backup"
    backup_dataset(local, backup, dataset=spec.name, workspace=spec.workspace)
    for client, name in ((local, "local"), (stock, "stock")):
        sync(client, tmp_path / name)
    created: dict[str, Any] = {}

    def ui_create() -> None:
        created.update(submit(url, users[2]["api_key"], ids[11], {"rating_1": 1, "rating_2": 2}))

    def ui_update() -> None:
        body = {"values": {"rating_1": {"value": 4}, "rating_2": {"value": 4}}, "status": "submitted"}
        ok(api(url, users[2]["api_key"], "PUT", f"/responses/{created['id']}", json=body))

    def bulk_with_responses() -> None:
        # Another value, the same status: no count moves (the path of the SDK's records.log).
        response = {"user_id": users[0]["id"], "status": "submitted"}
        response["values"] = {"rating_1": {"value": 2}, "rating_2": {"value": 2}}
        items = [{"id": ids[4], "responses": [response]}]
        ok(api(url, owner_key, "PUT", f"/datasets/{dataset_id}/records/bulk", json={"items": items}))

    def restore() -> None:
        restore_dataset(local, backup, force=True)  # record 4's response goes back to its old value

    def record_metadata() -> None:
        ok(api(url, owner_key, "PATCH", f"/records/{ids[5]}", json={"metadata": {"round": 2}}))

    def responses_bulk() -> None:
        # The web UI's "submit all": POST /me/responses/bulk.
        values = {"rating_1": {"value": 3}, "rating_2": {"value": 1}}
        items = [{"record_id": ids[9], "values": values, "status": "submitted"}]
        answer = ok(api(url, users[1]["api_key"], "POST", "/me/responses/bulk", json={"items": items}))
        assert not any(item.get("error") for item in answer["items"]), answer

    question_ids = {q["name"]: str(q["id"]) for q in local.questions(dataset_id)}

    def put_suggestions() -> None:
        for question, value in (("rating_1", 4), ("rating_2", 2)):
            body = {"question_id": question_ids[question], "value": value, "agent": "judge", "type": "model"}
            ok(api(url, owner_key, "PUT", f"/records/{ids[3]}/suggestions", json=body))

    def suggestion_ids() -> list[str]:
        answer = ok(api(url, owner_key, "GET", f"/records/{ids[3]}/suggestions"))
        return sorted(str(item["id"]) for item in answer["items"])

    def delete_suggestion() -> None:
        ok(api(url, owner_key, "DELETE", f"/suggestions/{suggestion_ids()[0]}"))

    def delete_record_suggestions() -> None:
        params = {"ids": ",".join(suggestion_ids())}
        ok(api(url, owner_key, "DELETE", f"/records/{ids[3]}/suggestions", params=params))

    def delete_response() -> None:
        ok(api(url, users[2]["api_key"], "DELETE", f"/responses/{created['id']}"))

    def delete_record() -> None:
        ok(api(url, owner_key, "DELETE", f"/records/{ids[11]}"))

    def delete_records_in_bulk() -> None:
        ok(api(url, owner_key, "DELETE", f"/datasets/{dataset_id}/records", params={"ids": ids[6]}))

    writes = (
        ui_create,
        ui_update,
        bulk_with_responses,
        restore,
        record_metadata,
        responses_bulk,
        put_suggestions,
        delete_suggestion,
        delete_record_suggestions,
        delete_response,
        delete_record,
        delete_records_in_bulk,
    )
    previous = sync(stock, tmp_path / "fresh-0")[0]
    for step, write in enumerate(writes, start=1):
        write()
        truth = sync(stock, tmp_path / f"fresh-{step}")[0]
        assert truth != previous, write.__name__  # the write changed what a snapshot holds
        for client, name in ((local, "local"), (stock, "stock")):
            snapshot_id, mode = sync(client, tmp_path / name)
            assert (write.__name__, name, snapshot_id) == (write.__name__, name, truth)
            assert mode != "unchanged"
        previous = truth
    # Nothing written since: the local server proves it from its fingerprints.
    assert sync(local, tmp_path / "local") == (previous, "unchanged")
