"""Seed sources read in bounded-memory batches: Distiset folders, `datasets` folders, files, Hub ids.

Every reader knows its name and its columns before any row is read, so that the column
contract can be checked first, and yields rows as lists of plain dicts, at most
`batch_size` at a time. Only the columns asked for are converted to Python objects, which
keeps distilabel's large `distilabel_metadata` column out of memory.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.errors import InputError, NotFound, UsageError

if TYPE_CHECKING:
    import pyarrow as pa

Row = dict[str, Any]
BatchOpener = Callable[[int, "Sequence[str] | None"], Iterator[list[Row]]]

DEFAULT_BATCH_SIZE = 1000
DISTISET_CONFIG_FOLDER = "distiset_configs"
PARQUET_SUFFIXES = (".parquet", ".pq")
JSONL_SUFFIXES = (".jsonl", ".ndjson", ".json")
CSV_SUFFIXES = (".csv", ".tsv")
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

SOURCE_HINT = (
    "Pass a Distiset folder, a `datasets` save_to_disk folder, a .parquet/.jsonl/.csv file "
    "or a Hub dataset id (owner/name)."
)


@dataclass(frozen=True)
class SourceReader:
    """A seed source: its name, its columns and its rows, read in batches of dicts."""

    name: str
    kind: str
    columns: tuple[str, ...]
    _open: BatchOpener = field(repr=False, compare=False)
    schema: pa.Schema | None = field(default=None, repr=False, compare=False)
    config: str | None = None
    split: str | None = None

    def iter_batches(
        self, batch_size: int = DEFAULT_BATCH_SIZE, *, columns: Sequence[str] | None = None
    ) -> Iterator[list[Row]]:
        """Yield the rows as lists of at most `batch_size` dicts, limited to `columns` if given."""
        if batch_size < 1:
            msg = f"batch_size must be at least 1, got {batch_size}."
            raise UsageError(msg)
        if columns is not None:
            unknown = [c for c in columns if c not in self.columns]
            if unknown:
                missing = ", ".join(map(repr, unknown))
                msg = f"{self.name}: no column {missing}; columns are {list(self.columns)}."
                raise InputError(msg)
        return self._open(batch_size, list(columns) if columns is not None else None)

    def __iter__(self) -> Iterator[list[Row]]:
        return self.iter_batches()

    @property
    def short_name(self) -> str:
        """A short label for metadata: the file or folder name (with the config), or the Hub id."""
        if self.kind in ("hub", "rows"):
            return self.name
        base = Path(self.name.rsplit(":", 1)[0] if self.config else self.name).name
        return f"{base}:{self.config}" if self.config else base


def open_source(
    source: str | os.PathLike[str],
    *,
    config: str | None = None,
    split: str | None = None,
    loader: Callable[..., Any] | None = None,
) -> SourceReader:
    """Open a seed source by path or Hub id, choosing the Distiset config and split if needed."""
    text = os.fspath(source)
    path = Path(text).expanduser()
    if path.is_dir():
        if _is_distiset(path):
            return _open_distiset(path, config=config, split=split)
        if (path / "dataset_dict.json").is_file():
            return _open_dataset_dict(path, name=str(path), split=split)
        if (path / "state.json").is_file():
            return _open_saved_dataset(path, name=str(path))
        parquet_files = sorted(p for p in path.rglob("*") if p.suffix in PARQUET_SUFFIXES)
        if parquet_files:
            return _open_parquet(parquet_files, name=str(path))
        msg = f"{path} is a folder but holds no Distiset, `datasets` folder or parquet files. {SOURCE_HINT}"
        raise InputError(msg)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in PARQUET_SUFFIXES:
            return _open_parquet([path], name=str(path))
        if suffix in JSONL_SUFFIXES:
            return _open_jsonl(path)
        if suffix in CSV_SUFFIXES:
            return _open_csv(path)
        msg = f"{path}: unsupported file type {suffix or '(none)'!r}. {SOURCE_HINT}"
        raise InputError(msg)
    if _HUB_ID.match(text) and not _looks_like_path(text):
        return _open_hub(text, config=config, split=split, loader=loader)
    msg = f"No such file or folder: {text}. Check the path; {SOURCE_HINT[0].lower()}{SOURCE_HINT[1:]}"
    raise NotFound(msg)


def _looks_like_path(text: str) -> bool:
    """A source that names a local file: a data file extension, a leading . ~ or /, or an existing parent."""
    if text.startswith((".", "~", os.sep)) or "\\" in text:
        return True
    path = Path(text)
    if path.suffix.lower() in (*PARQUET_SUFFIXES, *JSONL_SUFFIXES, *CSV_SUFFIXES, ".arrow", ".gz", ".txt"):
        return True
    return path.parent != Path(".") and path.parent.is_dir()


def rows_source(rows: Sequence[Row], *, name: str = "rows") -> SourceReader:
    """A source over rows already in memory (tests, demos, small lists built in Python)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))

    def open_batches(batch_size: int, wanted: Sequence[str] | None) -> Iterator[list[Row]]:
        selected = (({c: row.get(c) for c in wanted} if wanted is not None else dict(row)) for row in rows)
        return _rebatch_rows(selected, batch_size)

    return SourceReader(name=name, kind="rows", columns=tuple(columns), _open=open_batches)


