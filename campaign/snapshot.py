"""The local snapshot of a campaign: long-format parquet tables under `<campaign>/.campaign/snapshot/`.

The store (schemas, load, save) comes first and is self-contained; `status` and `export` read it offline.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import polars as pl

from campaign.errors import InputError, NotFound, ServerError

if TYPE_CHECKING:
    from campaign.client import ArgillaClient

# ---------------------------------------------------------------------------------------------------------
# Store: schemas, load, save
# ---------------------------------------------------------------------------------------------------------

SNAPSHOT_SUBDIR = Path(".campaign") / "snapshot"
META_FILENAME = "meta.json"
POINTER_FILENAME = "current"  # names the folder of the published snapshot; replaced atomically
FOLDER_PREFIX = "sync-"  # one folder per save: the tables, fingerprints.parquet and meta.json
TABLE_DIGESTS_KEY = "table_digests"  # in meta.json: the digest each table file was written with
LOCK_FILENAME = "snapshot.lock"  # beside the store, which holds the pointer and folders only
_TS = pl.Datetime("us", "UTC")

RECORDS_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "prompt_id": pl.String(),
    "round": pl.Int64(),
    "template": pl.String(),
    "prompt": pl.String(),
    "slot": pl.Int64(),
    "response": pl.String(),
    "model": pl.String(),
    "status": pl.String(),
    "inserted_at": _TS,
    "updated_at": _TS,
}
RESPONSES_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "prompt_id": pl.String(),
    "round": pl.Int64(),
    "question": pl.String(),
    "slot": pl.Int64(),
    "value": pl.String(),
    "annotator": pl.String(),
    "status": pl.String(),
    "updated_at": _TS,
}
SUGGESTIONS_SCHEMA: dict[str, pl.DataType] = {
    "record_id": pl.String(),
    "question": pl.String(),
    "slot": pl.Int64(),
    "value": pl.String(),
    "score": pl.Float64(),
    "agent": pl.String(),
}
SYNCS_SCHEMA: dict[str, pl.DataType] = {
    "sync_id": pl.String(),
    "synced_at": _TS,
    "n_records": pl.Int64(),
    "n_responses": pl.Int64(),
    "completed": pl.Int64(),
    "pending": pl.Int64(),
}
TABLES: dict[str, dict[str, pl.DataType]] = {
    "records": RECORDS_SCHEMA,
    "responses": RESPONSES_SCHEMA,
    "suggestions": SUGGESTIONS_SCHEMA,
    "syncs": SYNCS_SCHEMA,
}
CONTENT_TABLES = ("records", "responses", "suggestions")  # what the snapshot id covers
# A content table's digest travels in its parquet file's key-value metadata, so it can never describe
# another version of the file; a sync reuses it for the tables it does not rewrite.
DIGEST_KEY = "campaign.content_digest"


def empty_table(name: str) -> pl.DataFrame:
    """An empty frame with the schema of snapshot table `name`."""
    return pl.DataFrame(schema=TABLES[name])


@dataclass(frozen=True)
class Snapshot:
    """The four snapshot tables plus `meta.json` (snapshot_id, synced_at, dataset, template, ...)."""

    records: pl.DataFrame = field(default_factory=lambda: empty_table("records"))
    responses: pl.DataFrame = field(default_factory=lambda: empty_table("responses"))
    suggestions: pl.DataFrame = field(default_factory=lambda: empty_table("suggestions"))
    syncs: pl.DataFrame = field(default_factory=lambda: empty_table("syncs"))
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def snapshot_id(self) -> str:
        """The id every export names as its source ('' if the meta has none)."""
        return str(self.meta.get("snapshot_id") or "")

    def table(self, name: str) -> pl.DataFrame:
        """One table by name: records, responses, suggestions or syncs."""
        frame = getattr(self, name)
        assert isinstance(frame, pl.DataFrame)
        return frame


def snapshot_dir(campaign_dir: Path | str) -> Path:
    """Where the snapshot of a campaign lives."""
    return Path(campaign_dir) / SNAPSHOT_SUBDIR


def conform(frame: pl.DataFrame, name: str, *, where: str = "") -> pl.DataFrame:
    """Check that `frame` has the columns of table `name`, cast them and put them in schema order."""
    schema = TABLES[name]
    missing = [column for column in schema if column not in frame.columns]
    if missing:
        place = f" in {where}" if where else ""
        msg = (
            f"Snapshot table '{name}'{place} lacks column(s) {', '.join(missing)}. "
            "Run 'campaign status' to sync a fresh snapshot."
        )
        raise InputError(msg)
    try:
        return frame.select([pl.col(column).cast(dtype) for column, dtype in schema.items()])
    except pl.exceptions.PolarsError as exc:
        place = f" in {where}" if where else ""
        msg = f"Snapshot table '{name}'{place} has a column of the wrong type: {exc}"
        raise InputError(msg) from None


@contextlib.contextmanager
def _locked(store: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the store's lock: readers share it; publishing takes it alone, so no folder goes mid-read."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; the pointer is still replaced atomically
        yield
        return
    with open(store.parent / LOCK_FILENAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def current_folder(store: Path) -> Path | None:
    """The folder of the published snapshot (None when there is none).

    `current` names it; a store from before folders keeps its files in the store itself.
    """
    pointer = store / POINTER_FILENAME
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return store if (store / META_FILENAME).is_file() else None
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"Cannot read {pointer}: {exc}. Run 'campaign status' to sync again."
        raise InputError(msg) from None
    if not name.startswith(FOLDER_PREFIX) or Path(name).name != name:
        msg = f"{pointer} does not name a snapshot folder. Run 'campaign status' to sync again."
        raise InputError(msg)
    return store / name


def snapshot_folder(campaign_dir: Path | str) -> Path:
    """The folder holding the tables of a campaign's published snapshot."""
    store = snapshot_dir(campaign_dir)
    folder = current_folder(store) if store.is_dir() else None
    if folder is None:
        msg = f"No snapshot in {store}. Run 'campaign status' to sync first."
        raise NotFound(msg)
    return folder


