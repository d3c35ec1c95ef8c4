"""Fixes of argilla-server 2.8.0 that let many annotators work at once, applied in memory by the launcher.

The rules they establish:
- A read never writes. Upstream's annotator queue search (`POST /me/datasets/{id}/records/search`)
  hides the metadata annotators may not see by assigning the filtered dict to each record's ORM
  object; the session takes that for an edit and autoflushes `UPDATE records SET metadata=...` while
  the request goes on reading. The UPDATE is rolled back at the end of the request, but on SQLite it
  holds the database's write lock meanwhile, so every queue fetch queues behind (and blocks) every
  submission until the lock times out with a 500.
- On SQLite, a transaction that may write takes the write lock when it begins (BEGIN IMMEDIATE), so
  writers queue on the busy timeout. Upstream's deferred BEGIN reads first and asks for the lock at
  the first write; when another writer committed in between, SQLite refuses at once (SQLITE_BUSY,
  no waiting) and the request fails. Reads (GET, HEAD, and the record searches) begin deferred and,
  in WAL mode, neither wait for nor block writers.

Like the speed-ups, each patch names the upstream code it replaces and refuses another version of it.
`campaign server start --no-speedups` runs the stock code path, without these fixes.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from campaign.server.plugin.speedups import Patch, apply_patches, check_source

SEARCH_PATH = "/me/datasets/{dataset_id}/records/search"
# How long a write transaction waits for the SQLite write lock before failing. Writers hold it for
# milliseconds; a queue of 50+ submissions on a loaded 2-core machine drains in a few seconds.
SQLITE_BUSY_TIMEOUT_MS = 60_000

# True while the current HTTP request is a read: its transactions begin deferred.
_read_request: ContextVar[bool] = ContextVar("campaign_read_request", default=False)


def is_read_request(method: str, path: str) -> bool:
    """Whether an API request only reads: GET, HEAD and OPTIONS, and the record searches (POSTs)."""
    return method in ("GET", "HEAD", "OPTIONS") or (method == "POST" and path.endswith("/records/search"))


class ReadRequests:
    """ASGI middleware that marks read requests for the SQLite transaction mode."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        """Run the request, marked as a read when it is one."""
        if scope["type"] != "http" or not is_read_request(scope["method"], scope["path"]):
            await self.app(scope, receive, send)
            return
        token = _read_request.set(True)
        try:
            await self.app(scope, receive, send)
        finally:
            _read_request.reset(token)


def _sqlite_transactions() -> None:
    from argilla_server.api.routes import api_v1
    from argilla_server.settings import settings
    from sqlalchemy import event
    from sqlalchemy.engine import Connection, Engine

    if not settings.database_is_sqlite:
        return

    @event.listens_for(Engine, "connect")
    def _pragmas(dbapi_connection: Any, connection_record: Any) -> None:
        # WAL: readers see the last commit and never wait for the writer. synchronous=NORMAL can lose
        # the last transactions on power loss or an OS crash (never on a process crash), and never
        # corrupts the file.
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.close()

    @event.listens_for(Engine, "begin")
    def _begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN" if _read_request.get() else "BEGIN IMMEDIATE")

    api_v1.add_middleware(ReadRequests)


def _annotator_search_reads_only() -> None:
    """Serve the annotator's queue search without editing the records it reads."""
    from argilla_server.api.handlers.v1.datasets import records as handlers
    from argilla_server.api.routes import api_v1
    from fastapi.routing import APIRoute

    from campaign.server.plugin.annotator_search import search_current_user_dataset_records

    check_source(
        handlers,
        "search_current_user_dataset_records",
        "record.metadata_ = await _filter_record_metadata_for_user(record, current_user)",
    )
    for position, route in enumerate(api_v1.router.routes):
        if isinstance(route, APIRoute) and route.path == SEARCH_PATH and "POST" in route.methods:
            api_v1.router.routes[position] = APIRoute(
                route.path,
                search_current_user_dataset_records,
                methods=list(route.methods),
                response_model=route.response_model,
                status_code=route.status_code,
                tags=route.tags,
                name=route.name,
                response_model_exclude_unset=route.response_model_exclude_unset,
                dependency_overrides_provider=route.dependency_overrides_provider,
            )
            return
    msg = f"argilla-server has no route POST {SEARCH_PATH}; the fix no longer applies."
    raise RuntimeError(msg)


PATCHES: list[Patch] = [
    Patch(
        name="annotator-search-reads-only",
        replaces="argilla_server.api.handlers.v1.datasets.records.search_current_user_dataset_records (its route)",
        apply=_annotator_search_reads_only,
    ),
    Patch(
        name="sqlite-transactions",
        replaces="argilla_server.database's deferred BEGIN on SQLite (adds WAL, a busy timeout, BEGIN IMMEDIATE)",
        apply=_sqlite_transactions,
    ),
]


def apply() -> list[str]:
    """Apply every fix once (on argilla-server 2.8.0 only)."""
    return apply_patches(PATCHES)
