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


def test_content_id_ignores_row_order_and_sees_every_change():
    snap = rating_campaign(6)
    tables = (snap.records, snap.responses, snap.suggestions)
    shuffled = tuple(frame.sample(fraction=1.0, shuffle=True, seed=3) for frame in tables)
    whole = store.content_id(*tables)
    assert store.content_id(*shuffled) == whole
    changed = snap.responses.with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("9")).otherwise(pl.col("value")).alias("value")
    )
    assert store.content_id(snap.records, changed, snap.suggestions) != whole
    assert store.content_id(snap.records, snap.responses.head(3), snap.suggestions) != whole


def test_saved_tables_carry_the_digest_of_their_content(tmp_path):
    snap = rating_campaign(4)
    directory = save_snapshot(tmp_path, snap)
    loaded = load_snapshot(tmp_path)
    for name in store.CONTENT_TABLES:
        stored = store._stored_digest(directory / f"{name}.parquet")
        assert stored == store.table_digest(loaded.table(name)) == store.table_digest(snap.table(name))
    digests = [store._stored_digest(directory / f"{name}.parquet") or "" for name in store.CONTENT_TABLES]
    tables = (loaded.records, loaded.responses, loaded.suggestions)
    assert store._combined_id(digests) == store.content_id(*tables)


def test_a_store_written_without_digests_still_loads(tmp_path):
    """Stores from before the digests: plain parquet files load as before; a sync adds the digests."""
    snap = rating_campaign(3)
    directory = save_snapshot(tmp_path, snap)
    for name in store.TABLES:
        path = directory / f"{name}.parquet"
        pl.read_parquet(path).write_parquet(path)  # no key-value metadata, as older versions wrote
        assert store._stored_digest(path) is None
    loaded = load_snapshot(tmp_path)
    for name in store.TABLES:
        assert_frame_equal(loaded.table(name), snap.table(name))
    stored = store._load_stored(directory)
    assert stored is not None and stored.digests == {}
    assert stored.counts == (3, 6)  # records, (record, annotator) responses


def test_a_digest_from_another_polars_version_is_not_trusted(tmp_path):
    directory = save_snapshot(tmp_path, rating_campaign(2))
    path = directory / "responses.parquet"
    digest = store._stored_digest(path)
    pl.read_parquet(path).write_parquet(path, metadata={store.DIGEST_KEY: f"0.0.1/{digest}"})
    assert store._stored_digest(path) is None