def load_snapshot(campaign_dir: Path | str) -> Snapshot:
    """Read the snapshot of a campaign from disk, checking that its tables are those its id names."""
    store = snapshot_dir(campaign_dir)
    if not store.is_dir():
        msg = f"No snapshot in {store}. Run 'campaign status' to sync first."
        raise NotFound(msg)
    with _locked(store, exclusive=False):
        return _read_snapshot(snapshot_folder(campaign_dir))


def _read_meta(folder: Path) -> tuple[dict[str, Any], dict[str, str] | None]:
    """A folder's `meta.json`, and the digests of the table files it was written with (None if older)."""
    meta_path = folder / META_FILENAME
    if not meta_path.is_file():
        msg = f"No snapshot in {folder}. Run 'campaign status' to sync first."
        raise NotFound(msg)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        msg = f"Cannot read {meta_path}: {exc}. Run 'campaign status' to sync again."
        raise InputError(msg) from None
    if not isinstance(meta, dict):
        msg = f"{meta_path} must hold a JSON object. Run 'campaign status' to sync again."
        raise InputError(msg)
    digests = meta.pop(TABLE_DIGESTS_KEY, None)
    return meta, digests if isinstance(digests, dict) else None


def _read_snapshot(folder: Path) -> Snapshot:
    meta, digests = _read_meta(folder)
    from concurrent.futures import ThreadPoolExecutor

    # The tables are read side by side (the reads release the GIL; ~10% faster than one after the
    # other on two cores); the first problem, in table order, is the one reported.
    with ThreadPoolExecutor(max_workers=2) as pool:
        reads = {name: pool.submit(_read_table, folder, name) for name in TABLES}
        tables = {name: read.result() for name, read in reads.items()}
    snapshot = Snapshot(meta=meta, **tables)
    _check_tables_match_meta(folder, snapshot, digests)
    return snapshot


def _check_tables_match_meta(folder: Path, snapshot: Snapshot, digests: dict[str, str] | None) -> None:
    """Refuse tables that are not those `meta.json` was written with: they would go out under its id."""
    carried = {name: _carried_digest(folder / f"{name}.parquet") for name in CONTENT_TABLES}
    if digests is not None:
        agree = all(carried[name] == digests.get(name) for name in CONTENT_TABLES)
    elif all(carried.values()):  # a store from before folders: its id combines the tables' digests
        parts = [str(carried[name]).partition("/")[2] for name in CONTENT_TABLES]
        agree = _combined_id(parts) == snapshot.snapshot_id
    else:  # ... or, before digests, was the content id
        agree = content_id(snapshot.records, snapshot.responses, snapshot.suggestions) == snapshot.snapshot_id
    if not agree:
        msg = (
            f"The snapshot in {folder} is inconsistent: its tables are not those of snapshot "
            f"{snapshot.snapshot_id or '(none)'} (a sync was interrupted while writing it). "
            "Run 'campaign status' to sync again."
        )
        raise InputError(msg)


