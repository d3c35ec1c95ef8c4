"""The local snapshot of a campaign: long-format parquet tables under `<campaign>/.campaign/snapshot/`.

The store (schemas, load, save) comes first and is self-contained; `status` and `export` read it offline.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from campaign.errors import InputError, NotFound

# ---------------------------------------------------------------------------------------------------------
# Store: schemas, load, save
# ---------------------------------------------------------------------------------------------------------

SNAPSHOT_SUBDIR = Path(".campaign") / "snapshot"
META_FILENAME = "meta.json"
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


def load_snapshot(campaign_dir: Path | str) -> Snapshot:
    """Read the snapshot of a campaign from disk."""
    directory = snapshot_dir(campaign_dir)
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
    for name, frame in frames.items():
        _atomic_write(directory / f"{name}.parquet", lambda tmp, frame=frame: frame.write_parquet(tmp))
    payload = json.dumps(snapshot.meta, indent=2, sort_keys=True, default=str) + "\n"
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
