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
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
LOCK_FILENAME = "snapshot.lock"  # beside the snapshot folder, which holds the tables only
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
def _locked(directory: Path, *, exclusive: bool) -> Iterator[None]:
    """Hold the snapshot's lock: readers share it, a save takes it alone, so no reader sees half a save."""
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; each file is still replaced atomically
        yield
        return
    with open(directory.parent / LOCK_FILENAME, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def load_snapshot(campaign_dir: Path | str) -> Snapshot:
    """Read the snapshot of a campaign from disk."""
    directory = snapshot_dir(campaign_dir)
    if not directory.is_dir():
        msg = f"No snapshot in {directory}. Run 'campaign status' to sync first."
        raise NotFound(msg)
    with _locked(directory, exclusive=False):
        return _read_snapshot(directory)


def _read_snapshot(directory: Path) -> Snapshot:
    meta_path = directory / META_FILENAME
    if not meta_path.is_file():
        msg = f"No snapshot in {directory}. Run 'campaign status' to sync first."
        raise NotFound(msg)
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        msg = f"Cannot read {meta_path}: {exc}. Run 'campaign status' to sync again."
        raise InputError(msg) from None
    if not isinstance(meta, dict):
        msg = f"{meta_path} must hold a JSON object. Run 'campaign status' to sync again."
        raise InputError(msg)
    tables: dict[str, pl.DataFrame] = {}
    for name in TABLES:
        path = directory / f"{name}.parquet"
        if not path.is_file():
            if name in ("suggestions", "syncs"):
                tables[name] = empty_table(name)
                continue
            msg = f"No snapshot in {directory} ({path.name} is missing). Run 'campaign status' to sync first."
            raise NotFound(msg)
        try:
            frame = pl.read_parquet(path)
        except (OSError, pl.exceptions.PolarsError) as exc:
            msg = f"Cannot read {path}: {exc}. Run 'campaign status' to sync again."
            raise InputError(msg) from None
        tables[name] = conform(frame, name, where=str(path))
    return Snapshot(meta=meta, **tables)


def save_snapshot(campaign_dir: Path | str, snapshot: Snapshot) -> Path:
    """Write every table and `meta.json`, each atomically; `meta.json` goes last so it marks completeness."""
    directory = snapshot_dir(campaign_dir)
    directory.mkdir(parents=True, exist_ok=True)
    frames = {name: conform(snapshot.table(name), name) for name in TABLES}
    payload = json.dumps(snapshot.meta, indent=2, sort_keys=True, default=str) + "\n"
    with _locked(directory, exclusive=True):
        for name, frame in frames.items():
            _atomic_write(directory / f"{name}.parquet", lambda tmp, frame=frame: frame.write_parquet(tmp))
        _atomic_write(directory / META_FILENAME, lambda tmp: tmp.write_text(payload, encoding="utf-8"))
    return directory


def _atomic_write(path: Path, write: Any) -> None:
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


def content_id(*frames: pl.DataFrame) -> str:
    """An id of a snapshot's content: the same rows give the same id, in any order and at any sync time.

    Row hashes (sorted, so order does not matter) feed one sha256. The id is stable for a given polars
    version; every export records the id of the snapshot it read, so exports stay reproducible.
    """
    digest = hashlib.sha256()
    for frame in frames:
        digest.update(",".join(f"{name}:{dtype}" for name, dtype in frame.schema.items()).encode())
        if frame.height:
            digest.update(frame.hash_rows(seed=0).sort().to_numpy().tobytes())
    return digest.hexdigest()[:16]


def sync_snapshot(
    client: ArgillaClient,
    campaign_dir: Path | str,
    *,
    dataset_name: str,
    workspace: str,
    template: str,
    on_page: Any = None,
) -> tuple[Snapshot, SyncResult]:
    """Bring the local snapshot up to date with the server and record the sync's progress counts.

    Skips the download when the dataset shows no activity since the last sync; otherwise fetches the
    records that changed (on the local server) or every record (elsewhere), and notices deletions.
    """
    import time
    import uuid

    started = time.perf_counter()
    dataset = client.require_dataset(dataset_name, workspace)
    dataset_id = str(dataset["id"])
    details = client.dataset(dataset_id)
    previous = _load_previous(campaign_dir, dataset_id)
    progress = client.dataset_progress(dataset_id)
    # Responses touch last_activity_at; seeding and status changes show in the progress counts.
    activity = "|".join(
        str(value)
        for value in (
            details.get("last_activity_at"),
            details.get("updated_at"),
            progress.get("total"),
            progress.get("completed"),
        )
    )
    now = datetime.now(UTC)
    sync_id = uuid.uuid4().hex[:12]
    fingerprints: pl.DataFrame | None = None
    served: dict[str, Any] | None = None

    if previous is not None and previous.meta.get("last_activity_at") == activity:
        mode, changed = "unchanged", 0
        records, responses, suggestions = previous.records, previous.responses, previous.suggestions
        fingerprints = _load_fingerprints(campaign_dir)
    else:
        usernames = client.usernames_by_id()
        questions = {str(q["id"]): str(q["name"]) for q in client.questions(dataset_id)}
        old_prints = _load_fingerprints(campaign_dir) if previous is not None else None
        since = previous.meta.get("fingerprints_as_of") if previous is not None else None
        if old_prints is not None and since:
            # Only the records touched since the last sync (a margin covers transactions in flight).
            served = client.record_fingerprints(dataset_id, since=_before(str(since), seconds=5))
            if served is not None:
                fingerprints = _merge_prints(old_prints, _fingerprint_frame(served["items"]))
        if served is None:
            served = client.record_fingerprints(dataset_id)
            fingerprints = _fingerprint_frame(served["items"]) if served is not None else None
        if (
            previous is not None
            and fingerprints is not None
            and old_prints is not None
            and served is not None
        ):

            def refetch(prints: pl.DataFrame) -> tuple[tuple[pl.DataFrame, ...], set[str]]:
                stale, gone = _moved(old_prints, prints)
                items = client.records_by_id(dataset_id, stale["server_id"].to_list()) if stale.height else []
                if on_page is not None:
                    on_page(len(items))
                fresh = frames_from_records(
                    items, template=template, usernames=usernames, questions=questions
                )
                drop = set(stale["record_id"].to_list()) | gone
                merged = tuple(
                    pl.concat([old.filter(~pl.col("record_id").is_in(list(drop))), new])
                    for old, new in zip(
                        (previous.records, previous.responses, previous.suggestions), fresh, strict=True
                    )
                )
                return merged, drop

            (records, responses, suggestions), drop = refetch(fingerprints)
            if since and not _totals_match(records, responses, served):
                # Deleted records or responses leave nothing to select by time: compare every record.
                served = client.record_fingerprints(dataset_id)
                if served is None:  # pragma: no cover - the endpoint answered a moment ago
                    raise ServerError(
                        "The server stopped answering the sync endpoint; run the same command again."
                    )
                fingerprints = _fingerprint_frame(served["items"])
                (records, responses, suggestions), drop = refetch(fingerprints)
            mode, changed = "incremental", len(drop)
        else:
            items = []
            for page in client.iter_records(dataset_id):
                items.extend(page)
                if on_page is not None:
                    on_page(len(page))
            records, responses, suggestions = frames_from_records(
                items, template=template, usernames=usernames, questions=questions
            )
            mode = "full"
            changed = (
                _changed_records(previous, records, responses)
                if previous is not None
                else records["record_id"].n_unique()
            )

    n_responses = responses.select(["record_id", "annotator"]).unique().height if responses.height else 0
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
    syncs = pl.concat([previous.syncs, sync_row]) if previous is not None else sync_row
    distribution = details.get("distribution") or {}
    meta = {
        "snapshot_id": content_id(records, responses, suggestions),
        "sync_id": sync_id,
        "synced_at": now.isoformat(),
        "last_activity_at": activity,
        "dataset": dataset_name,
        "dataset_id": dataset_id,
        "workspace": workspace,
        "template": template,
        "min_submitted": int(distribution.get("min_submitted", 1)),
        "api_url": client.api_url,
        "fingerprints_as_of": (
            served.get("as_of")
            if served is not None
            else (
                previous.meta.get("fingerprints_as_of")
                if previous is not None and fingerprints is not None
                else None
            )
        ),
    }
    snapshot = Snapshot(records=records, responses=responses, suggestions=suggestions, syncs=syncs, meta=meta)
    fingerprint_path = snapshot_dir(campaign_dir) / FINGERPRINTS_FILENAME
    if fingerprints is None:
        fingerprint_path.unlink(missing_ok=True)
    else:
        snapshot_dir(campaign_dir).mkdir(parents=True, exist_ok=True)
        _atomic_write(fingerprint_path, lambda tmp: fingerprints.write_parquet(tmp))
    save_snapshot(campaign_dir, snapshot)
    result = SyncResult(
        sync_id=sync_id,
        synced_at=now.isoformat(),
        mode=mode,
        n_records=records["record_id"].n_unique() if records.height else 0,
        n_responses=n_responses,
        changed_records=int(changed),
        seconds=round(time.perf_counter() - started, 3),
    )
    return snapshot, result


FINGERPRINTS_FILENAME = "fingerprints.parquet"
_FINGERPRINT_SCHEMA = {"record_id": pl.String(), "server_id": pl.String(), "fingerprint": pl.String()}


def _fingerprint_frame(items: list[Any]) -> pl.DataFrame:
    """record_id (as the snapshot names it), server id and a change fingerprint per record."""
    rows = [
        {
            "record_id": str(external or server_id),
            "server_id": str(server_id),
            "fingerprint": "|".join(str(part) for part in rest),
        }
        for server_id, external, *rest in items
    ]
    return pl.DataFrame(rows, schema=_FINGERPRINT_SCHEMA)


def _merge_prints(old: pl.DataFrame, changed: pl.DataFrame) -> pl.DataFrame:
    """The previous fingerprints with the changed records' rows replaced or added."""
    kept = old.filter(~pl.col("record_id").is_in(changed["record_id"].implode()))
    return pl.concat([kept, changed])


def _before(stamp: str, *, seconds: int) -> str:
    """An ISO time `seconds` earlier."""
    from datetime import timedelta

    return (datetime.fromisoformat(stamp) - timedelta(seconds=seconds)).isoformat()


def _totals_match(records: pl.DataFrame, responses: pl.DataFrame, served: dict[str, Any]) -> bool:
    """Whether the snapshot holds as many records and responses as the server says the dataset has."""
    n_records = records["record_id"].n_unique() if records.height else 0
    n_responses = responses.select("record_id", "annotator").unique().height if responses.height else 0
    return n_records == int(served.get("records", -1)) and n_responses == int(served.get("responses", -1))


def _load_fingerprints(campaign_dir: Path | str) -> pl.DataFrame | None:
    path = snapshot_dir(campaign_dir) / FINGERPRINTS_FILENAME
    try:
        return pl.read_parquet(path).cast(_FINGERPRINT_SCHEMA)  # type: ignore[arg-type]
    except (OSError, pl.exceptions.PolarsError):
        return None


def _moved(old: pl.DataFrame, new: pl.DataFrame) -> tuple[pl.DataFrame, set[str]]:
    """Records that are new or changed since `old` (with server ids), and record ids that are gone."""
    joined = new.join(
        old.select("record_id", pl.col("fingerprint").alias("before")), on="record_id", how="left"
    )
    stale = joined.filter(pl.col("fingerprint").ne_missing(pl.col("before"))).select("record_id", "server_id")
    gone = set(old["record_id"].to_list()) - set(new["record_id"].to_list())
    return stale, gone


def _load_previous(campaign_dir: Path | str, dataset_id: str) -> Snapshot | None:
    try:
        previous = load_snapshot(campaign_dir)
    except (NotFound, InputError):
        return None
    if previous.meta.get("dataset_id") != dataset_id:
        return None  # another dataset (re-created): start afresh
    return previous


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
