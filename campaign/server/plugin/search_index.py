"""The search index of the local server: normalised SQLite tables plus FTS5 for text.

It holds what argilla-server's Elasticsearch engine keeps in its documents (record status, metadata,
suggestions, responses, text, vectors) and answers the same questions with SQL. The file is shared by
the server and the worker processes; WAL mode lets one write while others read.

This module knows nothing of argilla-server's ORM: `search_engine.py` turns models into the plain
documents below, and turns search-engine filters into calls of `compile_filter`.
"""

from __future__ import annotations

import math
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, cast

from campaign.server.plugin.search_query import Match, parse, to_fts5

SCHEMA_VERSION = 8

SCHEMA = """
CREATE TABLE IF NOT EXISTS idx_meta (key TEXT PRIMARY KEY, value TEXT);
-- Each dataset owns one block of record rids (its number above RECORD_BITS bits), so a rid range
-- selects one dataset's records in any table keyed by rid, the text indexes included.
CREATE TABLE IF NOT EXISTS idx_datasets (dno INTEGER PRIMARY KEY, dataset_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS idx_records (
    rid INTEGER PRIMARY KEY,
    record_id TEXT NOT NULL UNIQUE,
    dataset_id TEXT NOT NULL,
    external_id TEXT,
    status TEXT,
    inserted_at REAL,
    updated_at REAL,
    rnd INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_records_dataset ON idx_records (dataset_id, status);
CREATE INDEX IF NOT EXISTS idx_records_rnd ON idx_records (dataset_id, rnd);
CREATE TABLE IF NOT EXISTS idx_metadata (
    rid INTEGER NOT NULL, dataset_id TEXT NOT NULL, name TEXT NOT NULL, vtext TEXT, vnum REAL
);
CREATE INDEX IF NOT EXISTS idx_metadata_rid ON idx_metadata (rid);
CREATE INDEX IF NOT EXISTS idx_metadata_text ON idx_metadata (dataset_id, name, vtext);
CREATE INDEX IF NOT EXISTS idx_metadata_num ON idx_metadata (dataset_id, name, vnum);
CREATE TABLE IF NOT EXISTS idx_suggestions (
    rid INTEGER NOT NULL, dataset_id TEXT NOT NULL, question TEXT NOT NULL,
    type TEXT, agent TEXT, score REAL, vtext TEXT, vnum REAL
);
CREATE INDEX IF NOT EXISTS idx_suggestions_rid ON idx_suggestions (rid, question);
CREATE INDEX IF NOT EXISTS idx_suggestions_q ON idx_suggestions (dataset_id, question);
-- Users by number: the per-record status probe of a search compares integers, and its index stays small.
CREATE TABLE IF NOT EXISTS idx_users (uno INTEGER PRIMARY KEY, user_id TEXT NOT NULL UNIQUE);
CREATE TABLE IF NOT EXISTS idx_responses (
    response_id TEXT PRIMARY KEY, rid INTEGER NOT NULL, dataset_id TEXT NOT NULL,
    user_id TEXT NOT NULL, uno INTEGER NOT NULL, status TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS idx_responses_rid ON idx_responses (rid, uno, status);
CREATE INDEX IF NOT EXISTS idx_responses_user ON idx_responses (dataset_id, user_id, status);
CREATE INDEX IF NOT EXISTS idx_responses_dataset ON idx_responses (dataset_id, rid, status);
CREATE TABLE IF NOT EXISTS idx_response_values (
    response_id TEXT NOT NULL, rid INTEGER NOT NULL, user_id TEXT NOT NULL,
    question TEXT NOT NULL, vtext TEXT, vnum REAL
);
CREATE INDEX IF NOT EXISTS idx_response_values_rid ON idx_response_values (rid, question);
CREATE INDEX IF NOT EXISTS idx_response_values_resp ON idx_response_values (response_id);
CREATE TABLE IF NOT EXISTS idx_vectors (
    rid INTEGER NOT NULL, dataset_id TEXT NOT NULL, settings_id TEXT NOT NULL, value BLOB NOT NULL,
    PRIMARY KEY (rid, settings_id)
);
-- Text: one FTS row per record (rowid = rid) for queries over all fields, and one per (record, field)
-- (rowid = rid << FIELD_BITS | field_id) for queries over one field. Keeping the keys in the rowid lets
-- searches and deletes use the FTS index alone, without reading a stored column for every hit.
CREATE TABLE IF NOT EXISTS idx_fields (
    field_id INTEGER PRIMARY KEY, dataset_id TEXT NOT NULL, name TEXT NOT NULL, UNIQUE (dataset_id, name)
);
CREATE VIRTUAL TABLE IF NOT EXISTS idx_text USING fts5 (
    content, tokenize = 'unicode61 remove_diacritics 2'
);
CREATE VIRTUAL TABLE IF NOT EXISTS idx_text_all USING fts5 (
    content, tokenize = 'unicode61 remove_diacritics 2'
);
-- Counts kept by triggers, so progress and queue sizes cost the same at any dataset size.
-- kind 'record': records per status (user_id ''); kind 'response': responses per user and status.
CREATE TABLE IF NOT EXISTS idx_counts (
    dataset_id TEXT NOT NULL, kind TEXT NOT NULL, user_id TEXT NOT NULL, status TEXT NOT NULL,
    n INTEGER NOT NULL, PRIMARY KEY (dataset_id, kind, user_id, status)
);
CREATE TRIGGER IF NOT EXISTS idx_records_ins AFTER INSERT ON idx_records BEGIN
    INSERT INTO idx_counts VALUES (NEW.dataset_id, 'record', '', coalesce(NEW.status, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS idx_records_del AFTER DELETE ON idx_records BEGIN
    UPDATE idx_counts SET n = n - 1
    WHERE dataset_id = OLD.dataset_id AND kind = 'record' AND user_id = '' AND status = coalesce(OLD.status, '');
END;
CREATE TRIGGER IF NOT EXISTS idx_records_upd AFTER UPDATE OF status, dataset_id ON idx_records BEGIN
    UPDATE idx_counts SET n = n - 1
    WHERE dataset_id = OLD.dataset_id AND kind = 'record' AND user_id = '' AND status = coalesce(OLD.status, '');
    INSERT INTO idx_counts VALUES (NEW.dataset_id, 'record', '', coalesce(NEW.status, ''), 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS idx_responses_ins AFTER INSERT ON idx_responses BEGIN
    INSERT INTO idx_counts VALUES (NEW.dataset_id, 'response', NEW.user_id, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER IF NOT EXISTS idx_responses_del AFTER DELETE ON idx_responses BEGIN
    UPDATE idx_counts SET n = n - 1
    WHERE dataset_id = OLD.dataset_id AND kind = 'response' AND user_id = OLD.user_id AND status = OLD.status;
END;
CREATE TRIGGER IF NOT EXISTS idx_responses_upd AFTER UPDATE OF status, user_id, dataset_id ON idx_responses BEGIN
    UPDATE idx_counts SET n = n - 1
    WHERE dataset_id = OLD.dataset_id AND kind = 'response' AND user_id = OLD.user_id AND status = OLD.status;
    INSERT INTO idx_counts VALUES (NEW.dataset_id, 'response', NEW.user_id, NEW.status, 1)
    ON CONFLICT DO UPDATE SET n = n + 1;
END;
"""
# Parameters: response_id, rid, dataset_id, user_id, status. The user must be in idx_users already.
UPSERT_RESPONSE = (
    "INSERT INTO idx_responses (response_id, rid, dataset_id, user_id, uno, status)"
    " VALUES (?1, ?2, ?3, ?4, (SELECT uno FROM idx_users WHERE user_id = ?4), ?5)"
    " ON CONFLICT (response_id) DO UPDATE SET rid = excluded.rid, dataset_id = excluded.dataset_id,"
    " user_id = excluded.user_id, uno = excluded.uno, status = excluded.status"
)
REGISTER_USER = "INSERT OR IGNORE INTO idx_users (user_id) VALUES (?)"
TABLES = (
    "idx_meta",
    "idx_datasets",
    "idx_records",
    "idx_metadata",
    "idx_suggestions",
    "idx_users",
    "idx_responses",
    "idx_response_values",
    "idx_vectors",
    "idx_fields",
    "idx_text",
    "idx_text_all",
    "idx_counts",
)