def _read_table(folder: Path, name: str) -> pl.DataFrame:
    """One table file of a snapshot, conformed to its schema (the optional ones may be missing)."""
    path = folder / f"{name}.parquet"
    if not path.is_file():
        if name in ("suggestions", "syncs"):
            return empty_table(name)
        msg = f"No snapshot in {folder} ({path.name} is missing). Run 'campaign status' to sync first."
        raise NotFound(msg)
    try:
        frame = pl.read_parquet(path)
    except (OSError, pl.exceptions.PolarsError) as exc:
        msg = f"Cannot read {path}: {exc}. Run 'campaign status' to sync again."
        raise InputError(msg) from None
    return conform(frame, name, where=str(path))


def save_snapshot(campaign_dir: Path | str, snapshot: Snapshot) -> Path:
    """Publish `snapshot` as the campaign's snapshot, as a whole; returns the folder of its tables."""
    store = snapshot_dir(campaign_dir)
    with _sync_lock(store):
        return _save(store, snapshot)


def _save(
    store: Path,
    snapshot: Snapshot,
    *,
    digests: dict[str, str] | None = None,
    keep: frozenset[str] = frozenset(),
    previous: Path | None = None,
    fingerprints: pl.DataFrame | None = None,
) -> Path:
    """Write the snapshot into a new folder, point `current` at it, then remove every other folder.

    Tables in `keep` are linked from the `previous` folder (each must be the file as loaded). Until the
    pointer moves, readers see the previous snapshot whole; a sync killed on the way leaves a folder
    that nothing names, removed with other leftovers when a later save publishes.
    """
    import shutil
    import uuid

    store.mkdir(parents=True, exist_ok=True)
    digests = dict(digests or {})
    frames = {name: conform(snapshot.table(name), name) for name in TABLES if name not in keep}
    for name in CONTENT_TABLES:
        if name not in digests:
            digests[name] = table_digest(frames[name])
    carried = {name: f"{pl.__version__}/{digests[name]}" for name in CONTENT_TABLES}
    meta = {**snapshot.meta, TABLE_DIGESTS_KEY: carried}
    payload = json.dumps(meta, indent=2, sort_keys=True, default=str) + "\n"
    folder = store / f"{FOLDER_PREFIX}{uuid.uuid4().hex[:12]}"
    folder.mkdir()
    try:
        for name in TABLES:
            path = folder / f"{name}.parquet"
            if name in keep:
                assert previous is not None, "a kept table needs the folder it is kept from"
                _link_or_copy(previous / path.name, path)
            else:
                metadata = {DIGEST_KEY: carried[name]} if name in carried else None
                _atomic_write(path, partial(frames[name].write_parquet, metadata=metadata))
        if fingerprints is not None:
            _atomic_write(folder / FINGERPRINTS_FILENAME, fingerprints.write_parquet)
        _atomic_write(folder / META_FILENAME, lambda tmp: tmp.write_text(payload, encoding="utf-8"))
        with _locked(store, exclusive=True):
            _atomic_write(store / POINTER_FILENAME, lambda tmp: tmp.write_text(folder.name + "\n"))
            _remove_leftovers(store, folder)
    except BaseException:
        if _published_folder(store) != folder:
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return folder


def _remove_leftovers(store: Path, folder: Path) -> None:
    """Remove all but the pointer and the folder it names: older folders, killed saves' files and folders."""
    import shutil

    for entry in store.iterdir():
        if entry.name in (POINTER_FILENAME, folder.name):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)


def _link_or_copy(source: Path, target: Path) -> None:
    """The same file under another name: a hard link, or a copy where links are not supported."""
    import shutil

    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _carried_digest(path: Path) -> str | None:
    """The content digest a table file carries, with the polars version that computed it."""
    try:
        value = pl.read_parquet_metadata(path).get(DIGEST_KEY)
    except (OSError, pl.exceptions.PolarsError):
        return None
    return str(value) if value else None


def _stored_digest(path: Path) -> str | None:
    """The content digest a table file carries, if this polars version wrote it (row hashes vary across)."""
    version, _, digest = str(_carried_digest(path) or "").partition("/")
    return digest if version == pl.__version__ and digest else None