def distiset_configs(path: str | os.PathLike[str]) -> list[str]:
    """The config names of a Distiset folder (sub-folders holding a dataset_dict.json)."""
    root = Path(path)
    return sorted(
        child.name
        for child in root.iterdir()
        if child.is_dir() and child.name != DISTISET_CONFIG_FOLDER and (child / "dataset_dict.json").is_file()
    )


def _is_distiset(path: Path) -> bool:
    if (path / "dataset_dict.json").is_file() or (path / "state.json").is_file():
        return False
    return (path / DISTISET_CONFIG_FOLDER).is_dir() or bool(distiset_configs(path))


def _open_distiset(path: Path, *, config: str | None, split: str | None) -> SourceReader:
    configs = distiset_configs(path)
    if not configs:
        msg = f"{path} looks like a Distiset but has no config folders with a dataset_dict.json."
        raise InputError(msg)
    if config is None:
        if len(configs) > 1:
            msg = (
                f"{path} is a Distiset with {len(configs)} configs: {', '.join(configs)}. "
                "Choose one with --config NAME."
            )
            raise UsageError(msg)
        config = configs[0]
    elif config not in configs:
        msg = f"{path} has no config {config!r}; its configs are: {', '.join(configs)}."
        raise NotFound(msg)
    reader = _open_dataset_dict(path / config, name=f"{path}:{config}", split=split)
    return replace(reader, kind="distiset", config=config)