# The field name under which a record's text fields are indexed together, for queries over all fields.
ALL_FIELDS = "*"
# Per connection: the most page cache it may fill, and how much of the file reads may map. An index
# of 100k records is about 400 MB; mapped pages are shared with the OS file cache, not copied, and
# SQLite caps the map at its compile-time maximum (2 GiB by default).
CACHE_KIB = 64 * 1024
# Pages of 16 KiB instead of SQLite's 4 KiB: shallower trees, so the per-hit probes of a search touch
# fewer pages (text search with a status filter at 100k records: 5-8% faster).
PAGE_BYTES = 16 * 1024
MMAP_BYTES = 2 * 1024 * 1024 * 1024
# idx_text rowids: the record's rid above FIELD_BITS bits of field id.
FIELD_BITS = 20
FIELD_MASK = (1 << FIELD_BITS) - 1
# Record rids: the dataset's number above RECORD_BITS bits of sequence. A dataset holds up to 2**26
# (67 million) record inserts, and with FIELD_BITS above, rids stay below 2**43, so text rowids fit
# in SQLite's signed 64-bit integers: at most 2**17 - 1 datasets.
RECORD_BITS = 26
RECORD_MASK = (1 << RECORD_BITS) - 1
MAX_DATASET_NUMBER = (1 << (63 - FIELD_BITS - RECORD_BITS)) - 1
_MAX_RANDOM = 2**62
# Dataset, record and field numbers only grow (SQLite reuses just the highest freed one); a rebuild
# numbers what exists from the start again.
REBUILD_HINT = (
    "stop the server, delete search-index.sqlite in its data dir and start it again:"
    " the index is rebuilt from the database"
)


@dataclass
class ValueRow:
    """One indexed value: text for terms filters, number for range filters and sorts."""

    vtext: str | None
    vnum: float | None


