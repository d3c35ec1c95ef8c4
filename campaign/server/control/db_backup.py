"""Copies of the local server's SQLite database in a store, for a container without persistent storage.

A copy is taken with SQLite's online backup API (a consistent snapshot of a live database, which a file
copy is not), gzipped, and put in the store: every `interval` seconds when the database changed, soon
after a large change such as a seed, and when the server stops. The newest `keep` copies are kept.

At start, when the data dir has no database, the newest copy that passes `PRAGMA integrity_check` is
restored; a corrupt or partial one is skipped and the one before it is used. The search index is not
copied: the server rebuilds it at start from the restored database.

The worst case loses what was written since the last good copy: `interval` seconds (5 minutes by default)
if the container is killed without SIGTERM, nothing more than the final copy's upload when it is stopped.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from campaign.config import write_private_json
from campaign.deploy.store import BackupStore, store_from_env
from campaign.errors import CampaignError, ConfigError

STATE_FILENAME = "db-backup.json"
PREFIX, SUFFIX = "argilla-", ".sqlite.gz"
ENV_INTERVAL = "CAMPAIGN_BACKUP_MINUTES"
ENV_KEEP = "CAMPAIGN_BACKUP_KEEP"
DEFAULT_INTERVAL_MINUTES = 5.0
DEFAULT_KEEP = 10
# A change of this many records since the last copy (a seed) is copied without waiting for the interval.
LARGE_CHANGE_RECORDS = 100
UPLOAD_ATTEMPTS = 3

log = logging.getLogger("campaign.server")


class BackupError(CampaignError):
    """A database copy could not be made, stored or verified."""


@dataclass(frozen=True)
class BackupState:
    """The last good copy and the last failure, as `campaign server status` shows them."""

    store: str
    last_good: str | None = None
    last_good_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None


def read_state(home: Path) -> BackupState | None:
    """The backup state recorded in a data dir, if copies are made there."""
    try:
        data = json.loads((home / STATE_FILENAME).read_text(encoding="utf-8"))
        return BackupState(**data)
    except (OSError, ValueError, TypeError):
        return None


def copy_name(when: float) -> str:
    """The name of a copy taken at `when`: sorts by age."""
    stamp = datetime.fromtimestamp(when, UTC).strftime("%Y%m%dT%H%M%S")
    return f"{PREFIX}{stamp}{SUFFIX}"


def snapshot(db_path: Path, dest: Path) -> None:
    """A gzipped, consistent copy of a live SQLite database (online backup API) at dest."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        plain = Path(tmp) / "copy.sqlite"
        source = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        target = sqlite3.connect(plain)
        try:
            source.backup(target)
        finally:
            target.close()
            source.close()
        with plain.open("rb") as raw, gzip.open(dest, "wb", compresslevel=6) as packed:
            shutil.copyfileobj(raw, packed)


def verify(packed: Path, dest: Path) -> None:
    """Unpack a copy to dest and check it is a whole argilla database; BackupError if not."""
    try:
        with gzip.open(packed, "rb") as source, dest.open("wb") as target:
            shutil.copyfileobj(source, target)
        connection = sqlite3.connect(f"file:{dest}?mode=ro", uri=True)
        try:
            result = connection.execute("PRAGMA integrity_check").fetchone()
            tables = {
                row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            }
        finally:
            connection.close()
    except (OSError, EOFError, sqlite3.DatabaseError) as exc:
        msg = f"the copy {packed.name} is unreadable ({exc})"
        raise BackupError(msg) from None
    if not result or result[0] != "ok":
        msg = f"the copy {packed.name} fails the integrity check ({result[0] if result else 'no answer'})"
        raise BackupError(msg)
    if not {"users", "datasets", "records"} <= tables:
        msg = f"the copy {packed.name} is not an argilla database"
        raise BackupError(msg)


def restore(store: BackupStore, db_path: Path, *, name: str | None = None) -> str | None:
    """Put the newest good copy (or the named one) at db_path; the name restored, None if the store is empty."""
    names = list_copies(store)
    if name is not None:
        if name not in names:
            msg = f"No copy named {name} in {store.describe()}; there are: {', '.join(names) or 'none'}."
            raise BackupError(msg)
        names = [name]
    db_path.parent.mkdir(parents=True, exist_ok=True)
    for candidate in names:
        with tempfile.TemporaryDirectory(dir=db_path.parent) as tmp:
            packed, plain = Path(tmp) / candidate, Path(tmp) / "restored.sqlite"
            try:
                store.get(candidate, packed)
                verify(packed, plain)
            except CampaignError as exc:
                log.warning("Skipping the copy %s: %s", candidate, exc)
                continue
            os.replace(plain, db_path)
            return candidate
    if names:
        msg = f"None of the {len(names)} copies in {store.describe()} is usable; see the log above."
        raise BackupError(msg)
    return None


def list_copies(store: BackupStore) -> list[str]:
    """The copies in a store, newest first."""
    return sorted((n for n in store.names() if n.startswith(PREFIX) and n.endswith(SUFFIX)), reverse=True)


def restore_into(home: Path, store: BackupStore, name: str | None = None) -> str:
    """Replace a stopped server's database with a copy (the newest good one, or name); the old one is kept aside."""
    db_path = home / "argilla" / "argilla.db"
    kept = db_path.with_name(f"argilla.db.before-restore-{int(time.time())}")
    if db_path.exists():
        os.replace(db_path, kept)
    try:
        restored = restore(store, db_path, name=name)
    except BaseException:
        if kept.exists():
            os.replace(kept, db_path)
        raise
    if restored is None:
        if kept.exists():
            os.replace(kept, db_path)
        msg = f"There is no copy in {store.describe()} yet."
        raise BackupError(msg)
    # The search index belongs to the replaced database: the next start rebuilds it.
    (home / "search-index.sqlite").unlink(missing_ok=True)
    return restored


