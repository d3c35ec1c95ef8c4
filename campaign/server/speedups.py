"""Targeted speed-ups of argilla-server 2.8.0, applied in memory by the launcher.

No installed file is edited. Each patch names the upstream code it changes, and nothing is applied
to any argilla-server version other than the one the patches were written against.
`campaign server start --no-speedups` runs the stock code path.

Durability trade-off of the SQLite pragmas: WAL with synchronous=NORMAL can lose the last
transactions on power loss or an OS crash (never on a process crash), and never corrupts the file.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUPPORTED_VERSION = "2.8.0"


@dataclass(frozen=True)
class Patch:
    """One speed-up: what it replaces upstream, and how to apply it."""

    name: str
    replaces: str
    apply: Callable[[], None]


def _sqlite_pragmas() -> None:
    from argilla_server.settings import settings
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not settings.database_is_sqlite:
        return

    @event.listens_for(Engine, "connect")
    def _wal(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()


PATCHES: list[Patch] = [
    Patch(
        name="sqlite-wal",
        replaces="argilla_server.database.set_sqlite_pragma (adds WAL and synchronous=NORMAL after it)",
        apply=_sqlite_pragmas,
    ),
]

_applied: list[str] = []


def apply() -> list[str]:
    """Apply every patch once; refuse silently-wrong patching on another argilla-server version."""
    from argilla_server._version import __version__

    if __version__ != SUPPORTED_VERSION:
        msg = (
            f"campaign's server speed-ups were written for argilla-server {SUPPORTED_VERSION}, "
            f"found {__version__}. Start with --no-speedups, or install argilla-server=={SUPPORTED_VERSION}."
        )
        raise RuntimeError(msg)
    for patch in PATCHES:
        if patch.name not in _applied:
            patch.apply()
            _applied.append(patch.name)
    return list(_applied)