def _atomic_write(path: Path, write: Callable[[Path], object]) -> None:
    """Call `write(tmp_path)` on a temp file beside `path`, then move it into place."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# ---------------------------------------------------------------------------------------------------------
# Sync: pull records, responses and suggestions from Argilla into the store
# ---------------------------------------------------------------------------------------------------------

_SLOT_SUFFIX = re.compile(r"^(?:response|rating|model|source_index)_(\d+)$")


@dataclass(frozen=True)
class SyncResult:
    """What one sync did."""

    sync_id: str
    synced_at: str
    mode: str  # full | incremental | unchanged
    n_records: int
    n_responses: int
    changed_records: int
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return dict(self.__dict__)


def _parse_time(value: Any) -> datetime | None:
    if value is None:
        return None
    stamp = datetime.fromisoformat(str(value))
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def _slot_of(name: str) -> int | None:
    match = _SLOT_SUFFIX.match(name)
    return int(match.group(1)) if match else None


def _value_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _value_rows(question: str, value: Any) -> list[tuple[str, int | None, str | None]]:
    """(question, slot, value) rows: one per slot for rankings and rating_i, one otherwise."""
    if isinstance(value, list) and value and all(isinstance(v, dict) and "value" in v for v in value):
        rows: list[tuple[str, int | None, str | None]] = []
        for item in value:
            slot = _slot_of(str(item["value"]))
            rows.append((question, slot, _value_text(item.get("rank"))))
        return rows
    return [(question, _slot_of(question), _value_text(value))]


def frames_from_records(
    items: list[dict[str, Any]], *, template: str, usernames: dict[str, str], questions: dict[str, str]
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Records, responses and suggestions frames from Argilla REST record items."""
    record_rows: list[dict[str, Any]] = []
    response_rows: list[dict[str, Any]] = []
    suggestion_rows: list[dict[str, Any]] = []
    for item in items:
        record_id = str(item.get("external_id") or item["id"])
        metadata = item.get("metadata") or {}
        prompt_id = str(metadata.get("prompt_id") or record_id)
        round_ = int(metadata.get("round") or 1)
        fields = item.get("fields") or {}
        inserted, updated = _parse_time(item.get("inserted_at")), _parse_time(item.get("updated_at"))
        prompt = fields.get("prompt")
        slots = {slot: text for name, text in fields.items() if (slot := _slot_of(name)) is not None}
        if "completion" in fields:
            slots[1] = fields["completion"]
        models = {slot: metadata.get(f"model_{slot}") for slot in slots}
        if "completion" in fields:
            models[1] = metadata.get("model")
        for slot in sorted(slots):
            record_rows.append(
                {
                    "record_id": record_id,
                    "prompt_id": prompt_id,
                    "round": round_,
                    "template": template,
                    "prompt": _value_text(prompt),
                    "slot": slot,
                    "response": _value_text(slots[slot]),
                    "model": _value_text(models.get(slot)),
                    "status": item.get("status"),
                    "inserted_at": inserted,
                    "updated_at": updated,
                }
            )
        for response in item.get("responses") or []:
            annotator = usernames.get(str(response["user_id"]), str(response["user_id"]))
            base = {
                "record_id": record_id,
                "prompt_id": prompt_id,
                "round": round_,
                "annotator": annotator,
                "status": response["status"],
                "updated_at": _parse_time(response.get("updated_at")),
            }
            values = response.get("values") or {}
            if not values:
                response_rows.append({**base, "question": None, "slot": None, "value": None})
            for question, holder in values.items():
                value = holder.get("value") if isinstance(holder, dict) else holder
                for q, slot, text in _value_rows(question, value):
                    response_rows.append({**base, "question": q, "slot": slot, "value": text})
        for suggestion in item.get("suggestions") or []:
            question = questions.get(str(suggestion["question_id"]), str(suggestion["question_id"]))
            score = suggestion.get("score")
            for q, slot, text in _value_rows(question, suggestion.get("value")):
                suggestion_rows.append(
                    {
                        "record_id": record_id,
                        "question": q,
                        "slot": slot,
                        "value": text,
                        "score": float(score) if isinstance(score, int | float) else None,
                        "agent": suggestion.get("agent"),
                    }
                )
    return (
        pl.DataFrame(record_rows, schema=RECORDS_SCHEMA),
        pl.DataFrame(response_rows, schema=RESPONSES_SCHEMA),
        pl.DataFrame(suggestion_rows, schema=SUGGESTIONS_SCHEMA),
    )


def table_digest(frame: pl.DataFrame) -> str:
    """A digest of one table's content: its schema and its sorted row hashes (row order does not matter)."""
    digest = hashlib.sha256()
    digest.update(",".join(f"{name}:{dtype}" for name, dtype in frame.schema.items()).encode())
    if frame.height:
        digest.update(frame.hash_rows(seed=0).sort().to_numpy().tobytes())
    return digest.hexdigest()