def value_rows(value: Any) -> list[ValueRow]:
    """Flatten a metadata, suggestion or response value into filterable rows.

    Numbers match both terms ("3") and ranges; strings match terms; lists match on any element.
    Structured values (ranking lists of dicts, spans) are not filterable, as in the Elasticsearch engine.
    """
    if value is None or isinstance(value, dict):
        return []
    if isinstance(value, bool):
        return [ValueRow(str(value).lower(), float(value))]
    if isinstance(value, int):
        return [ValueRow(str(value), float(value))]
    if isinstance(value, float):
        if math.isnan(value):
            return []
        text = str(int(value)) if value.is_integer() else repr(value)
        return [ValueRow(text, value)]
    if isinstance(value, str):
        return [ValueRow(value, _as_number(value))]
    if isinstance(value, list | tuple):
        rows: list[ValueRow] = []
        for item in value:
            if isinstance(item, dict):
                continue
            rows.extend(value_rows(item))
        return rows
    return [ValueRow(str(value), None)]


def _as_number(text: str) -> float | None:
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


@dataclass
class ResponseDoc:
    """A response as the index keeps it."""

    response_id: str
    user_id: str
    status: str
    values: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuggestionDoc:
    """A suggestion as the index keeps it."""

    question: str
    value: Any
    type: str | None = None
    agent: str | None = None
    score: float | None = None


@dataclass
class RecordDoc:
    """A record as the index keeps it."""

    record_id: str
    dataset_id: str
    status: str
    inserted_at: float
    updated_at: float
    external_id: str | None = None
    texts: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    suggestions: list[SuggestionDoc] = field(default_factory=list)
    responses: list[ResponseDoc] = field(default_factory=list)
    vectors: dict[str, bytes] = field(default_factory=dict)


def random_key(record_id: str) -> int:
    """A stable pseudo-random key per record, used to give each user their own record order."""
    import hashlib

    return int.from_bytes(hashlib.blake2b(record_id.encode(), digest_size=8).digest(), "big") % _MAX_RANDOM


def user_key(user_id: str) -> int:
    """The per-user seed that is mixed with each record's key."""
    return random_key(f"user:{user_id}")