def _open_dataset_dict(path: Path, *, name: str, split: str | None) -> SourceReader:
    try:
        splits = list(json.loads((path / "dataset_dict.json").read_text())["splits"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{path / 'dataset_dict.json'} is unreadable ({exc}). Re-save the dataset with save_to_disk."
        raise InputError(msg) from exc
    if split is None:
        if not splits:
            msg = f"{path} has no splits."
            raise InputError(msg)
        split = "train" if "train" in splits else splits[0]
    elif split not in splits:
        msg = f"{path} has no split {split!r}; its splits are: {', '.join(splits)}."
        raise NotFound(msg)
    reader = _open_saved_dataset(path / split, name=name)
    return replace(reader, split=split)


def _open_saved_dataset(path: Path, *, name: str) -> SourceReader:
    state_file = path / "state.json"
    try:
        state = json.loads(state_file.read_text())
        files = [path / entry["filename"] for entry in state["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"{state_file} is unreadable ({exc}). Re-save the dataset with save_to_disk."
        raise InputError(msg) from exc
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        msg = f"{path}: data files listed in state.json are missing: {', '.join(missing)}."
        raise InputError(msg)
    schema = _arrow_schema(files[0]) if files else None
    columns = tuple(schema.names) if schema is not None else ()

    def open_batches(batch_size: int, columns: Sequence[str] | None) -> Iterator[list[Row]]:
        return _arrow_file_batches(files, batch_size, columns)

    return SourceReader(name=name, kind="datasets", columns=columns, _open=open_batches, schema=schema)


def _arrow_schema(file: Path) -> pa.Schema:
    import pyarrow as pa

    try:
        with pa.memory_map(str(file)) as source:
            try:
                return pa.ipc.open_stream(source).schema
            except pa.ArrowInvalid:
                source.seek(0)
                return pa.ipc.open_file(source).schema
    except (OSError, pa.ArrowException) as exc:
        raise _unreadable_arrow(file, exc) from exc


def _unreadable_arrow(file: Path, exc: Exception) -> InputError:
    msg = f"{file} is not a readable Arrow file ({exc}). Re-save the dataset with save_to_disk."
    return InputError(msg)


def _arrow_file_batches(
    files: Sequence[Path], batch_size: int, columns: Sequence[str] | None
) -> Iterator[list[Row]]:
    import pyarrow as pa

    def record_batches() -> Iterator[pa.RecordBatch]:
        for file in files:
            try:
                yield from file_batches(file)
            except (OSError, pa.ArrowException) as exc:
                raise _unreadable_arrow(file, exc) from exc

    def file_batches(file: Path) -> Iterator[pa.RecordBatch]:
        # memory-mapped: only the batch being converted is paged in
        with pa.memory_map(str(file)) as source:
            try:
                stream: Iterable[pa.RecordBatch] = pa.ipc.open_stream(source)
            except pa.ArrowInvalid:
                source.seek(0)
                ipc_file = pa.ipc.open_file(source)
                stream = (ipc_file.get_batch(i) for i in range(ipc_file.num_record_batches))
            for batch in stream:
                yield batch.select(list(columns)) if columns is not None else batch

    return _rebatch_arrow(record_batches(), batch_size)


def _rebatch_arrow(batches: Iterable[pa.RecordBatch], batch_size: int) -> Iterator[list[Row]]:
    """Turn arrow batches of any size into lists of exactly `batch_size` rows (the last may be short)."""
    pending: list[Row] = []
    for batch in batches:
        for start in range(0, batch.num_rows, batch_size):
            pending.extend(batch.slice(start, batch_size).to_pylist())
            while len(pending) >= batch_size:
                yield pending[:batch_size]
                pending = pending[batch_size:]
    if pending:
        yield pending


def _rebatch_rows(rows: Iterable[Row], batch_size: int) -> Iterator[list[Row]]:
    pending: list[Row] = []
    for row in rows:
        pending.append(row)
        if len(pending) >= batch_size:
            yield pending
            pending = []
    if pending:
        yield pending


def _open_parquet(files: Sequence[Path], *, name: str) -> SourceReader:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(files[0])
    except (OSError, pa.ArrowException) as exc:
        msg = f"{files[0]} is not a readable parquet file ({exc})."
        raise InputError(msg) from exc

    def open_batches(batch_size: int, columns: Sequence[str] | None) -> Iterator[list[Row]]:
        def record_batches() -> Iterator[pa.RecordBatch]:
            for file in files:
                try:
                    parquet = pq.ParquetFile(file)
                    yield from parquet.iter_batches(batch_size=batch_size, columns=columns)
                except (OSError, pa.ArrowException) as exc:
                    msg = f"{file} is not a readable parquet file ({exc}). Write it again."
                    raise InputError(msg) from exc

        return _rebatch_arrow(record_batches(), batch_size)

    return SourceReader(
        name=name, kind="parquet", columns=tuple(schema.names), _open=open_batches, schema=schema
    )


def _open_csv(path: Path) -> SourceReader:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    parse = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    try:
        header = pacsv.open_csv(path, parse_options=parse).schema.names
    except (OSError, pa.ArrowException) as exc:
        msg = f"{path} is not a readable CSV file ({exc}). Save it as UTF-8 CSV with a header row."
        raise InputError(msg) from exc
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        msg = (
            f"{path}: the header names column {', '.join(map(repr, duplicated))} more than once. "
            "Rename or drop the duplicate column."
        )
        raise InputError(msg)
    # Every column is read as text: type inference on the first block breaks on later blocks,
    # and list columns in CSV are JSON strings that the seeder decodes.
    convert = pacsv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()), strings_can_be_null=False)

    def open_batches(batch_size: int, columns: Sequence[str] | None) -> Iterator[list[Row]]:
        options = pacsv.ConvertOptions(
            column_types=convert.column_types,
            strings_can_be_null=False,
            include_columns=list(columns) if columns is not None else None,
        )

        def record_batches() -> Iterator[pa.RecordBatch]:
            try:
                # open_csv reads the first block already: its errors are the file's too
                yield from pacsv.open_csv(path, parse_options=parse, convert_options=options)
            except pa.ArrowInvalid as exc:
                hint = " Save it as UTF-8." if "UTF8" in str(exc) else ""
                msg = f"{path}: malformed CSV ({exc}).{hint}"
                raise InputError(msg) from exc

        return _rebatch_arrow(record_batches(), batch_size)

    schema = pa.schema([(name, pa.string()) for name in header])
    return SourceReader(name=str(path), kind="csv", columns=tuple(header), _open=open_batches, schema=schema)


def _open_jsonl(path: Path) -> SourceReader:
    # Columns come from every row: a column that first appears late (ratings, models) is still seen.
    columns: dict[str, None] = {}
    for row in _jsonl_rows(path, check_array=True):
        columns.update(dict.fromkeys(row))
    if not columns:
        msg = f"{path} has no rows with columns: write one JSON object per line."
        raise InputError(msg)

    def open_batches(batch_size: int, wanted: Sequence[str] | None) -> Iterator[list[Row]]:
        rows = _jsonl_rows(path)
        if wanted is not None:
            rows = ({c: row.get(c) for c in wanted} for row in rows)
        return _rebatch_rows(rows, batch_size)

    return SourceReader(name=str(path), kind="jsonl", columns=tuple(columns), _open=open_batches)


def _jsonl_rows(path: Path, *, check_array: bool = False) -> Iterator[Row]:
    """The objects of a JSON Lines file (UTF-8, with or without a BOM), each error naming its line."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode("utf-8-sig" if number == 1 else "utf-8")
            except UnicodeDecodeError as exc:
                msg = (
                    f"{path} line {number}: not UTF-8 text ({exc.reason} at byte {exc.start}). "
                    "Save the file as UTF-8."
                )
                raise InputError(msg) from exc
            if not line.strip():
                continue
            if check_array and number == 1 and line.lstrip().startswith("["):
                _refuse_array_file(line, path)
            yield _json_row(line, path, number)


def _refuse_array_file(first_line: str, path: Path) -> None:
    """A file that opens a JSON array (over several lines, or of objects on one line) is not JSON Lines."""
    try:
        value = json.loads(first_line)
    except (ValueError, RecursionError):
        value = None  # an array spread over several lines
    if value is None or (isinstance(value, list) and value and all(isinstance(v, dict) for v in value)):
        msg = f"{path} is a JSON array, which cannot be streamed; convert it to JSON Lines."
        raise InputError(msg)


def _json_row(line: str, path: Path, number: int) -> Row:
    try:
        row = json.loads(line)
    except ValueError as exc:
        msg = f"{path} line {number}: invalid JSON ({exc})."
        raise InputError(msg) from exc
    except RecursionError as exc:
        msg = f"{path} line {number}: JSON nested too deeply to read. Flatten the row."
        raise InputError(msg) from exc
    if not isinstance(row, dict):
        msg = f"{path} line {number}: expected a JSON object, got {type(row).__name__}."
        raise InputError(msg)
    return row


def _check_hub_reachable(repo_id: str, *, timeout: float = 10.0) -> None:
    """Fail at once when the Hub's host refuses connections, instead of after a minute of retries."""
    import socket
    from urllib.parse import urlsplit

    if os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false"):
        return  # offline mode reads the local cache
    if any(os.environ.get(name) for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "ALL_PROXY")):
        return  # only the proxy knows whether the Hub is reachable
    from huggingface_hub import constants

    from campaign.config import redact_url

    endpoint = urlsplit(constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname or "", port), timeout=timeout).close()
    except OSError as exc:
        msg = (
            f"Could not reach the Hub at {redact_url(constants.ENDPOINT)} for {repo_id!r} "
            f"({exc.strerror or type(exc).__name__}). Check the network and HF_ENDPOINT, "
            "or download the dataset first."
        )
        raise InputError(msg) from None