def content_id(*frames: pl.DataFrame) -> str:
    """An id of a snapshot's content: the same rows give the same id, in any order and at any sync time.

    The tables' digests (`table_digest`) feed one sha256. The id is stable for a given polars version;
    every export records the id of the snapshot it read, so exports stay reproducible.
    """
    return _combined_id([table_digest(frame) for frame in frames])


def _combined_id(digests: list[str]) -> str:
    return hashlib.sha256("".join(digests).encode()).hexdigest()[:16]


def sync_snapshot(
    client: ArgillaClient,
    campaign_dir: Path | str,
    *,
    dataset_name: str,
    workspace: str,
    template: str,
    on_page: Callable[[int], object] | None = None,
) -> tuple[Snapshot, SyncResult]:
    """Bring the local snapshot up to date with the server and record the sync's progress counts.

    Fetches the records that changed (on the local server, whose fingerprints also prove a snapshot
    unchanged) or every record (elsewhere), and notices deletions.
    Each sync publishes a new folder as a whole; tables whose content did not change are linked into it,
    not rewritten. One sync runs at a time per store.
    """
    import time
    from concurrent.futures import ThreadPoolExecutor

    started = time.perf_counter()
    directory = snapshot_dir(campaign_dir)
    with _sync_lock(directory), ThreadPoolExecutor(max_workers=1) as pool:
        # The previous fingerprints and tables load while the server answers; the sync waits for the
        # tables only when it needs them (no other sync can change them meanwhile).
        folder = _published_folder(directory)
        printing = pool.submit(_load_fingerprints, folder)
        loading = pool.submit(_load_stored, folder)
        dataset = client.require_dataset(dataset_name, workspace)
        dataset_id = str(dataset["id"])
        details = client.dataset(dataset_id)
        progress = client.dataset_progress(dataset_id)
        meta = _stored_meta(folder)
        if meta is not None and meta.get("dataset_id") != dataset_id:
            meta = None  # another dataset (re-created): start afresh

        def load_prints() -> pl.DataFrame | None:
            return printing.result() if meta is not None else None

        def load_previous() -> _Stored | None:
            stored = loading.result()
            return stored if stored is not None and stored.snapshot.meta == meta else None

        job = _SyncJob(
            client=client,
            directory=directory,
            dataset_id=dataset_id,
            dataset_name=dataset_name,
            workspace=workspace,
            template=template,
            details=details,
            progress=progress,
            meta=meta,
            load_prints=load_prints,
            load_previous=load_previous,
            on_page=on_page,
        )
        snapshot, result = _sync(job)
    return snapshot, replace(result, seconds=round(time.perf_counter() - started, 3))


@dataclass(frozen=True)
class _Stored:
    """A snapshot as read from disk, with the digests its table files carry and its counts."""

    snapshot: Snapshot
    digests: dict[str, str]
    counts: tuple[int, int]  # records, (record, annotator) responses
    folder: Path  # where its files are


def _published_folder(store: Path) -> Path | None:
    """The folder of the published snapshot, or None when there is none or the pointer is damaged."""
    try:
        return current_folder(store) if store.is_dir() else None
    except InputError:
        return None


def _stored_meta(folder: Path | None) -> dict[str, Any] | None:
    """The published snapshot's meta, or None when there is none or it cannot be read."""
    if folder is None:
        return None
    try:
        return _read_meta(folder)[0]
    except (NotFound, InputError):
        return None


def _load_stored(folder: Path | None) -> _Stored | None:
    """The published snapshot and the digests its files carry (None if there is none or it is damaged)."""
    if folder is None:
        return None
    try:
        snapshot = _read_snapshot(folder)
    except (NotFound, InputError):
        return None
    digests = {
        name: digest
        for name in CONTENT_TABLES
        if (digest := _stored_digest(folder / f"{name}.parquet")) is not None
    }
    return _Stored(snapshot, digests, _counts(snapshot.records, snapshot.responses), folder)