class SearchIndex:
    """One SQLite index file, shared by every process of a local server."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(
            str(self.path), timeout=30, check_same_thread=False, isolation_level=None
        )
        # Only a new file takes the page size; `_migrate` converts an index it empties.
        self._conn.execute(f"PRAGMA page_size={PAGE_BYTES}")
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        # A search probes the responses table and the text index's sizes once per text hit. SQLite's
        # default page cache (2 MiB) misses on most probes of a 100k-record index and reads the page
        # again; a larger cache, filled only as pages are read, and memory-mapped reads avoid that.
        self._conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        self._conn.execute(f"PRAGMA mmap_size={MMAP_BYTES}")
        self._migrate()
        self._conn.executescript(SCHEMA)
        self._conn.execute(
            "INSERT OR IGNORE INTO idx_meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
        )

    def _migrate(self) -> None:
        """Drop an index written with another schema; the server's start finds it empty and rebuilds it."""
        found = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'idx_meta'"
        ).fetchone()
        if found is None:
            return
        row = self._conn.execute("SELECT value FROM idx_meta WHERE key = 'schema_version'").fetchone()
        if row is not None and row[0] == str(SCHEMA_VERSION):
            return
        for table in TABLES:
            self._conn.execute(f"DROP TABLE IF EXISTS {table}")
        self._use_page_size()

    def _use_page_size(self) -> None:
        """Rewrite an empty index file with PAGE_BYTES pages (SQLite changes the size only outside WAL mode)."""
        if self._conn.execute("PRAGMA page_size").fetchone()[0] == PAGE_BYTES:
            return
        try:
            self._conn.execute("PRAGMA journal_mode=DELETE")
            self._conn.execute(f"PRAGMA page_size={PAGE_BYTES}")
            self._conn.execute("VACUUM")
        except sqlite3.OperationalError:
            pass  # another process has the file open: the old page size works, only a little slower
        finally:
            self._conn.execute("PRAGMA journal_mode=WAL")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE so concurrent writers queue instead of failing."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run a read query."""
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    # -- datasets ---------------------------------------------------------------------------------

    def create_dataset(self, dataset_id: str) -> None:
        """Register a dataset's index (idempotent)."""
        with self.transaction() as conn:
            self._dataset_number(conn, dataset_id, register=True)

    def delete_dataset(self, dataset_id: str) -> None:
        """Drop a dataset's index and every document in it."""
        with self.transaction() as conn:
            rids = [
                row[0]
                for row in conn.execute("SELECT rid FROM idx_records WHERE dataset_id = ?", (dataset_id,))
            ]
            self._delete_children(conn, rids)
            conn.execute("DELETE FROM idx_records WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM idx_counts WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM idx_fields WHERE dataset_id = ?", (dataset_id,))
            conn.execute("DELETE FROM idx_datasets WHERE dataset_id = ?", (dataset_id,))

    def dataset_ids(self) -> set[str]:
        """The datasets that have an index."""
        return {row[0] for row in self.query("SELECT dataset_id FROM idx_datasets")}

    def count_records(self, dataset_id: str) -> int:
        """How many records of a dataset are indexed."""
        return sum(self.status_counts(dataset_id).values())

    # -- documents --------------------------------------------------------------------------------

    def upsert_records(self, docs: Iterable[RecordDoc]) -> int:
        """Insert or replace whole record documents, in one transaction.

        A record keeps its rid while it stays in its dataset; a new record takes the next rid of its
        dataset's block. When a record id appears twice, the last document wins.
        """
        docs = list({doc.record_id: doc for doc in docs}.values())
        if not docs:
            return 0
        with self.transaction() as conn:
            rids = self._assign_rids(conn, docs)
            conn.executemany(
                "INSERT INTO idx_records (rid, record_id, dataset_id, external_id, status, inserted_at, updated_at, rnd)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (record_id) DO UPDATE SET external_id = excluded.external_id,"
                " status = excluded.status, inserted_at = excluded.inserted_at, updated_at = excluded.updated_at",
                [
                    (
                        rids[d.record_id],
                        d.record_id,
                        d.dataset_id,
                        d.external_id,
                        d.status,
                        d.inserted_at,
                        d.updated_at,
                        random_key(d.record_id),
                    )
                    for d in docs
                ],
            )
            field_ids = self._field_ids(conn, {(d.dataset_id, name) for d in docs for name in d.texts})
            text_rows: list[tuple[int, str]] = []
            all_text_rows: list[tuple[int, str]] = []
            meta_rows: list[tuple[Any, ...]] = []
            sugg_rows: list[tuple[Any, ...]] = []
            resp_rows: list[tuple[Any, ...]] = []
            value_rows_: list[tuple[Any, ...]] = []
            vector_rows: list[tuple[Any, ...]] = []
            for doc in docs:
                rid = rids[doc.record_id]
                texts = {name: text for name, text in doc.texts.items() if text}
                text_rows.extend(
                    (rid << FIELD_BITS | field_ids[doc.dataset_id, name], text)
                    for name, text in texts.items()
                )
                if texts:
                    all_text_rows.append((rid, "\n".join(texts.values())))
                for name, value in doc.metadata.items():
                    meta_rows.extend((rid, doc.dataset_id, name, v.vtext, v.vnum) for v in value_rows(value))
                for s in doc.suggestions:
                    sugg_rows.extend(self._suggestion_rows(rid, doc.dataset_id, s))
                for r in doc.responses:
                    resp_rows.append((r.response_id, rid, doc.dataset_id, r.user_id, r.status))
                    value_rows_.extend(self._response_value_rows(rid, r))
                vector_rows.extend((rid, doc.dataset_id, sid, blob) for sid, blob in doc.vectors.items())
            conn.executemany("INSERT INTO idx_text (rowid, content) VALUES (?, ?)", text_rows)
            conn.executemany("INSERT INTO idx_text_all (rowid, content) VALUES (?, ?)", all_text_rows)
            conn.executemany("INSERT INTO idx_metadata VALUES (?, ?, ?, ?, ?)", meta_rows)
            conn.executemany("INSERT INTO idx_suggestions VALUES (?, ?, ?, ?, ?, ?, ?, ?)", sugg_rows)
            conn.executemany(REGISTER_USER, [(user_id,) for user_id in {row[3] for row in resp_rows}])
            conn.executemany(UPSERT_RESPONSE, resp_rows)
            conn.executemany("INSERT INTO idx_response_values VALUES (?, ?, ?, ?, ?, ?)", value_rows_)
            conn.executemany("INSERT OR REPLACE INTO idx_vectors VALUES (?, ?, ?, ?)", vector_rows)
        return len(docs)

    def delete_records(self, record_ids: Iterable[str]) -> None:
        """Remove records and everything indexed under them."""
        with self.transaction() as conn:
            rids = list(self._rids(conn, list(record_ids)).values())
            self._delete_children(conn, rids)
            conn.executemany("DELETE FROM idx_records WHERE rid = ?", [(rid,) for rid in rids])

    def update_record_status(self, record_id: str, status: str) -> None:
        """Set a record's status (the worker recomputes it when the distribution changes)."""
        with self.transaction() as conn:
            conn.execute("UPDATE idx_records SET status = ? WHERE record_id = ?", (status, record_id))

    def upsert_response(self, record_id: str, response: ResponseDoc) -> None:
        """Add or replace one response of a record."""
        with self.transaction() as conn:
            rid = self._rids(conn, [record_id]).get(record_id)
            if rid is None:
                return
            dataset_id = conn.execute("SELECT dataset_id FROM idx_records WHERE rid = ?", (rid,)).fetchone()[
                0
            ]
            conn.execute("DELETE FROM idx_response_values WHERE response_id = ?", (response.response_id,))
            conn.execute(REGISTER_USER, (response.user_id,))
            conn.execute(
                UPSERT_RESPONSE,
                (response.response_id, rid, dataset_id, response.user_id, response.status),
            )
            conn.executemany(
                "INSERT INTO idx_response_values VALUES (?, ?, ?, ?, ?, ?)",
                self._response_value_rows(rid, response),
            )

    def delete_response(self, response_id: str) -> None:
        """Remove one response."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM idx_response_values WHERE response_id = ?", (response_id,))
            conn.execute("DELETE FROM idx_responses WHERE response_id = ?", (response_id,))

    def upsert_suggestion(self, record_id: str, suggestion: SuggestionDoc) -> None:
        """Add or replace a record's suggestion for one question."""
        with self.transaction() as conn:
            row = conn.execute(
                "SELECT rid, dataset_id FROM idx_records WHERE record_id = ?", (record_id,)
            ).fetchone()
            if row is None:
                return
            rid, dataset_id = row
            conn.execute(
                "DELETE FROM idx_suggestions WHERE rid = ? AND question = ?", (rid, suggestion.question)
            )
            conn.executemany(
                "INSERT INTO idx_suggestions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                self._suggestion_rows(rid, dataset_id, suggestion),
            )

    def delete_suggestion(self, record_id: str, question: str) -> None:
        """Remove a record's suggestion for one question."""
        with self.transaction() as conn:
            conn.execute(
                "DELETE FROM idx_suggestions WHERE question = ? AND rid ="
                " (SELECT rid FROM idx_records WHERE record_id = ?)",
                (question, record_id),
            )

    # -- reads ------------------------------------------------------------------------------------

    def search(
        self,
        dataset_id: str,
        *,
        text: TextSearch | None = None,
        where: Clause | None = None,
        order: Sequence[Clause] = (),
        user_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
        total: int | None = None,
    ) -> tuple[list[tuple[str, float | None]], int]:
        """Record ids and scores of one page of matches, and the total number of matches.

        `total` may be given when the caller can count the matches more cheaply (see `count_by_status`);
        text searches count their matches themselves.
        """
        if text is not None:
            return self._text_search(dataset_id, text, where, order, offset, limit)
        clauses = ["r.dataset_id = ?"]
        params: list[Any] = [dataset_id]
        source = "idx_records r"
        if where is not None:
            clauses.append(where.sql)
            params.extend(where.params)
        where_sql = " AND ".join(clauses)

        user_order = not order and user_id is not None
        if total is None and user_order:
            total = int(self.query(f"SELECT count(*) FROM {source} WHERE {where_sql}", params)[0][0])
        if total == 0 or limit <= 0:
            return [], total or 0
        if user_order:
            return self._user_page(
                source, where_sql, params, user_key(str(user_id)), offset, limit
            ), total or 0

        order_by = Clause.sequence([*order, Clause("r.rid ASC")])
        # The window count rides along with the page, so the matches are found once, not twice.
        counted = ", count(*) OVER () AS total" if total is None else ""
        # Elasticsearch scores every record of a match_all 1.0, and none when it sorts by a field.
        score = "NULL" if order else "1.0"
        sql = (
            f"SELECT r.record_id, {score} AS score{counted} FROM {source} WHERE {where_sql}"
            f" ORDER BY {order_by.sql} LIMIT ? OFFSET ?"
        )
        rows = self.query(sql, [*params, *order_by.params, limit, offset])
        if total is None:
            if rows:
                total = int(rows[0][2])
            else:  # a page past the end: count on its own
                total = int(self.query(f"SELECT count(*) FROM {source} WHERE {where_sql}", params)[0][0])
        return [(row[0], row[1]) for row in rows], total

    def _text_search(
        self,
        dataset_id: str,
        text: TextSearch,
        where: Clause | None,
        order: Sequence[Clause],
        offset: int,
        limit: int,
    ) -> tuple[list[tuple[str, float | None]], int]:
        """`search` with a text query: the text index drives, filters and sorts apply to its hits.

        The hits are the dataset's rid block of the FTS index, so they need no look-up in the records
        table; it is joined only when a filter or sort reads its columns, and otherwise only for the
        record ids of the page. Matches are scored and counted in one pass (relevance first, then rid).
        """
        block = self._rid_block(dataset_id)
        if text.match.matches_nothing or block is None:
            return [], 0
        hits_params = text.hits_params(dataset_id, *block)
        condition = where or Clause("1")
        # The records table is joined only when needed; CROSS JOIN keeps the text index in the outer loop.
        joined = condition.record_columns or any(c.record_columns for c in order)

        def source(scored: bool) -> str:
            hits = f"({text.hits_sql(scored=scored)})"
            return f"{hits} h CROSS JOIN idx_records r ON r.rid = h.rid" if joined else f"{hits} r"

        order_by = Clause.sequence([*order] or [Clause("score DESC")])
        rows = self.query(
            f"SELECT r.rid, {'h' if joined else 'r'}.score AS score, count(*) OVER () FROM {source(True)}"
            f" WHERE {condition.sql} ORDER BY {order_by.sql}, r.rid ASC LIMIT ? OFFSET ?",
            [*hits_params, *condition.params, *order_by.params, limit, offset],
        )
        if not rows:  # no match, or a page past the end: count on its own
            found = self.query(
                f"SELECT count(*) FROM {source(False)} WHERE {condition.sql}",
                [*hits_params, *condition.params],
            )
            return [], int(found[0][0])
        marks = ",".join("?" * len(rows))
        record_ids = dict(
            self.query(
                f"SELECT rid, record_id FROM idx_records WHERE rid IN ({marks})", [row[0] for row in rows]
            )
        )
        # A record deleted since the page was read is left out, as argilla-server leaves out hits it
        # no longer finds in its database. Sorted by a field, Elasticsearch computes no scores.
        page = [(record_ids[rid], None if order else score) for rid, score, _ in rows if rid in record_ids]
        return page, int(rows[0][2])

    def _user_page(
        self, source: str, where_sql: str, params: list[Any], key: int, offset: int, limit: int
    ) -> list[tuple[str, float | None]]:
        """A user's own order: records by their random key, starting at the user's key and wrapping around.

        Every user starts at a different place of one shuffled order, so annotators spread over the
        dataset, and the order is stable between page loads. Both halves walk the (dataset_id, rnd)
        index and stop after offset + limit matches, so the cost does not grow with the dataset.
        """
        want = offset + limit
        rows = self.query(
            f"SELECT r.record_id FROM {source} WHERE {where_sql} AND r.rnd >= ? ORDER BY r.rnd LIMIT ?",
            [*params, key, want],
        )
        if len(rows) < want:
            rows += self.query(
                f"SELECT r.record_id FROM {source} WHERE {where_sql} AND r.rnd < ? ORDER BY r.rnd LIMIT ?",
                [*params, key, want - len(rows)],
            )
        return [(row[0], 1.0) for row in rows[offset:want]]

    def count_by_status(self, dataset_id: str, statuses: Sequence[str], user_id: str | None) -> int:
        """Records with a response in one of `statuses` (by the user, if given); `pending` means none.

        Counted from the responses table rather than by probing every record. The two parts never
        overlap: a user has at most one response per record, and without a user "pending" means a
        record has no response at all.
        """
        if user_id is not None:
            # One response per (record, user): the user's response counts are record counts.
            mine = self.user_status_counts(dataset_id, user_id)
            answered = sum(mine.values())
            count = sum(mine.get(s, 0) for s in statuses if s != "pending")
            if "pending" in statuses:
                count += self.count_records(dataset_id) - answered
            return count
        # Without a user, "pending" means no response at all: count answered records once each.
        count = 0
        others = [s for s in statuses if s != "pending"]
        if "pending" in statuses:
            with_responses = self.query(
                "SELECT count(DISTINCT rid) FROM idx_responses WHERE dataset_id = ?", [dataset_id]
            )
            count += self.count_records(dataset_id) - int(with_responses[0][0])
        if others:
            marks = ",".join("?" * len(others))
            found = self.query(
                f"SELECT count(DISTINCT rid) FROM idx_responses WHERE dataset_id = ? AND status IN ({marks})",
                [dataset_id, *others],
            )
            count += int(found[0][0])
        return count

    def user_number(self, user_id: str) -> int | None:
        """The index's number of a user, or None when it holds no response of theirs."""
        row = self.query("SELECT uno FROM idx_users WHERE user_id = ?", (user_id,))
        return int(row[0][0]) if row else None

    def status_counts(self, dataset_id: str) -> dict[str, int]:
        """Records per status."""
        rows = self.query(
            "SELECT status, n FROM idx_counts WHERE dataset_id = ? AND kind = 'record' AND user_id = '' AND n > 0",
            (dataset_id,),
        )
        return {str(status): int(count) for status, count in rows}

    def user_status_counts(self, dataset_id: str, user_id: str) -> dict[str, int]:
        """A user's responses per status."""
        rows = self.query(
            "SELECT status, n FROM idx_counts WHERE dataset_id = ? AND kind = 'response' AND user_id = ? AND n > 0",
            (dataset_id, user_id),
        )
        return {str(status): int(count) for status, count in rows}

    def terms_metrics(self, dataset_id: str, name: str, max_terms: int) -> tuple[int, list[tuple[str, int]]]:
        """Count of values and the most frequent terms of a metadata property."""
        total = int(
            self.query(
                "SELECT count(*) FROM idx_metadata WHERE dataset_id = ? AND name = ? AND vtext IS NOT NULL",
                (dataset_id, name),
            )[0][0]
        )
        if total == 0:
            return 0, []
        rows = self.query(
            "SELECT vtext, count(DISTINCT rid) AS n FROM idx_metadata WHERE dataset_id = ? AND name = ?"
            " AND vtext IS NOT NULL GROUP BY vtext ORDER BY n DESC, vtext ASC LIMIT ?",
            (dataset_id, name, min(total, max_terms)),
        )
        return total, [(str(term), int(n)) for term, n in rows]

    def numeric_metrics(self, dataset_id: str, name: str) -> tuple[float | None, float | None]:
        """Minimum and maximum of a numeric metadata property."""
        row = self.query(
            "SELECT min(vnum), max(vnum) FROM idx_metadata WHERE dataset_id = ? AND name = ?",
            (dataset_id, name),
        )[0]
        return row[0], row[1]

    def vectors(
        self, dataset_id: str, settings_id: str, where: Clause | None = None, text: TextSearch | None = None
    ) -> tuple[list[str], list[bytes]]:
        """Record ids and raw vectors of every record that passes the filters."""
        clauses = ["r.dataset_id = ?", "v.settings_id = ?"]
        params: list[Any] = [dataset_id, settings_id]
        if text is not None:
            block = self._rid_block(dataset_id)
            if text.match.matches_nothing or block is None:
                return [], []
            clauses.append(f"r.rid IN (SELECT rid FROM ({text.hits_sql(scored=False)}))")
            params.extend(text.hits_params(dataset_id, *block))
        if where is not None:
            clauses.append(where.sql)
            params.extend(where.params)
        rows = self.query(
            "SELECT r.record_id, v.value FROM idx_vectors v JOIN idx_records r ON r.rid = v.rid"
            f" WHERE {' AND '.join(clauses)} ORDER BY r.rid",
            params,
        )
        return [row[0] for row in rows], [row[1] for row in rows]

    # -- helpers ----------------------------------------------------------------------------------

    def _rid_block(self, dataset_id: str) -> tuple[int, int] | None:
        """The first and last rid of a dataset's block (None when the index holds none of its records)."""
        with self._lock:
            dno = self._dataset_number(self._conn, dataset_id, register=False)
        if dno is None:
            return None
        return dno << RECORD_BITS, dno << RECORD_BITS | RECORD_MASK

    @staticmethod
    def _dataset_number(conn: sqlite3.Connection, dataset_id: str, *, register: bool) -> int | None:
        """The number of a dataset's rid block; registered first if asked (None when not registered)."""
        if register:
            conn.execute("INSERT OR IGNORE INTO idx_datasets (dataset_id) VALUES (?)", (dataset_id,))
        row = conn.execute("SELECT dno FROM idx_datasets WHERE dataset_id = ?", (dataset_id,)).fetchone()
        if row is None:
            return None
        if row[0] > MAX_DATASET_NUMBER:
            raise RuntimeError(
                f"the search index has run out of dataset numbers ({MAX_DATASET_NUMBER}); {REBUILD_HINT}"
            )
        return int(row[0])

    @classmethod
    def _assign_rids(cls, conn: sqlite3.Connection, docs: list[RecordDoc]) -> dict[str, int]:
        """The rid of every document: its own if indexed in the same dataset, else the next free one.

        Indexed documents lose their children (they are written again); a record that changed dataset
        is removed and takes a rid in its new dataset's block.
        """
        found = cls._record_keys(conn, [doc.record_id for doc in docs])
        kept = {
            doc.record_id: found[doc.record_id][0]
            for doc in docs
            if doc.record_id in found and found[doc.record_id][1] == doc.dataset_id
        }
        moved = [rid for record_id, (rid, _) in found.items() if record_id not in kept]
        cls._delete_children(conn, [*kept.values(), *moved])
        conn.executemany("DELETE FROM idx_records WHERE rid = ?", [(rid,) for rid in moved])
        rids = dict(kept)
        for dataset_id in dict.fromkeys(doc.dataset_id for doc in docs if doc.record_id not in kept):
            base = cast(int, cls._dataset_number(conn, dataset_id, register=True)) << RECORD_BITS
            last = conn.execute(
                "SELECT max(rid) FROM idx_records WHERE rid BETWEEN ? AND ?", (base, base | RECORD_MASK)
            ).fetchone()[0]
            new = [
                doc.record_id for doc in docs if doc.dataset_id == dataset_id and doc.record_id not in kept
            ]
            start = base if last is None else last + 1
            if start + len(new) - 1 > (base | RECORD_MASK):
                msg = f"the search index has run out of record ids for dataset {dataset_id}; {REBUILD_HINT}"
                raise RuntimeError(msg)
            rids.update(zip(new, range(start, start + len(new)), strict=True))
        return rids

    @classmethod
    def _rids(cls, conn: sqlite3.Connection, record_ids: list[str]) -> dict[str, int]:
        return {record_id: rid for record_id, (rid, _) in cls._record_keys(conn, record_ids).items()}

    @staticmethod
    def _record_keys(conn: sqlite3.Connection, record_ids: list[str]) -> dict[str, tuple[int, str]]:
        """The rid and dataset of every indexed record among `record_ids`."""
        found: dict[str, tuple[int, str]] = {}
        for start in range(0, len(record_ids), 500):
            chunk = record_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = conn.execute(
                f"SELECT record_id, rid, dataset_id FROM idx_records WHERE record_id IN ({marks})", chunk
            )
            found.update((record_id, (rid, dataset_id)) for record_id, rid, dataset_id in rows)
        return found

    @staticmethod
    def _field_ids(conn: sqlite3.Connection, names: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """The id of every (dataset, field name), registering new ones."""
        conn.executemany("INSERT OR IGNORE INTO idx_fields (dataset_id, name) VALUES (?, ?)", sorted(names))
        ids: dict[tuple[str, str], int] = {}
        for dataset_id, name in names:
            row = conn.execute(
                "SELECT field_id FROM idx_fields WHERE dataset_id = ? AND name = ?", (dataset_id, name)
            ).fetchone()
            if row[0] > FIELD_MASK:
                raise RuntimeError(
                    f"the search index has run out of field ids ({FIELD_MASK}); {REBUILD_HINT}"
                )
            ids[dataset_id, name] = int(row[0])
        return ids

    @staticmethod
    def _delete_children(conn: sqlite3.Connection, rids: list[int]) -> None:
        for start in range(0, len(rids), 500):
            chunk = rids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for table in (
                "idx_metadata",
                "idx_suggestions",
                "idx_responses",
                "idx_response_values",
                "idx_vectors",
            ):
                conn.execute(f"DELETE FROM {table} WHERE rid IN ({marks})", chunk)
            conn.execute(f"DELETE FROM idx_text_all WHERE rowid IN ({marks})", chunk)
        conn.executemany(
            "DELETE FROM idx_text WHERE rowid BETWEEN ? AND ?",
            [(rid << FIELD_BITS, rid << FIELD_BITS | FIELD_MASK) for rid in rids],
        )

    @staticmethod
    def _suggestion_rows(rid: int, dataset_id: str, s: SuggestionDoc) -> list[tuple[Any, ...]]:
        score = s.score if isinstance(s.score, int | float) else None
        rows = value_rows(s.value) or [ValueRow(None, None)]
        return [(rid, dataset_id, s.question, s.type, s.agent, score, v.vtext, v.vnum) for v in rows]

    @staticmethod
    def _response_value_rows(rid: int, r: ResponseDoc) -> list[tuple[Any, ...]]:
        rows: list[tuple[Any, ...]] = []
        for question, value in r.values.items():
            rows.extend((r.response_id, rid, r.user_id, question, v.vtext, v.vnum) for v in value_rows(value))
        return rows


@dataclass(frozen=True)
class Clause:
    """A fragment of SQL over `idx_records r`, with its parameters.

    A clause that reads only `r.rid` (through sub-queries on the tables keyed by rid) also applies to
    text hits without a look-up in the records table; one that reads other columns of `r` must say so
    in `record_columns`.
    """

    sql: str
    params: tuple[Any, ...] = ()
    record_columns: bool = False

    @staticmethod
    def all_of(clauses: Sequence[Clause]) -> Clause:
        """Every clause holds."""
        if not clauses:
            return Clause("1")
        return Clause._join(" AND ", [Clause(f"({c.sql})", c.params, c.record_columns) for c in clauses])

    @staticmethod
    def any_of(clauses: Sequence[Clause]) -> Clause:
        """At least one clause holds."""
        if not clauses:
            return Clause("0")
        return Clause._join(" OR ", [Clause(f"({c.sql})", c.params, c.record_columns) for c in clauses])

    @staticmethod
    def sequence(clauses: Sequence[Clause]) -> Clause:
        """Sort terms, most significant first."""
        return Clause._join(", ", clauses)

    @staticmethod
    def _join(separator: str, clauses: Sequence[Clause]) -> Clause:
        return Clause(
            separator.join(c.sql for c in clauses),
            tuple(p for c in clauses for p in c.params),
            any(c.record_columns for c in clauses),
        )


@dataclass(frozen=True)
class TextSearch:
    """A user's text query, over one field or all of them, read as Elasticsearch's simple_query_string.

    `search_query` turns it into one FTS5 MATCH expression, or into the records that do not match one
    (a query such as `-word`, which FTS5 alone cannot express).
    """

    q: str
    field: str | None = None

    @cached_property
    def match(self) -> Match:
        """The query in FTS5 form."""
        return to_fts5(parse(self.q))

    def hits_sql(self, *, scored: bool = True) -> str:
        """Matching records in a rid range: `rid`, and `score` (relevance, higher is better) if asked.

        Each record matches at most once: one FTS row per record, or per (record, field) for one field.
        Records matched by exclusion (`-word`, `*`) score 1.0, as Elasticsearch's match_all does.
        """
        if self.match.negated:
            score = ", 1.0 AS score" if scored else ""
            sql = f"SELECT rid{score} FROM idx_records WHERE rid BETWEEN ? AND ?"
            if self.match.expression is None:
                return sql
            return f"{sql} AND rid NOT IN ({self._fts_sql(scored=False)})"
        return self._fts_sql(scored=scored)

    def hits_params(self, dataset_id: str, first_rid: int, last_rid: int) -> list[Any]:
        """The parameters of `hits_sql`, for the records with rids in [first_rid, last_rid]."""
        fts = self._fts_params(dataset_id, first_rid, last_rid) if self.match.expression is not None else []
        if self.match.negated:
            return [first_rid, last_rid, *fts]
        return fts

    def _fts_sql(self, *, scored: bool) -> str:
        if self.field is None:
            # One row per record with all its text: every term may match a different field.
            score = ", -bm25(idx_text_all) AS score" if scored else ""
            return (
                f"SELECT rowid AS rid{score} FROM idx_text_all"
                " WHERE idx_text_all MATCH ? AND rowid BETWEEN ? AND ?"
            )
        score = ", -bm25(idx_text) AS score" if scored else ""
        return (
            f"SELECT rowid >> {FIELD_BITS} AS rid{score} FROM idx_text"
            f" WHERE idx_text MATCH ? AND rowid BETWEEN ? AND ? AND (rowid & {FIELD_MASK}) ="
            " (SELECT field_id FROM idx_fields WHERE dataset_id = ? AND name = ?)"
        )

    def _fts_params(self, dataset_id: str, first_rid: int, last_rid: int) -> list[Any]:
        match = self.match.expression
        if self.field is None:
            return [match, first_rid, last_rid]
        return [match, first_rid << FIELD_BITS, last_rid << FIELD_BITS | FIELD_MASK, dataset_id, self.field]
