"""The snapshot store: schemas, atomic save, load with actionable errors."""

from __future__ import annotations

import json
import shutil

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
    assert path == store.snapshot_folder(tmp_path) and path.parent == tmp_path / ".campaign" / "snapshot"
    assert sorted(p.name for p in path.parent.iterdir()) == ["current", path.name]
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
    folder = save_snapshot(tmp_path, rating_campaign(2))
    (folder / "syncs.parquet").unlink()
    assert load_snapshot(tmp_path).syncs.schema == pl.Schema(store.SYNCS_SCHEMA)


def test_damaged_tables_are_reported(tmp_path):
    folder = save_snapshot(tmp_path, rating_campaign(2))
    pl.DataFrame({"record_id": ["x"]}).write_parquet(folder / "responses.parquet")
    with pytest.raises(InputError, match="lacks column"):
        load_snapshot(tmp_path)
    (folder / "meta.json").write_text("[1]")
    with pytest.raises(InputError, match="JSON object"):
        load_snapshot(tmp_path)


def test_save_checks_columns(tmp_path):
    snap = rating_campaign(2)
    bad = Snapshot(records=snap.records.drop("prompt"), responses=snap.responses, meta=snap.meta)
    with pytest.raises(InputError, match="lacks column"):
        save_snapshot(tmp_path, bad)