@contextlib.contextmanager
def _sync_lock(directory: Path) -> Iterator[None]:
    """Serialise syncs of one store (readers are not blocked): a sync keeps files it did not change."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks
        yield
        return
    directory.parent.mkdir(parents=True, exist_ok=True)
    with open(directory.parent / SYNC_LOCK_FILENAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@dataclass(frozen=True)
class _SyncJob:
    """What every sync mode reads: the server, the dataset and the stored snapshot."""

    client: ArgillaClient
    directory: Path
    dataset_id: str
    dataset_name: str
    workspace: str
    template: str
    details: dict[str, Any]  # the dataset as the server describes it
    progress: dict[str, Any]  # the server's record counts (total, completed, pending)
    meta: dict[str, Any] | None  # the stored meta, None when there is none for this dataset
    load_prints: Callable[[], pl.DataFrame | None]  # the stored fingerprints (None without meta)
    load_previous: Callable[[], _Stored | None]  # the stored snapshot, when its meta is `meta`
    on_page: Callable[[int], object] | None


@dataclass(frozen=True)
class _Pulled:
    """The content tables one sync mode produced, and what the shared tail needs to write them."""

    mode: str  # full | incremental | unchanged
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]  # in CONTENT_TABLES order
    changed: int  # records new, changed or deleted since the stored snapshot
    counts: tuple[int, int]  # records, (record, annotator) responses
    stored: _Stored | None  # the snapshot this one follows (None when there is none)
    fingerprints: pl.DataFrame | None  # what fingerprints.parquet becomes (None: none)
    fingerprints_as_of: str | None  # the server time the fingerprints describe
    unchanged: frozenset[str] = frozenset()  # content tables equal to the stored ones


def _sync(job: _SyncJob) -> tuple[Snapshot, SyncResult]:
    """Pull by the cheapest mode that is exact, then write the result.

    No shortcut trusts the dataset's `last_activity_at`: bulk writes with responses (the SDK's
    `records.log`) and restores leave it alone. Only the rows' own update times, which every write
    path sets, and the totals, which every delete moves, prove a snapshot unchanged (`_pull_changes`).
    """
    import uuid

    now = datetime.now(UTC)
    sync_id = uuid.uuid4().hex[:12]
    return _write_sync(job, _pull_changes(job), sync_id=sync_id, now=now)


@dataclass(frozen=True)
class _Names:
    """The server's ids of users and questions, by which responses and suggestions name them."""

    usernames: dict[str, str]
    questions: dict[str, str]


def _pull_changes(job: _SyncJob) -> _Pulled:
    """Fetch the records that changed when the server gives fingerprints to compare, else every record."""
    client = job.client
    names = _Names(
        usernames=client.usernames_by_id(),
        questions={str(q["id"]): str(q["name"]) for q in client.questions(job.dataset_id)},
    )
    since = job.meta.get("fingerprints_as_of") if job.meta is not None else None
    old_prints = job.load_prints()
    served: dict[str, Any] | None = None
    fingerprints: pl.DataFrame | None = None
    if old_prints is not None and since:
        # Only the records touched since the last sync (a margin covers transactions in flight).
        served = client.record_fingerprints(job.dataset_id, since=_before(str(since), seconds=5))
        if served is not None:
            fingerprints = _merge_prints(old_prints, _fingerprint_frame(served["items"]))
    if served is None:
        served = client.record_fingerprints(job.dataset_id)
        fingerprints = _fingerprint_frame(served["items"]) if served is not None else None
    if fingerprints is None or old_prints is None or served is None:
        return _pull_full(job, names, served, fingerprints)
    stored = job.load_previous()
    if stored is None:
        return _pull_full(job, names, served, fingerprints)
    pulled = _pull_incremental(job, names, stored, old_prints, fingerprints, served)
    if since and not _totals_match(pulled, served):
        # Deleted records, responses or suggestions leave nothing to select by time: compare every record.
        served = client.record_fingerprints(job.dataset_id)
        if served is None:  # pragma: no cover - the endpoint answered a moment ago
            msg = "The server stopped answering the sync endpoint; run the same command again."
            raise ServerError(msg)
        pulled = _pull_incremental(
            job, names, stored, old_prints, _fingerprint_frame(served["items"]), served
        )
    return pulled


def _pull_incremental(
    job: _SyncJob,
    names: _Names,
    stored: _Stored,
    old_prints: pl.DataFrame,
    prints: pl.DataFrame,
    served: dict[str, Any],
) -> _Pulled:
    """The stored tables with the records whose fingerprints moved fetched again, and the gone ones dropped."""
    stale, gone = _moved(old_prints, prints)
    items = job.client.records_by_id(job.dataset_id, stale["server_id"].to_list()) if stale.height else []
    if job.on_page is not None:
        job.on_page(len(items))
    fresh = frames_from_records(
        items, template=job.template, usernames=names.usernames, questions=names.questions
    )
    drop = set(stale["record_id"].to_list()) | gone
    for new in fresh:
        drop.update(new["record_id"].to_list())
    merged: list[pl.DataFrame] = []
    removed: list[pl.DataFrame] = []
    same: set[str] = set()
    for name, new in zip(CONTENT_TABLES, fresh, strict=True):
        old = stored.snapshot.table(name)
        kept, taken = _replace_records(old, new, drop)
        merged.append(kept)
        removed.append(taken)
        if kept is old:
            same.add(name)
    # The counts of the rows kept plus those of the rows fetched: records partition both.
    gone_counts, new_counts = _counts(removed[0], removed[1]), _counts(fresh[0], fresh[1])
    counts = (
        stored.counts[0] - gone_counts[0] + new_counts[0],
        stored.counts[1] - gone_counts[1] + new_counts[1],
    )
    return _Pulled(
        mode="incremental" if drop else "unchanged",
        tables=(merged[0], merged[1], merged[2]),
        changed=len(drop),
        counts=counts,
        stored=stored,
        fingerprints=prints,
        fingerprints_as_of=served.get("as_of"),
        unchanged=frozenset(same),
    )


