"""The snapshot store: schemas, atomic save, load with actionable errors."""

from __future__ import annotations

import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal
from test_export_data import rating_campaign

from campaign import snapshot as store
from campaign.errors import InputError, NotFound
from campaign.snapshot import Snapshot, load_snapshot, save_snapshot, snapshot_dir


def test_schemas_are_datatype_instances():
    for schema in (
        store.RECORDS_SCHEMA,
        store.RESPONSES_SCHEMA,
        store.SUGGESTIONS_SCHEMA,
        store.SYNCS_SCHEMA,
    ):
        assert all(isinstance(dtype, pl.DataType) for dtype in schema.values())
    assert store.RESPONSES_SCHEMA["updated_at"] == pl.Datetime("us", "UTC")
    assert list(store.RESPONSES_SCHEMA) == [
        "record_id", "prompt_id", "round", "question", "slot", "value", "annotator", "status", "updated_at",
    ]  # fmt: skip


def test_round_trip(tmp_path):
    snap = rating_campaign(5)
    path = save_snapshot(tmp_path, snap)
    assert path == snapshot_dir(tmp_path) == tmp_path / ".campaign" / "snapshot"
    assert sorted(p.name for p in path.iterdir()) == [
        "meta.json", "records.parquet", "responses.parquet", "suggestions.parquet", "syncs.parquet",
    ]  # fmt: skip
    loaded = load_snapshot(tmp_path)
    for name in store.TABLES:
        assert_frame_equal(loaded.table(name), snap.table(name))
    assert loaded.meta == snap.meta and loaded.snapshot_id == "snap-1"


def test_missing_snapshot_says_what_to_run(tmp_path):
    with pytest.raises(NotFound, match=r"No snapshot in .*\. Run 'campaign status' to sync first\."):
        load_snapshot(tmp_path)


def test_optional_tables_may_be_absent(tmp_path):
    save_snapshot(tmp_path, rating_campaign(2))
    (snapshot_dir(tmp_path) / "syncs.parquet").unlink()
    assert load_snapshot(tmp_path).syncs.schema == pl.Schema(store.SYNCS_SCHEMA)


def test_damaged_tables_are_reported(tmp_path):
    save_snapshot(tmp_path, rating_campaign(2))
    pl.DataFrame({"record_id": ["x"]}).write_parquet(snapshot_dir(tmp_path) / "responses.parquet")
    with pytest.raises(InputError, match="lacks column"):
        load_snapshot(tmp_path)
    (snapshot_dir(tmp_path) / "meta.json").write_text("[1]")
    with pytest.raises(InputError, match="JSON object"):
        load_snapshot(tmp_path)


def test_save_checks_columns(tmp_path):
    snap = rating_campaign(2)
    bad = Snapshot(records=snap.records.drop("prompt"), responses=snap.responses, meta=snap.meta)
    with pytest.raises(InputError, match="lacks column"):
        save_snapshot(tmp_path, bad)


def test_failed_save_keeps_previous_files_and_leaves_no_temp(tmp_path, monkeypatch):
    save_snapshot(tmp_path, rating_campaign(2))
    before = {p.name: p.read_bytes() for p in snapshot_dir(tmp_path).iterdir()}

    def boom(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        save_snapshot(tmp_path, rating_campaign(4))
    after = {p.name: p.read_bytes() for p in snapshot_dir(tmp_path).iterdir()}
    assert after == before
    assert json.loads(after["meta.json"])["snapshot_id"] == "snap-1"
