"""Database copies for a Space: SQLite online backup to a store, integrity-checked restore, the schedule."""

from __future__ import annotations

import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from campaign.deploy.store import BACKUP_DIR, LocalFolderStore
from campaign.server.control.db_backup import (
    BackupError,
    BackupSchedule,
    copy_name,
    read_state,
    restore,
    snapshot,
    verify,
)
from tests.server_helpers import api, submit
from tests.test_foreground import OWNER_API_KEY, SECRETS, space_env, start_foreground, stop_foreground


def make_db(path: Path, records: int = 1) -> None:
    """A small database with argilla's main tables."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE users (id TEXT); CREATE TABLE datasets (id TEXT); CREATE TABLE records (id TEXT);"
    )
    connection.executemany("INSERT INTO records VALUES (?)", [(f"r{i}",) for i in range(records)])
    connection.commit()
    connection.close()


def records_in(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT count(*) FROM records").fetchone()[0])
    finally:
        connection.close()


def put_copy(store: LocalFolderStore, db: Path, when: float) -> str:
    name = copy_name(when)
    packed = db.with_suffix(".gz")
    snapshot(db, packed)
    store.put(packed, name)
    return name


def test_a_snapshot_of_a_database_with_an_open_writer_verifies(tmp_path: Path) -> None:
    db = tmp_path / "argilla.db"
    make_db(db, records=3)
    writer = sqlite3.connect(db)
    writer.execute("INSERT INTO records VALUES ('pending')")  # an open transaction is not in the copy
    snapshot(db, tmp_path / "copy.sqlite.gz")
    writer.rollback()
    writer.close()
    verify(tmp_path / "copy.sqlite.gz", tmp_path / "restored.sqlite")
    assert records_in(tmp_path / "restored.sqlite") == 3


def test_restore_skips_a_corrupt_newest_copy_and_uses_the_previous_good_one(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    db = tmp_path / "source" / "argilla.db"
    make_db(db, records=2)
    good = put_copy(store, db, 1_000_000)
    (store.folder / copy_name(2_000_000)).write_bytes(gzip.compress(b"SQLite format 3\x00 but cut short"))
    (store.folder / copy_name(3_000_000)).write_bytes(b"not even gzip")

    target = tmp_path / "fresh" / "argilla" / "argilla.db"
    assert restore(store, target) == good
    assert records_in(target) == 2


def test_restore_of_an_empty_store_returns_none_and_of_only_bad_copies_fails(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    target = tmp_path / "fresh" / "argilla.db"
    assert restore(store, target) is None
    store.folder.mkdir(parents=True)
    (store.folder / copy_name(1_000_000)).write_bytes(b"junk")
    with pytest.raises(BackupError, match="None of the 1 copies"):
        restore(store, target)
    assert not target.exists()


def test_restore_a_named_older_copy(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    db = tmp_path / "source" / "argilla.db"
    make_db(db, records=1)
    older = put_copy(store, db, 1_000_000)
    make_db(tmp_path / "other" / "argilla.db", records=5)
    put_copy(store, tmp_path / "other" / "argilla.db", 2_000_000)
    target = tmp_path / "fresh" / "argilla.db"
    assert restore(store, target, name=older) == older
    assert records_in(target) == 1
    with pytest.raises(BackupError, match="No copy named nope"):
        restore(store, target, name="nope")


class FailingStore(LocalFolderStore):
    """A store whose uploads fail, as a Hub that cannot be reached."""

    def put(self, source: Path, name: str) -> None:
        self.attempts = getattr(self, "attempts", 0) + 1
        raise OSError("the Hub is unreachable")


def test_a_failing_upload_is_retried_logged_and_recorded_without_raising(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    home = tmp_path / "home"
    make_db(home / "argilla" / "argilla.db")
    store = FailingStore(tmp_path / "store")
    schedule = BackupSchedule(store, home, retry_wait=0)
    assert schedule.backup_now() is False
    assert store.attempts == 3
    state = read_state(home)
    assert state is not None
    assert state.last_good is None
    assert state.last_error == "the Hub is unreachable"
    assert "Uploading" in caplog.text and "The server keeps serving" in caplog.text


def test_the_schedule_waits_for_the_interval_copies_large_changes_at_once_and_keeps_n(tmp_path: Path) -> None:
    home = tmp_path / "home"
    db = home / "argilla" / "argilla.db"
    make_db(db, records=1)
    store = LocalFolderStore(tmp_path / "store")
    now = [1_000_000.0]
    schedule = BackupSchedule(store, home, interval=300, keep=2, clock=lambda: now[0])

    schedule.tick()
    assert store.names() == []  # changed, but neither the interval passed nor a large change
    now[0] += 301
    schedule.tick()
    assert len(store.names()) == 1
    now[0] += 301
    schedule.tick()
    assert len(store.names()) == 1  # unchanged since the last copy: nothing to do

    connection = sqlite3.connect(db)
    connection.executemany("INSERT INTO records VALUES (?)", [(f"s{i}",) for i in range(150)])
    connection.commit()
    connection.close()
    now[0] += 1
    schedule.tick()  # a seed: copied without waiting
    assert len(store.names()) == 2

    connection = sqlite3.connect(db)
    connection.execute("INSERT INTO records VALUES ('last')")
    connection.commit()
    connection.close()
    now[0] += 1
    schedule.final()
    names = sorted(store.names())
    assert len(names) == 2  # keep=2
    assert names[-1] == copy_name(now[0])
    state = read_state(home)
    assert state is not None and state.last_good == names[-1] and state.last_good_at == now[0]


def test_store_layout_is_the_hub_repo_layout(tmp_path: Path) -> None:
    store = LocalFolderStore(tmp_path / "store")
    db = tmp_path / "argilla.db"
    make_db(db)
    name = put_copy(store, db, 1_000_000)
    assert name == "argilla-19700112T134640.sqlite.gz"
    assert (tmp_path / "store" / BACKUP_DIR / name).is_file()


def _dataset_with_one_record(url: str) -> tuple[str, str]:
    """A published dataset with one record, made as the owner; returns (dataset id, record id)."""
    import argilla as rg

    client = rg.Argilla(api_url=url, api_key=OWNER_API_KEY)
    workspace = rg.Workspace(name="dutch-dpo", client=client)
    if client.workspaces("dutch-dpo") is None:
        workspace.create()
    settings = rg.Settings(
        fields=[rg.TextField(name="text")], questions=[rg.RatingQuestion(name="rating", values=[1, 2, 3])]
    )
    dataset = rg.Dataset(name="kept", workspace="dutch-dpo", settings=settings, client=client).create()
    dataset.records.log([{"text": "an answer that must survive"}])
    records = api(url, OWNER_API_KEY, "GET", f"/datasets/{dataset.id}/records").json()["items"]
    return str(dataset.id), str(records[0]["id"])


def _answers(url: str, dataset_id: str) -> list[int]:
    records = api(
        url, OWNER_API_KEY, "GET", f"/datasets/{dataset_id}/records", params={"include": "responses"}
    )
    records.raise_for_status()
    return [
        response["values"]["rating"]["value"]
        for record in records.json()["items"]
        for response in record["responses"] or []
    ]


def _wait_for_copy_after(home: Path, moment: float, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = read_state(home)
        if state and state.last_good_at and state.last_good_at > moment:
            return
        time.sleep(0.5)
    pytest.fail(f"no database copy after the answer within {timeout}s: {read_state(home)}")


def test_an_answer_backed_up_survives_sigkill_and_an_empty_data_dir(tmp_path: Path) -> None:
    store_dir = tmp_path / "hub-repo"
    first_home = tmp_path / "first"
    first = start_foreground(
        first_home, space_env(first_home, CAMPAIGN_BACKUP_DIR=str(store_dir), CAMPAIGN_BACKUP_MINUTES="0.05")
    )
    try:
        dataset_id, record_id = _dataset_with_one_record(first.url)
        submit(first.url, OWNER_API_KEY, record_id, {"rating": 2})
        answered = time.time()
        _wait_for_copy_after(first_home, answered)
        status = subprocess.run(
            [str(Path(sys.executable).parent / "campaign"), "server", "status", "--home", str(first_home)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "last backup:" in status.stdout and " ago (argilla-" in status.stdout
        first.process.send_signal(signal.SIGKILL)  # the container dies without warning
        first.process.wait(timeout=30)
    finally:
        stop_foreground(first)

    second_home = tmp_path / "second"
    second = start_foreground(
        second_home, space_env(second_home, CAMPAIGN_BACKUP_DIR=str(store_dir), CAMPAIGN_BACKUP_MINUTES="60")
    )
    try:
        assert "Restored the database from argilla-" in second.text()
        ui_settings = api(second.url, OWNER_API_KEY, "GET", "/settings").json()
        assert ui_settings["huggingface"]["space_id"] == "my-org/dutch-dpo-annotate"
        assert ui_settings["argilla"]["show_huggingface_space_persistent_storage_warning"] is False
        assert _answers(second.url, dataset_id) == [2]
        # The search index was rebuilt from the restored database: the record is found.
        search = api(second.url, OWNER_API_KEY, "POST", f"/me/datasets/{dataset_id}/records/search", json={})
        assert search.status_code == 200 and search.json()["total"] == 1

        # A change after the last copy is copied when the container is stopped (SIGTERM).
        before = set(LocalFolderStore(store_dir).names())
        api(second.url, OWNER_API_KEY, "PUT", f"/records/{record_id}", json={"metadata": {"seen": "yes"}})
        assert stop_foreground(second) == 0
        new = set(LocalFolderStore(store_dir).names()) - before
        assert len(new) == 1, f"{before=} {new=} {read_state(second_home)}\n{second.text()[-4000:]}"
    finally:
        stop_foreground(second)
    for path in store_dir.rglob("*"):
        if path.is_file():
            data = gzip.decompress(path.read_bytes())
            for secret in SECRETS[1:]:  # the owner's key is a column of the users table, by design
                assert secret.encode() not in data
    state = json.loads((second_home / "db-backup.json").read_text())
    assert state["last_error"] is None


def test_restore_db_lists_copies_and_restores_an_older_one_keeping_the_replaced_database(
    tmp_path: Path,
) -> None:
    store = LocalFolderStore(tmp_path / "store")
    make_db(tmp_path / "a" / "argilla.db", records=1)
    older = put_copy(store, tmp_path / "a" / "argilla.db", 1_000_000)
    make_db(tmp_path / "b" / "argilla.db", records=4)
    newer = put_copy(store, tmp_path / "b" / "argilla.db", 2_000_000)
    home = tmp_path / "home"
    make_db(home / "argilla" / "argilla.db", records=9)
    (home / "search-index.sqlite").write_text("stale")
    campaign = [str(Path(sys.executable).parent / "campaign"), "server", "restore-db", "--home", str(home)]
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
        "CAMPAIGN_BACKUP_DIR": str(store.root),
    }

    listed = subprocess.run([*campaign, "--list"], env=env, capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == [newer, older]

    restored = subprocess.run(
        [*campaign, older, "--yes"], env=env, capture_output=True, text=True, timeout=60
    )
    assert restored.returncode == 0, restored.stderr
    assert f"Restored {older}." in restored.stderr
    assert records_in(home / "argilla" / "argilla.db") == 1
    kept = list((home / "argilla").glob("argilla.db.before-restore-*"))
    assert len(kept) == 1 and records_in(kept[0]) == 9
    assert not (home / "search-index.sqlite").exists()

    env.pop("CAMPAIGN_BACKUP_DIR")
    missing = subprocess.run([*campaign, "--list"], env=env, capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1
    assert (
        "No backup store: set CAMPAIGN_BACKUP_REPO (and HF_TOKEN) or CAMPAIGN_BACKUP_DIR." in missing.stderr
    )
