"""Disk and Hub writers: an export folder is built beside its target and renamed into place in one step."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from campaign.destinations import cannot_write, check_folder, remove_leftovers, replace_folder, staging_path
from campaign.errors import AuthenticationFailed, ConnectionFailed, NotFound
from campaign.export.build import ExportResult
from campaign.export.card import render_card

MANIFEST = "manifest.json"
CARD = "README.md"
PACKAGES = ("argilla-campaign", "polars", "pyarrow")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _versions() -> dict[str, str]:
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def _plain_type(dtype: pa.DataType) -> pa.DataType:
    """Arrow's large string/list types as the plain ones `datasets` shows as Value('string') and lists."""
    if pa.types.is_large_string(dtype):
        return pa.string()
    if pa.types.is_large_list(dtype) or pa.types.is_list(dtype):
        return pa.list_(_plain_type(dtype.value_type))
    if pa.types.is_struct(dtype):
        return pa.struct([pa.field(f.name, _plain_type(f.type), f.nullable) for f in dtype])
    return dtype


# Free text and ids are (nearly) all distinct, so a dictionary only costs time there; min/max statistics of
# free text help no reader. The other flat columns (model, source, round, scores, labels) keep both.
_FREE_TEXT = frozenset({"prompt", "chosen", "rejected", "completion"})
_IDS = frozenset({"prompt_id", "record_id", "rejected_record_id"})


def parquet_options(schema: pa.Schema) -> dict[str, Any]:
    """pyarrow write options: snappy, dictionaries for repetitive flat columns, statistics but for free text."""
    flat = [f.name for f in schema if not pa.types.is_nested(f.type)]
    return {
        "compression": "snappy",
        "use_dictionary": [name for name in flat if name not in _FREE_TEXT | _IDS],
        "write_statistics": [name for name in flat if name not in _FREE_TEXT],
    }