def _open_hub(
    repo_id: str, *, config: str | None, split: str | None, loader: Callable[..., Any] | None
) -> SourceReader:
    """Stream a Hub dataset with `datasets.load_dataset(..., streaming=True)`; HF_TOKEN is passed on."""
    if loader is None:
        from datasets import load_dataset

        _check_hub_reachable(repo_id)
        loader = load_dataset
    split = split or "train"
    token = os.environ.get("HF_TOKEN") or None

    def load() -> Any:
        try:
            return loader(repo_id, name=config, split=split, streaming=True, token=token)
        except FileNotFoundError as exc:
            msg = (
                f"Hub dataset {repo_id!r} was not found or is private ({exc}). "
                "Check the id, or set HF_TOKEN to a token that can read it."
            )
            raise NotFound(msg) from exc
        except ValueError as exc:
            # datasets raises ValueError for a missing/unknown config or split, listing the valid ones
            msg = f"Hub dataset {repo_id!r}: {exc} Choose with --config NAME."
            raise UsageError(msg) from exc
        except OSError as exc:
            # requests' and huggingface_hub's connection errors are OSErrors, not ConnectionError
            msg = (
                f"Could not reach the Hub for {repo_id!r} ({type(exc).__name__}). "
                "Check the network and HF_ENDPOINT, or download the dataset first."
            )
            raise InputError(msg) from exc

    dataset = load()
    names = getattr(dataset, "column_names", None)
    if not names:
        first = next(iter(dataset), None)
        names = list(first) if isinstance(first, dict) else []

    def open_batches(batch_size: int, columns: Sequence[str] | None) -> Iterator[list[Row]]:
        stream = load()
        if columns is not None:
            rows: Iterable[Row] = ({c: row.get(c) for c in columns} for row in stream)
        else:
            rows = stream
        return _rebatch_rows(rows, batch_size)

    name = f"{repo_id}:{config}" if config else repo_id
    return SourceReader(
        name=name, kind="hub", columns=tuple(names), _open=open_batches, config=config, split=split
    )
