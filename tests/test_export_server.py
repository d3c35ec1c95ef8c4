"""Integration: an annotated campaign on the real local server -> status (sync) -> export -> load_dataset.

The expected pairs and KTO labels are recomputed here from the responses as the server holds them
(REST, not the snapshot), so the test checks the whole chain: sync, consensus, formats, splits, files.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from server_helpers import api

from campaign.cli import cli
from campaign.snapshot import load_snapshot

MIN_MARGIN = 1.0
KTO_GOOD, KTO_BAD = 4.0, 2.0


def _run(*args: str) -> Any:
    result = CliRunner(mix_stderr=False).invoke(cli, list(args))
    assert result.exit_code == 0, result.stderr
    return result


def _server_records(server: Any, dataset_name: str) -> list[dict[str, Any]]:
    """Every record of the dataset with its responses, straight from the REST API."""
    datasets = api(server.api_url, server.api_key, "GET", "/me/datasets").json()["items"]
    (dataset,) = [d for d in datasets if d["name"] == dataset_name]
    records: list[dict[str, Any]] = []
    offset = 0
    while True:
        page = api(
            server.api_url,
            server.api_key,
            "GET",
            f"/datasets/{dataset['id']}/records",
            params={"include": ["responses"], "offset": offset, "limit": 100},
        ).json()["items"]
        records += page
        if len(page) < 100:
            return records
        offset += len(page)


def _means(record: dict[str, Any]) -> tuple[dict[int, float], int]:
    """Mean rating per slot over submitted responses, and the number of submitting annotators."""
    by_slot: dict[int, list[float]] = {}
    submitted = [r for r in record.get("responses") or [] if r["status"] == "submitted"]
    for response in submitted:
        for question, answer in (response.get("values") or {}).items():
            slot = int(question.removeprefix("rating_"))
            by_slot.setdefault(slot, []).append(float(answer["value"]))
    return {slot: statistics.fmean(v) for slot, v in by_slot.items()}, len({r["user_id"] for r in submitted})


def _expected(records: list[dict[str, Any]], min_annotators: int) -> tuple[dict[str, Any], dict[Any, bool]]:
    """record id -> (chosen texts, rejected texts, best, worst) and (record id, text) -> KTO label."""
    pairs: dict[str, Any] = {}
    kto: dict[Any, bool] = {}
    for record in records:
        means, annotators = _means(record)
        if annotators < min_annotators or not means:
            continue
        key = record.get("external_id") or record["id"]  # the snapshot names records by external id
        texts = {slot: record["fields"][f"response_{slot}"] for slot in means}
        for slot, mean in means.items():
            if mean >= KTO_GOOD or mean <= KTO_BAD:
                kto[(key, texts[slot])] = mean >= KTO_GOOD
        best, worst = max(means.values()), min(means.values())
        if len(means) < 2 or best - worst < MIN_MARGIN:
            continue
        chosen = {texts[s] for s, m in means.items() if m == best}
        rejected = {texts[s] for s, m in means.items() if m == worst}
        pairs[key] = (chosen, rejected, best, worst)
    return pairs, kto


def _load(folder: Path, config: str) -> Any:
    """A config of the export folder as a user loads it: by the card's `configs` name."""
    from datasets import load_dataset

    return load_dataset(str(folder), config, cache_dir=str(folder.parent / f"hf-cache-{folder.name}"))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def annotated(local_server: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo campaign with simulated answers, synced by 'campaign status'."""
    monkeypatch = pytest.MonkeyPatch()
    try:
        local_server.use(monkeypatch)
        home = tmp_path_factory.mktemp("export-server-home")
        monkeypatch.setenv("CAMPAIGN_HOME", str(home))
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")
        directory = tmp_path_factory.mktemp("export-server") / "demo"
        demo = json.loads(_run("demo", "--dir", str(directory), "--with-sample-responses", "--json").stdout)
        status = json.loads(_run("status", "--json", "--campaign", str(directory)).stdout)
        exports = {}
        for name in ("first", "second"):
            out = directory.parent / f"export-{name}"
            # The snapshot 'status' synced, exported as stored: a sync would record a new sync time.
            _run(
                "export",
                "--no-sync",
                "--campaign",
                str(directory),
                "--out",
                str(out),
                "--format",
                "all",
                "--test-size",
                "0.3",
            )
            exports[name] = out
    finally:
        monkeypatch.undo()
    records = _server_records(local_server, demo["dataset"]["name"])
    return {"dir": directory, "status": status, "exports": exports, "records": records}


def test_pairs_match_an_independent_consensus(annotated: dict[str, Any]) -> None:
    snapshot = load_snapshot(annotated["dir"])
    min_annotators = int(snapshot.meta["min_submitted"])
    expected, _ = _expected(annotated["records"], min_annotators)
    assert len(expected) >= 5  # the demo gives enough clear pairs for this check to mean something
    dpo = _load(annotated["exports"]["first"], "dpo")
    rows = [row for split in dpo.values() for row in split]
    assert {row["record_id"] for row in rows} == set(expected)
    for row in rows:
        chosen, rejected, best, worst = expected[row["record_id"]]
        assert row["chosen"] in chosen and row["rejected"] in rejected
        assert row["chosen_score"] == pytest.approx(best) and row["rejected_score"] == pytest.approx(worst)
        assert row["margin"] == pytest.approx(best - worst) and row["margin"] >= MIN_MARGIN
        assert row["n_annotators"] >= min_annotators
    orpo = _load(annotated["exports"]["first"], "orpo")
    assert sorted(r["record_id"] for s in orpo.values() for r in s) == sorted(r["record_id"] for r in rows)


def test_kto_labels_match_an_independent_consensus(annotated: dict[str, Any]) -> None:
    snapshot = load_snapshot(annotated["dir"])
    _, expected = _expected(annotated["records"], int(snapshot.meta["min_submitted"]))
    kto = _load(annotated["exports"]["first"], "kto")
    got = {(row["record_id"], row["completion"]): row["label"] for split in kto.values() for row in split}
    assert got == expected
    assert True in got.values() and False in got.values()


def test_splits_are_disjoint_by_prompt(annotated: dict[str, Any]) -> None:
    for config in ("dpo", "orpo", "kto"):
        splits = _load(annotated["exports"]["first"], config)
        assert set(splits) == {"train", "test"}
        train = set(splits["train"]["prompt_id"])
        test = set(splits["test"]["prompt_id"])
        assert train and test and not train & test
        assert not set(splits["train"]["prompt"]) & set(splits["test"]["prompt"])


def test_manifest_names_the_snapshot(annotated: dict[str, Any]) -> None:
    snapshot = load_snapshot(annotated["dir"])
    assert snapshot.snapshot_id
    manifest = json.loads((annotated["exports"]["first"] / "manifest.json").read_text())
    assert manifest["snapshot"]["snapshot_id"] == snapshot.snapshot_id
    assert snapshot.snapshot_id in (annotated["exports"]["first"] / "README.md").read_text()
    records = {r["id"] for r in annotated["records"]}
    assert (
        manifest["formats"]["dpo"]["total"]
        == len(records)
        == annotated["status"]["progress"]["totals"]["records"]
    )


def test_exporting_twice_gives_identical_files(annotated: dict[str, Any]) -> None:
    first, second = (_files(annotated["exports"][name]) for name in ("first", "second"))
    assert set(first) >= {"manifest.json", "README.md", "dpo/train.parquet", "kto/test.parquet"}
    assert first == second
