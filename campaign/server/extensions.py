"""Read-only API endpoints the local server adds under /api/v1/campaign/, for incremental sync.

Argilla 2.8 cannot list what changed since a time: a response's creation or edit does not touch its
record's `updated_at`. This endpoint returns a fingerprint per record (its own update time, and the
number and latest update time of its responses and suggestions), so a client can fetch only the records
whose fingerprint moved, and notice deleted ones. Other servers answer 404, and the client falls back to
a full sync.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from argilla_server.api.policies.v1 import DatasetPolicy, authorize
from argilla_server.database import get_async_db
from argilla_server.models import Dataset, Record, Response, Suggestion, User
from argilla_server.security import auth
from fastapi import APIRouter, Depends, Security
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

router = APIRouter(prefix="/campaign", tags=["campaign"])


@router.get("/datasets/{dataset_id}/fingerprints")
async def record_fingerprints(
    *,
    db: AsyncSession = Depends(get_async_db),
    dataset_id: UUID,
    current_user: User = Security(auth.get_current_user),
) -> dict[str, Any]:
    """One row per record: [id, external_id, updated_at, responses, responses_updated_at, suggestions_updated_at]."""
    dataset = await Dataset.get_or_raise(db, dataset_id)
    await authorize(current_user, DatasetPolicy.list_records_with_all_responses(dataset))
    responses = (
        select(
            Response.record_id.label("record_id"),
            func.count(Response.id).label("n"),
            func.max(Response.updated_at).label("last"),
        )
        .join(Record, Record.id == Response.record_id)
        .where(Record.dataset_id == dataset_id)
        .group_by(Response.record_id)
        .subquery()
    )
    suggestions = (
        select(Suggestion.record_id.label("record_id"), func.max(Suggestion.updated_at).label("last"))
        .join(Record, Record.id == Suggestion.record_id)
        .where(Record.dataset_id == dataset_id)
        .group_by(Suggestion.record_id)
        .subquery()
    )
    rows = await db.execute(
        select(
            Record.id,
            Record.external_id,
            Record.updated_at,
            func.coalesce(responses.c.n, 0),
            responses.c.last,
            suggestions.c.last,
        )
        .outerjoin(responses, responses.c.record_id == Record.id)
        .outerjoin(suggestions, suggestions.c.record_id == Record.id)
        .where(Record.dataset_id == dataset_id)
        .order_by(Record.inserted_at, Record.id)
    )
    return {
        "items": [
            [str(rid), external, _iso(updated), int(n), _iso(last_response), _iso(last_suggestion)]
            for rid, external, updated, n, last_response, last_suggestion in rows.all()
        ]
    }


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def install() -> None:
    """Add the endpoints to argilla-server's API v1 app (before the server starts)."""
    from argilla_server.api.routes import api_v1

    if not any(getattr(route, "path", "").startswith("/campaign/") for route in api_v1.routes):
        api_v1.include_router(router)