def _files(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def test_failed_save_keeps_previous_files_and_leaves_no_temp(tmp_path, monkeypatch):
    folder = save_snapshot(tmp_path, rating_campaign(2))
    before = _files(snapshot_dir(tmp_path))

    def boom(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    with pytest.raises(OSError, match="disk full"):
        save_snapshot(tmp_path, rating_campaign(4))
    after = _files(snapshot_dir(tmp_path))
    assert after == before
    assert json.loads(after[f"{folder.name}/meta.json"])["snapshot_id"] == "snap-1"


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
    """Stores from before folders and digests: plain parquet files load as before; a sync adds the digests."""
    snap = rating_campaign(3)
    directory = snapshot_dir(tmp_path)
    directory.mkdir(parents=True)
    for name in store.TABLES:
        path = directory / f"{name}.parquet"
        snap.table(name).write_parquet(path)  # no key-value metadata, as older versions wrote
        assert store._stored_digest(path) is None
    meta = {**snap.meta, "snapshot_id": store.content_id(snap.records, snap.responses, snap.suggestions)}
    (directory / "meta.json").write_text(json.dumps(meta))
    loaded = load_snapshot(tmp_path)
    for name in store.TABLES:
        assert_frame_equal(loaded.table(name), snap.table(name))
    stored = store._load_stored(store.current_folder(directory))
    assert stored is not None and stored.digests == {} and stored.folder == directory
    assert stored.counts == (3, 6)  # records, (record, annotator) responses


def test_a_digest_from_another_polars_version_is_not_trusted(tmp_path):
    directory = save_snapshot(tmp_path, rating_campaign(2))
    path = directory / "responses.parquet"
    digest = store._stored_digest(path)
    pl.read_parquet(path).write_parquet(path, metadata={store.DIGEST_KEY: f"0.0.1/{digest}"})
    assert store._stored_digest(path) is None


# A save killed (SIGKILL: nothing cleans up) at each step, in a child process: before the pointer moves,
# readers get the previous snapshot whole; after, the new one; the next save removes the leftovers.
KILLED_SAVE = """
import os, sys, tempfile
from dataclasses import replace
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_export_data import rating_campaign
from campaign import snapshot as store

step, campaign_dir = sys.argv[1], Path(sys.argv[2])

def killed(path, write):
    if path.name == step:
        fd, _ = tempfile.mkstemp(dir=path.parent, prefix=f".{{path.name}}.", suffix=".tmp")
        os.write(fd, b"half a file")
        os._exit(9)
    real_write(path, write)

def killed_cleanup(store_dir, folder):
    os._exit(9)

real_write = store._atomic_write
store._atomic_write = killed
if step == "cleanup":
    store._remove_leftovers = killed_cleanup
snap = rating_campaign(4)
snap = replace(snap, meta={{**snap.meta, "snapshot_id": "snap-2"}})
prints = store.pl.DataFrame(schema=store._FINGERPRINT_SCHEMA)
with store._sync_lock(store.snapshot_dir(campaign_dir)):
    store._save(store.snapshot_dir(campaign_dir), snap, fingerprints=prints)
"""
SAVE_STEPS = [
    "records.parquet",
    "responses.parquet",
    "suggestions.parquet",
    "syncs.parquet",
    "fingerprints.parquet",
    "meta.json",
    "current",
    "cleanup",
]


@pytest.mark.parametrize("step", SAVE_STEPS)
def test_a_save_killed_at_any_step_leaves_one_whole_snapshot(tmp_path, step):
    import subprocess
    import sys
    from pathlib import Path

    old = rating_campaign(2)
    save_snapshot(tmp_path, old)
    script = KILLED_SAVE.format(tests=str(Path(__file__).parent))
    killed = subprocess.run([sys.executable, "-c", script, step, str(tmp_path)], check=False)
    assert killed.returncode == 9
    loaded = load_snapshot(tmp_path)
    published = step == "cleanup"  # killed after the pointer moved
    assert loaded.snapshot_id == ("snap-2" if published else "snap-1")
    expected = rating_campaign(4) if published else old
    for name in store.TABLES:
        assert_frame_equal(loaded.table(name), expected.table(name))
    directory = snapshot_dir(tmp_path)
    assert len(list(directory.iterdir())) > 2  # the killed save left something behind

    folder = save_snapshot(tmp_path, rating_campaign(3))
    assert sorted(p.name for p in directory.iterdir()) == ["current", folder.name]
    assert not [p for p in folder.iterdir() if p.name.endswith(".tmp")]
    assert len(load_snapshot(tmp_path).records) == len(rating_campaign(3).records)


def test_tables_from_another_snapshot_are_refused(tmp_path):
    """The tables of one save under the meta of another: the reader says so instead of mixing them."""
    other = save_snapshot(tmp_path / "other", rating_campaign(4))
    folder = save_snapshot(tmp_path, rating_campaign(2))
    shutil.copy(other / "responses.parquet", folder / "responses.parquet")
    with pytest.raises(InputError, match=r"inconsistent: its tables are not those of snapshot snap-1"):
        load_snapshot(tmp_path)


def test_a_half_replaced_store_from_before_folders_is_refused(tmp_path):
    """The case of the bug: responses.parquet from a new sync, meta.json from the one before."""
    snap, newer = rating_campaign(3), rating_campaign(5)
    directory = snapshot_dir(tmp_path)
    directory.mkdir(parents=True)
    for name in store.TABLES:
        frame = snap.table(name)
        digest = store.table_digest(frame) if name in store.CONTENT_TABLES else None
        metadata = {store.DIGEST_KEY: f"{pl.__version__}/{digest}"} if digest else None
        frame.write_parquet(directory / f"{name}.parquet", metadata=metadata)
    meta = {**snap.meta, "snapshot_id": store.content_id(snap.records, snap.responses, snap.suggestions)}
    (directory / "meta.json").write_text(json.dumps(meta))
    assert load_snapshot(tmp_path).snapshot_id == meta["snapshot_id"]
    digest = store.table_digest(newer.responses)
    newer.responses.write_parquet(
        directory / "responses.parquet", metadata={store.DIGEST_KEY: f"{pl.__version__}/{digest}"}
    )
    with pytest.raises(InputError, match="inconsistent"):
        load_snapshot(tmp_path)


def test_commands_reading_a_refused_snapshot_say_what_to_run(tmp_path):
    from click.testing import CliRunner

    from campaign.cli import cli

    runner = CliRunner(mix_stderr=False)
    directory = tmp_path / "camp"
    assert runner.invoke(cli, ["init", str(directory), "--template", "rating"]).exit_code == 0
    other = save_snapshot(tmp_path / "other", rating_campaign(4))
    folder = save_snapshot(directory, rating_campaign(2))
    shutil.copy(other / "responses.parquet", folder / "responses.parquet")
    for args in (["status", "--no-sync"], ["export", "--out", str(tmp_path / "out"), "--no-sync"]):
        result = runner.invoke(cli, [*args, "--campaign", str(directory)])
        assert result.exit_code == 1, (args, result.output, result.stderr)
        assert "inconsistent" in result.stderr and "Run 'campaign status' to sync again." in result.stderr
        assert "Traceback" not in result.stderr