def _pull_full(
    job: _SyncJob, names: _Names, served: dict[str, Any] | None, fingerprints: pl.DataFrame | None
) -> _Pulled:
    """Every record of the dataset, page by page."""
    stored = job.load_previous()
    items: list[dict[str, Any]] = []
    for page in job.client.iter_records(job.dataset_id):
        items.extend(page)
        if job.on_page is not None:
            job.on_page(len(page))
    records, responses, suggestions = frames_from_records(
        items, template=job.template, usernames=names.usernames, questions=names.questions
    )
    changed = (
        _changed_records(stored.snapshot, records, responses)
        if stored is not None
        else records["record_id"].n_unique()
    )
    return _Pulled(
        mode="full",
        tables=(records, responses, suggestions),
        changed=int(changed),
        counts=_counts(records, responses),
        stored=stored,
        fingerprints=fingerprints,
        fingerprints_as_of=served.get("as_of") if served is not None else None,
    )


def _write_sync(
    job: _SyncJob, pulled: _Pulled, *, sync_id: str, now: datetime
) -> tuple[Snapshot, SyncResult]:
    """Append the sync to the history, write the tables that changed and the meta, and say what was done."""
    records, responses, suggestions = pulled.tables
    n_records, n_responses = pulled.counts
    stored = pulled.stored
    progress = job.progress
    sync_row = pl.DataFrame(
        [
            {
                "sync_id": sync_id,
                "synced_at": now,
                "n_records": int(progress.get("total", 0)),
                "n_responses": n_responses,
                "completed": int(progress.get("completed", 0)),
                "pending": int(progress.get("pending", 0)),
            }
        ],
        schema=SYNCS_SCHEMA,
    )
    syncs = pl.concat([stored.snapshot.syncs, sync_row]) if stored is not None else sync_row
    # An unchanged table keeps its file, and the digest that file carries; files written before digests
    # were stored are rewritten once to carry one.
    stored_digests = stored.digests if stored is not None else {}
    keep = frozenset(name for name in pulled.unchanged if name in stored_digests)
    digests = {
        name: stored_digests[name] if name in keep else table_digest(frame)
        for name, frame in zip(CONTENT_TABLES, pulled.tables, strict=True)
    }
    distribution = job.details.get("distribution") or {}
    meta = {
        "snapshot_id": _combined_id([digests[name] for name in CONTENT_TABLES]),
        "sync_id": sync_id,
        "synced_at": now.isoformat(),
        "dataset": job.dataset_name,
        "dataset_id": job.dataset_id,
        "workspace": job.workspace,
        "template": job.template,
        "min_submitted": int(distribution.get("min_submitted", 1)),
        "api_url": job.client.api_url,
        "fingerprints_as_of": pulled.fingerprints_as_of,
    }
    snapshot = Snapshot(records=records, responses=responses, suggestions=suggestions, syncs=syncs, meta=meta)
    previous = stored.folder if stored is not None else None
    _save(
        job.directory,
        snapshot,
        digests=digests,
        keep=keep,
        previous=previous,
        fingerprints=pulled.fingerprints,
    )
    result = SyncResult(
        sync_id=sync_id,
        synced_at=now.isoformat(),
        mode=pulled.mode,
        n_records=n_records,
        n_responses=n_responses,
        changed_records=pulled.changed,
        seconds=0.0,
    )
    return snapshot, result


FINGERPRINTS_FILENAME = "fingerprints.parquet"
SYNC_LOCK_FILENAME = "sync.lock"  # beside the snapshot folder, like the readers' lock
_FINGERPRINT_SCHEMA = {"record_id": pl.String(), "server_id": pl.String(), "fingerprint": pl.String()}