def _plain_strings(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A large_string column as plain strings over the same text bytes, or None if it does not fit them.

    Only the offsets are narrowed: a cast would copy the text too, and its first call imports
    pyarrow.compute (~30 ms).
    """
    import numpy as np

    chunks = []
    for chunk in column.chunks:
        validity, offsets, data = chunk.buffers()
        wide = np.frombuffer(offsets, dtype=np.int64)[: chunk.offset + len(chunk) + 1]
        if wide.size and wide[-1] >= 2**31:
            return None
        narrow = pa.py_buffer(wide.astype(np.int32))
        chunks.append(
            pa.Array.from_buffers(
                pa.string(), len(chunk), [validity, narrow, data], chunk.null_count, chunk.offset
            )
        )
    return pa.chunked_array(chunks, type=pa.string())


def _plain_table(table: pa.Table) -> pa.Table:
    """`table` with the plain types of `_plain_type`."""
    schema = pa.schema([pa.field(f.name, _plain_type(f.type), f.nullable) for f in table.schema])
    columns = []
    for column, target in zip(table.columns, schema.types, strict=True):
        plain = None
        if column.type == target:
            plain = column
        elif pa.types.is_large_string(column.type) and target == pa.string():
            plain = _plain_strings(column)
        columns.append(column.cast(target) if plain is None else plain)
    return pa.Table.from_arrays(columns, schema=schema)


def write_frame(frame: pl.DataFrame, path: Path, *, jsonl: bool = False) -> None:
    """Write one split as parquet with plain string types (and jsonl beside it when asked)."""
    import pyarrow.parquet as pq

    table = _plain_table(frame.to_arrow())
    pq.write_table(table, path, **parquet_options(table.schema))
    if jsonl:
        frame.write_ndjson(path.with_suffix(".jsonl"))


def export_id(
    snapshot_id: str,
    config_hash: str,
    *,
    jsonl: bool,
    repo_id: str | None,
    name: str | None,
    language: str | None,
    license: str | None,
) -> str:
    """What makes two exports the same folder: the snapshot, the options and what the card shows."""
    parts = {
        "snapshot_id": snapshot_id,
        "config_hash": config_hash,
        "jsonl": jsonl,
        "repo_id": repo_id,
        "card": [name, language, license],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16]


def _result_id(result: ExportResult, *, jsonl: bool, repo_id: str | None) -> str:
    info = result.info
    return export_id(
        str(result.snapshot_meta.get("snapshot_id") or ""),
        result.config_hash,
        jsonl=jsonl,
        repo_id=repo_id,
        name=info.get("name"),
        language=info.get("language"),
        license=info.get("license"),
    )


def build_manifest(
    result: ExportResult, files: dict[str, dict[str, dict[str, Any]]], *, export_id: str
) -> dict[str, Any]:
    """What the folder holds and how it was made; no timestamps but the snapshot's own."""
    meta = result.snapshot_meta
    formats = {}
    for name, fmt in result.formats.items():
        summary = fmt.summary()
        summary["files"] = files[name]
        formats[name] = summary
    return {
        "campaign": result.info.get("name"),
        "export_id": export_id,
        "snapshot": {
            "snapshot_id": meta.get("snapshot_id"),
            "synced_at": meta.get("synced_at"),
            "dataset": meta.get("dataset") or meta.get("dataset_name"),
            "dataset_id": meta.get("dataset_id"),
            "template": meta.get("template"),
            "min_submitted": meta.get("min_submitted"),
        },
        "config_hash": result.config_hash,
        "options": result.options,
        "rounds": result.rounds,
        "policy": result.policy,
        "formats": formats,
        "skipped": {name: c.as_dict() for name, c in result.skipped.items()},
        "packages": _versions(),
    }


def _manifest(folder: Path) -> dict[str, Any]:
    """`folder`'s manifest, or {} when it has none that reads as one."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest if isinstance(manifest, dict) else {}


def is_export(folder: Path) -> bool:
    """Whether `folder` holds an export this package wrote (recognised by its manifest)."""
    return {"snapshot", "formats", "config_hash"} <= _manifest(folder).keys()


def _holds(folder: Path, wanted: str) -> bool:
    """Whether `folder`'s manifest names the export `wanted` (an `export_id`)."""
    return _manifest(folder).get("export_id") == wanted


def check_export_folder(out: Path | str, *, overwrite: bool, export_id: str | None = None) -> Path:
    """The absolute export folder, once it is new, empty, the export `export_id`, or (with `overwrite`) an export."""
    same = None if export_id is None else (lambda folder: _holds(folder, export_id))
    return check_folder(out, what="an export", ours=is_export, overwrite=overwrite, same=same)


def _fill(
    folder: Path, result: ExportResult, *, jsonl: bool, repo_id: str | None, export_id: str
) -> dict[str, Any]:
    """Write data files, manifest and card into `folder`; return the manifest."""
    files: dict[str, dict[str, dict[str, Any]]] = {}
    jobs: list[tuple[str, str, pl.DataFrame]] = []
    for name, fmt in result.formats.items():
        (folder / name).mkdir()
        files[name] = {}
        jobs += [(name, split, frame) for split, frame in fmt.splits.items() if frame.height]

    def write(job: tuple[str, str, pl.DataFrame]) -> dict[str, Any]:
        name, split, frame = job
        relative = f"{name}/{split}.parquet"
        write_frame(frame, folder / relative, jsonl=jsonl)
        return {"path": relative, "rows": frame.height, "sha256": _sha256(folder / relative)}

    # pyarrow encodes and compresses without the GIL: the files are written side by side, the largest
    # first, so that no worker is left with a large file after the others are done.
    with ThreadPoolExecutor(max_workers=max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        futures = {job[:2]: pool.submit(write, job) for job in sorted(jobs, key=lambda j: -j[2].height)}
        for name, split, _ in jobs:
            files[name][split] = futures[name, split].result()
    manifest = build_manifest(result, files, export_id=export_id)
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n", encoding="utf-8")
    card = render_card(
        manifest,
        agreement=result.info.get("agreement"),
        language=result.info.get("language"),
        license=result.info.get("license") or "other",
        repo_id=repo_id,
    )
    (folder / CARD).write_text(card, encoding="utf-8")
    return manifest


def write_export(
    result: ExportResult,
    out: Path | str,
    *,
    overwrite: bool = False,
    jsonl: bool = False,
    repo_id: str | None = None,
) -> ExportResult:
    """Write the export folder atomically: on any failure nothing is left at `out` that was not there.

    A folder that already holds this export (same snapshot, options and card) is left as it is.
    """
    wanted = _result_id(result, jsonl=jsonl, repo_id=repo_id)
    out = check_export_folder(out, overwrite=overwrite, export_id=wanted)
    if _holds(out, wanted):
        remove_leftovers(out)
        return replace(result, path=str(out), unchanged=True)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = staging_path(out, "tmp")
    except OSError as exc:
        raise cannot_write(out, exc) from None
    try:
        _fill(staging, result, jsonl=jsonl, repo_id=repo_id, export_id=wanted)
        os.chmod(staging, 0o755)  # mkdtemp makes 0700; an export folder is meant to be shared
        replace_folder(staging, out)
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise cannot_write(out, exc) from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    remove_leftovers(out)
    return replace(result, path=str(out))


def push_to_hub(
    folder: Path | str,
    repo_id: str,
    *,
    private: bool = True,
    token: str | None = None,
    api: Any = None,
    commit_message: str | None = None,
) -> str:
    """Create the dataset repo (private by default) and upload the folder in one commit; return its URL."""
    folder = Path(folder)
    if not (folder / MANIFEST).is_file():
        msg = f"{folder} is not an export folder (no {MANIFEST}). Run 'campaign export --out {folder}' first."
        raise NotFound(msg)
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi(token=token)
    from huggingface_hub.errors import HfHubHTTPError

    if commit_message is None:
        with contextlib.suppress(OSError, ValueError):
            manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
            commit_message = f"Export from snapshot {manifest['snapshot']['snapshot_id']}"
    try:
        repo = api.create_repo(
            repo_id=repo_id, repo_type="dataset", private=private, exist_ok=True, token=token
        )
        api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="dataset",
            commit_message=commit_message or "Export from argilla-campaign",
            token=token,
        )
    except HfHubHTTPError as exc:
        status = getattr(exc.response, "status_code", None)
        if status in (401, 403):
            msg = f"The Hub refused to write {repo_id} ({status}). Run 'hf auth login' or set HF_TOKEN."
            raise AuthenticationFailed(msg) from None
        msg = f"Could not push to the Hub repo {repo_id}: {exc}. The export folder is intact at {folder}."
        raise ConnectionFailed(msg) from None
    except OSError as exc:
        # requests' and huggingface_hub's connection and offline errors are OSErrors
        msg = (
            f"Could not reach the Hub to push {repo_id} ({type(exc).__name__}). Check the network and "
            f"HF_ENDPOINT, then push again; the export folder is intact at {folder}."
        )
        raise ConnectionFailed(msg) from None
    url = getattr(repo, "url", None) or f"https://huggingface.co/datasets/{repo_id}"
    return str(url)