def _fingerprint(db_path: Path) -> tuple[int, ...]:
    """Sizes and times of the database and its WAL: changes whenever a transaction commits."""
    found: list[int] = []
    for path in (db_path, db_path.with_name(db_path.name + "-wal")):
        with contextlib.suppress(OSError):
            stat = path.stat()
            found += [stat.st_size, stat.st_mtime_ns]
    return tuple(found)


def _record_count(db_path: Path) -> int:
    try:
        connection = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=1)
        try:
            return int(connection.execute("SELECT count(*) FROM records").fetchone()[0])
        finally:
            connection.close()
    except sqlite3.Error:
        return 0


class BackupSchedule:
    """When to copy the database of one data dir to a store, and the record of how it went."""

    def __init__(
        self,
        store: BackupStore,
        home: Path,
        *,
        interval: float = DEFAULT_INTERVAL_MINUTES * 60,
        keep: int = DEFAULT_KEEP,
        clock: Callable[[], float] = time.time,
        retry_wait: float = 2.0,
    ) -> None:
        self.store = store
        self.home = Path(home)
        self.db_path = self.home / "argilla" / "argilla.db"
        self.interval = interval
        self.keep = keep
        self.clock = clock
        self.retry_wait = retry_wait
        self._last_attempt = clock()
        self._copied_fingerprint: tuple[int, ...] = ()
        self._copied_records = 0
        self._state = read_state(self.home) or BackupState(store=store.describe())

    def restore_if_empty(self) -> None:
        """Restore the newest good copy when the data dir has no database yet."""
        if self.db_path.exists():
            return
        name = restore(self.store, self.db_path)
        if name is None:
            log.info("No database copy in %s yet: starting with an empty database.", self.store.describe())
            return
        log.info("Restored the database from %s (%s).", name, self.store.describe())
        # The restored copy is the last good one until the next is made.
        self._copied_fingerprint = _fingerprint(self.db_path)
        self._copied_records = _record_count(self.db_path)

    def tick(self) -> None:
        """Copy when the interval passed and the database changed, or right after a large change."""
        if not self.db_path.exists():
            return
        now = self.clock()
        changed = _fingerprint(self.db_path) != self._copied_fingerprint
        if not changed:
            return
        large = abs(_record_count(self.db_path) - self._copied_records) >= LARGE_CHANGE_RECORDS
        if large or now - self._last_attempt >= self.interval:
            self.backup_now()

    def final(self) -> None:
        """The copy taken when the server stops (if the database changed since the last one)."""
        if self.db_path.exists() and _fingerprint(self.db_path) != self._copied_fingerprint:
            self.backup_now()

    def backup_now(self) -> bool:
        """Copy, upload (retried), prune old copies; log and record a failure instead of raising."""
        self._last_attempt = self.clock()
        fingerprint, records = _fingerprint(self.db_path), _record_count(self.db_path)
        name = copy_name(self.clock())
        error: str | None = None
        with tempfile.TemporaryDirectory(dir=self.home) as tmp:
            packed = Path(tmp) / name
            try:
                snapshot(self.db_path, packed)
            except (OSError, sqlite3.Error) as exc:
                error = f"taking the copy failed: {exc}"
            else:
                error = self._upload(packed, name)
        now = self.clock()
        if error is not None:
            log.error("No database copy this time: %s. The server keeps serving.", error)
            self._record(replace(self._state, last_error=error, last_error_at=now))
            return False
        self._copied_fingerprint, self._copied_records = fingerprint, records
        self._record(BackupState(store=self.store.describe(), last_good=name, last_good_at=now))
        log.info("Database copied to %s as %s.", self.store.describe(), name)
        self._prune()
        return True

    def _upload(self, packed: Path, name: str) -> str | None:
        """Put one copy in the store, retrying; the last error, or None once stored."""
        error: str | None = None
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                self.store.put(packed, name)
                return None
            except (CampaignError, OSError) as exc:
                error = str(exc)
                log.warning("Uploading %s failed (attempt %d of %d): %s", name, attempt, UPLOAD_ATTEMPTS, exc)
                if attempt < UPLOAD_ATTEMPTS:
                    time.sleep(self.retry_wait * attempt)
        return error

    def _prune(self) -> None:
        old = list_copies(self.store)[self.keep :]
        if not old:
            return
        try:
            self.store.remove(old)
        except (CampaignError, OSError) as exc:
            log.warning("Could not remove old copies: %s", exc)

    def _record(self, state: BackupState) -> None:
        self._state = state
        write_private_json(self.home / STATE_FILENAME, asdict(state))


def schedule_from_env(
    home: Path, env: Mapping[str, str], *, database_url: str | None
) -> BackupSchedule | None:
    """The schedule the environment asks for; None without a store or with PostgreSQL (the source of truth)."""
    store = store_from_env(env)
    if store is None:
        return None
    if database_url:
        log.info(
            "The database is %s: no copies are made.",
            "PostgreSQL" if "postgres" in database_url else "external",
        )
        return None
    try:
        minutes = float(env.get(ENV_INTERVAL) or DEFAULT_INTERVAL_MINUTES)
        keep = int(env.get(ENV_KEEP) or DEFAULT_KEEP)
    except ValueError:
        msg = f"{ENV_INTERVAL} must be a number of minutes and {ENV_KEEP} a whole number."
        raise ConfigError(msg) from None
    if minutes <= 0 or keep < 1:
        msg = f"{ENV_INTERVAL} must be above 0 and {ENV_KEEP} at least 1."
        raise ConfigError(msg)
    return BackupSchedule(store, home, interval=minutes * 60, keep=keep)