def _fingerprint_frame(items: list[Any]) -> pl.DataFrame:
    """record_id (as the snapshot names it), server id and a change fingerprint per record."""
    return pl.DataFrame(
        {
            "record_id": [str(item[1] or item[0]) for item in items],
            "server_id": [str(item[0]) for item in items],
            "fingerprint": ["|".join(str(part) for part in item[2:]) for item in items],
        },
        schema=_FINGERPRINT_SCHEMA,
    )


def _merge_prints(old: pl.DataFrame, changed: pl.DataFrame) -> pl.DataFrame:
    """The previous fingerprints with the changed records' rows replaced or added."""
    kept = old.filter(~pl.col("record_id").is_in(changed["record_id"].implode()))
    return pl.concat([kept, changed])


def _replace_records(
    old: pl.DataFrame, new: pl.DataFrame, drop: set[str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """`old` with the `drop` records' rows replaced by `new`, and the rows taken out.

    Returns `old` itself when the replacement changes nothing. `drop` must hold every record id in `new`.
    """
    if not drop:
        return old, old.clear()
    selected = pl.col("record_id").is_in(pl.Series(list(drop), dtype=pl.String()).implode())
    before = old.filter(selected)
    if before.height == new.height and _same_rows(before, new):
        return old, before
    return pl.concat([old.filter(~selected), new]), before


def _same_rows(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    """Whether two frames of one schema hold the same rows, in any order."""
    if not a.height:
        return not b.height
    return a.sort(a.columns, nulls_last=True).equals(b.sort(b.columns, nulls_last=True))


def _before(stamp: str, *, seconds: int) -> str:
    """An ISO time `seconds` earlier."""
    from datetime import timedelta

    return (datetime.fromisoformat(stamp) - timedelta(seconds=seconds)).isoformat()


def _counts(records: pl.DataFrame, responses: pl.DataFrame) -> tuple[int, int]:
    """Records, and (record, annotator) responses, in a snapshot."""
    n_records = records["record_id"].n_unique() if records.height else 0
    n_responses = responses.select("record_id", "annotator").unique().height if responses.height else 0
    return n_records, n_responses


def _totals_match(pulled: _Pulled, served: dict[str, Any]) -> bool:
    """Whether the snapshot holds as many records, responses and suggestions as the server says it has."""
    if pulled.counts != (int(served.get("records", -1)), int(served.get("responses", -1))):
        return False
    if "suggestions" not in served:  # a local server from before suggestions were counted
        return True
    # A suggestion is one row per question, or one per slot for a ranking.
    suggestions = pulled.tables[2].select("record_id", "question").unique().height
    return suggestions == int(served["suggestions"])


def _load_fingerprints(folder: Path | None) -> pl.DataFrame | None:
    if folder is None:
        return None
    try:
        return pl.read_parquet(folder / FINGERPRINTS_FILENAME).cast(_FINGERPRINT_SCHEMA)  # type: ignore[arg-type]
    except (OSError, pl.exceptions.PolarsError):
        return None


def _moved(old: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, set[str]]:
    """Records that are new or changed since `old` (with server ids), and record ids that are gone."""
    joined = new.join(
        old.select("record_id", pl.col("fingerprint").alias("before")), on="record_id", how="left"
    )
    stale = joined.filter(pl.col("fingerprint").ne_missing(pl.col("before"))).select("record_id", "server_id")
    gone = set(old.join(new, on="record_id", how="anti")["record_id"].to_list())
    return stale, gone


def _changed_records(previous: Snapshot, records: pl.DataFrame, responses: pl.DataFrame) -> int:
    """How many records differ from the previous snapshot (new, deleted, or with other responses)."""

    def keyed(frame: pl.DataFrame) -> pl.DataFrame:
        if frame.height == 0:
            return pl.DataFrame(schema={"record_id": pl.String(), "h": pl.String()})
        return (
            frame.with_columns(
                pl.concat_str(
                    [pl.col(c).cast(pl.String).fill_null("") for c in frame.columns], separator="\x1f"
                ).alias("row")
            )
            .group_by("record_id")
            .agg(pl.col("row").sort().str.join("\x1e").alias("h"))
        )

    old = keyed(
        pl.concat([previous.records.select("record_id"), previous.responses.select("record_id")])
        .unique()
        .join(previous.responses, on="record_id", how="left")
    )
    new = keyed(
        pl.concat([records.select("record_id"), responses.select("record_id")])
        .unique()
        .join(responses, on="record_id", how="left")
    )
    joined = old.join(new, on="record_id", how="full", coalesce=True)
    return int(joined.filter(pl.col("h").ne_missing(pl.col("h_right"))).height)
