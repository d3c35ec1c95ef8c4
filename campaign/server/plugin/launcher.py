"""Entry point of every argilla-server process of the local server.

`python -m campaign.server.plugin.launcher ROLE` registers the SQLite search engine (and, unless
disabled, the fixes and speed-ups) before argilla-server is used, which plain `python -m argilla_server` cannot do.

Roles:
  prepare   run migrations, create or update the owner, rebuild a missing or stale search index
  serve     the FastAPI app with the web UI (uvicorn), on --host/--port
  worker    an rq worker for the jobs that recompute record status
  reindex   rebuild the search index from the database

Configuration comes from the environment that `campaign.server.control.local_server` sets:
ARGILLA_* settings, CAMPAIGN_SEARCH_INDEX, and CAMPAIGN_CREDENTIALS_FILE, the 0600 file that holds
the owner's username, password and API key (secrets never travel in argv or the environment).

`serve --prepare` runs the preparation in the server process before it listens, which saves one
start of the interpreter and argilla-server's imports.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Awaitable
from pathlib import Path
from typing import Any, TypeVar

SPEEDUPS_ENV = "CAMPAIGN_SPEEDUPS"
RUN_DIR_ENV = "CAMPAIGN_RUN_DIR"
T = TypeVar("T")


def _private_tempdir(role: str) -> None:
    """Send this process's temp files (argilla copies its web UI there) to a dir removed at exit."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        return
    path = Path(run_dir) / "tmp" / f"{role}-{os.getpid()}"
    path.mkdir(parents=True, exist_ok=True)
    os.environ["TMPDIR"] = str(path)
    tempfile.tempdir = str(path)
    atexit.register(shutil.rmtree, path, True)


def _exit_on_sigterm() -> None:
    # Turn SIGTERM into a normal exit so atexit handlers run (servers install their own handlers later).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))


def bootstrap() -> None:
    """Register the search engine, apply the fixes and speed-ups; every argilla-server process runs this first."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("ARGILLA_SEARCH_ENGINE", "campaign-sql")
    import campaign.server.plugin.search_engine  # noqa: F401  registers the search engine

    if os.environ.get(SPEEDUPS_ENV, "1") != "0":
        from campaign.server.plugin import fixes, speedups

        fixes.apply()
        speedups.apply()


async def _upsert_owner() -> str:
    from argilla_server.contexts import accounts
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import User, UserRole

    creds = json.loads(Path(os.environ["CAMPAIGN_CREDENTIALS_FILE"]).read_text(encoding="utf-8"))
    username, password, api_key = creds["username"], creds["password"], creds["api_key"]
    async with AsyncSessionLocal() as db:
        user = await accounts.get_user_by_username(db, username)
        if user is None:
            await User.create(
                db,
                first_name=username,
                username=username,
                role=UserRole.owner,
                password_hash=accounts.hash_password(password),
                api_key=api_key,
            )
            return "created"
        if user.api_key != api_key or not accounts.verify_password(password, user.password_hash):
            await user.update(db, api_key=api_key, password_hash=accounts.hash_password(password))
            return "updated"
        return "unchanged"


async def _stale_datasets() -> list[str]:
    """Datasets whose indexed record count differs from the database's (or that have no index)."""
    from argilla_server.database import AsyncSessionLocal
    from argilla_server.models import Dataset, Record
    from sqlalchemy import func, select

    from campaign.server.plugin.search_engine import shared_index

    index = shared_index()
    indexed = index.dataset_ids()
    stale: list[str] = []
    async with AsyncSessionLocal() as db:
        rows = (
            await db.execute(
                select(Dataset.id, Dataset.status, func.count(Record.id))
                .outerjoin(Record)
                .group_by(Dataset.id)
            )
        ).all()
    for dataset_id, status, n_records in rows:
        if str(status) == "draft":
            continue
        if str(dataset_id) not in indexed or index.count_records(str(dataset_id)) != n_records:
            stale.append(str(dataset_id))
    return stale


async def _reindex(dataset_ids: list[str] | None) -> None:
    from uuid import UUID

    from argilla_server.cli.search_engine.reindex import _reindex as reindex_one

    if dataset_ids is None:
        await reindex_one(None)
    else:
        for dataset_id in dataset_ids:
            await reindex_one(UUID(dataset_id))


async def _in_one_loop(steps: Awaitable[T]) -> T:
    """Await steps, then close argilla's pooled connections: asyncpg's belong to this event loop."""
    from argilla_server.database import async_engine

    try:
        return await steps
    finally:
        await async_engine.dispose()


async def _prepare_database() -> dict[str, Any]:
    owner = await _upsert_owner()
    stale = await _stale_datasets()
    if stale:
        await _reindex(stale)
    return {"owner": owner, "reindexed": stale}


def prepare() -> dict[str, Any]:
    """Migrate, make sure the owner exists with the stored credentials, repair the index."""
    import contextlib
    import io

    from argilla_server.cli.database.migrate import migrate_db

    with contextlib.redirect_stdout(io.StringIO()):
        migrate_db(revision="head")
    # One event loop for every async step (a second asyncio.run would reuse asyncpg connections of the first).
    return asyncio.run(_in_one_loop(_prepare_database()))


def serve(host: str, port: int, workers: int = 1) -> None:
    """Run the app (campaign.server.plugin.app: argilla's app, bootstrapped) until SIGTERM.

    With several workers, uvicorn starts processes that import campaign.server.plugin.app themselves, so
    each one registers the engine, the speed-ups and the sync endpoints before serving.
    """
    import uvicorn

    uvicorn.run(
        "campaign.server.plugin.app:app",
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        log_level="warning",
    )


def worker() -> None:
    """Run one rq worker on argilla's queues until SIGTERM."""
    from argilla_server.jobs.queues import DEFAULT_QUEUE, HIGH_QUEUE, REDIS_CONNECTION
    from rq import Worker

    Worker([HIGH_QUEUE.name, DEFAULT_QUEUE.name], connection=REDIS_CONNECTION).work(with_scheduler=False)


def main(argv: list[str] | None = None) -> int:
    """Parse the role and run it."""
    parser = argparse.ArgumentParser(prog="campaign.server.plugin.launcher")
    parser.add_argument("role", choices=["prepare", "serve", "worker", "reindex"])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6900)
    parser.add_argument("--dataset", action="append", help="reindex only these dataset ids")
    parser.add_argument("--prepare", action="store_true", help="serve: prepare first, then listen")
    parser.add_argument("--workers", type=int, default=1, help="serve: HTTP worker processes")
    args = parser.parse_args(argv)

    _private_tempdir(args.role)
    _exit_on_sigterm()
    bootstrap()
    if args.role == "prepare":
        print(json.dumps(prepare()), flush=True)
    elif args.role == "serve":
        if args.prepare:
            print(json.dumps(prepare()), flush=True)
        serve(args.host, args.port, args.workers)
    elif args.role == "worker":
        worker()
    else:
        asyncio.run(_in_one_loop(_reindex(args.dataset)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
