"""A create-only bulk endpoint of the local server: `POST /api/v1/campaign/datasets/{id}/records/create-bulk`.

`campaign seed` only ever adds records that a dataset does not hold yet (ids are content hashes), so
it does not need the stock `PUT /records/bulk`'s update path, its ORM round trips or its answer that
echoes every record. This endpoint takes the same body (`RecordsBulkUpsert`, the same pydantic schema)
and validates every item with the same upstream validator (`RecordUpsertValidator`), so bad input gets
the same 422 errors. Then it:

- inserts the new records and their suggestions with two executemany INSERTs; records use
  `ON CONFLICT (external_id, dataset_id) DO NOTHING`, so a re-run or a concurrent run adds nothing twice;
- gives them the status upstream's distribution gives a record without responses;
- indexes the new records in the search engine in one call (after the commit, as upstream does), and
  re-indexes records of the batch that already existed (upstream re-indexes them too, as updates),
  which also repairs a record whose indexing a killed server never finished;
- answers with counts only.

Existing records are left as they are (create-only). The dataset row is not touched, as upstream's bulk
upsert does not touch it either. Whatever the endpoint cannot do the way upstream does, it refuses with
409 and `FAST_PATH_UNAVAILABLE`, and the client falls back to the stock endpoint: items with a server
`id`, `responses` or `vectors`; a distribution strategy other than overlap; and any enabled webhook that
subscribes to record events (upstream emits one per record, this endpoint emits none).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from argilla_server.api.policies.v1 import DatasetPolicy, authorize
from argilla_server.api.schemas.v1.records_bulk import RecordsBulkUpsert
from argilla_server.bulk.records_bulk import _preload_records_relationships_before_index
from argilla_server.contexts import webhooks
from argilla_server.contexts.records import fetch_records_by_external_ids_as_dict
from argilla_server.database import get_async_db
from argilla_server.enums import DatasetDistributionStrategy, RecordStatus
from argilla_server.errors.future import UnprocessableEntityError
from argilla_server.models import Dataset, Question, Record, Suggestion, User
from argilla_server.search_engine import SearchEngine, get_search_engine
from argilla_server.security import auth
from argilla_server.validators.records import RecordUpsertValidator
from argilla_server.webhooks.v1.enums import RecordEvent
from fastapi import APIRouter, Depends, Security
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

FAST_PATH_UNAVAILABLE = "campaign_fast_path_unavailable"  # the 409 answer's code; its message starts:
UNAVAILABLE_MESSAGE = "fast path unavailable"
# Events that upstream's bulk upsert emits per record (created for new ones, updated for existing ones).
BULK_RECORD_EVENTS = frozenset({str(RecordEvent.created), str(RecordEvent.updated)})
_INSERT: dict[str, Any] = {"sqlite": sqlite_insert, "postgresql": postgresql_insert}

router = APIRouter(prefix="/campaign", tags=["campaign"])


@router.post("/datasets/{dataset_id}/records/create-bulk")
async def create_records_bulk(
    *,
    dataset_id: UUID,
    records_bulk_upsert: RecordsBulkUpsert,
    db: AsyncSession = Depends(get_async_db),
    search_engine: SearchEngine = Depends(get_search_engine),
    current_user: User = Security(auth.get_current_user),
) -> JSONResponse:
    """Create the records whose external id the dataset does not hold; `{"created": n, "already_present": m}`."""
    # The same loading, authorization and validation as upstream's PUT /datasets/{id}/records/bulk.
    dataset = await Dataset.get_or_raise(
        db,
        dataset_id,
        options=[
            selectinload(Dataset.fields),
            selectinload(Dataset.questions),
            selectinload(Dataset.metadata_properties),
            selectinload(Dataset.vectors_settings),
        ],
    )
    await authorize(current_user, DatasetPolicy.upsert_records(dataset))
    # Declining is cheap, and comes before validation: the stock endpoint will validate the batch anyway.
    reason = await _unsupported(db, dataset, records_bulk_upsert)
    if reason is not None:
        return JSONResponse(
            status_code=409,
            content={
                "detail": {"code": FAST_PATH_UNAVAILABLE, "message": f"{UNAVAILABLE_MESSAGE}: {reason}"}
            },
        )

    items = records_bulk_upsert.items
    existing = await fetch_records_by_external_ids_as_dict(db, dataset, [item.external_id for item in items])
    for idx, item in enumerate(items):
        try:
            await RecordUpsertValidator.validate(item, dataset, existing.get(item.external_id))
        except Exception as ex:
            raise UnprocessableEntityError(f"Record at position {idx} is not valid because {ex}") from ex

    batch = _new_rows(dataset, [item for item in items if item.external_id not in existing])
    created = await _insert(db, batch)
    questions = {question.id: question for question in dataset.questions}
    await db.commit()

    to_index: list[Any] = [
        _IndexedRecord.of(row, batch, questions) for row in batch.records if row["id"] in created
    ]
    if existing:
        # Upstream re-indexes the records of a batch that already exist; so does this endpoint.
        await _preload_records_relationships_before_index(db, list(existing.values()))
        to_index.extend(existing.values())
    if to_index:
        await search_engine.index_records(dataset, to_index)
    return JSONResponse({"created": len(created), "already_present": len(items) - len(created)})


async def _unsupported(db: AsyncSession, dataset: Dataset, bulk: RecordsBulkUpsert) -> str | None:
    """Why this batch must go through the stock endpoint, or None."""
    if any(item.id is not None for item in bulk.items):
        return "items with a server id are updates; use PUT /datasets/{id}/records/bulk"
    if any(item.responses or item.vectors for item in bulk.items):
        return "items with responses or vectors; use PUT /datasets/{id}/records/bulk"
    if dataset.distribution_strategy != DatasetDistributionStrategy.overlap:
        return f"distribution strategy {dataset.distribution_strategy} is not supported here"
    for webhook in await webhooks.list_enabled_webhooks(db):
        if BULK_RECORD_EVENTS & {str(event) for event in webhook.events or []}:
            return "an enabled webhook subscribes to record events, which only the stock endpoint emits"
    return None


@dataclass
class _Batch:
    """Rows to insert: records in request order, suggestions keyed by their record's id."""

    records: list[dict[str, Any]] = field(default_factory=list)
    suggestions: dict[UUID, list[dict[str, Any]]] = field(default_factory=dict)


def _new_rows(dataset: Dataset, items: list[Any]) -> _Batch:
    """The rows upstream would write for these new records, suggestions included."""
    # Upstream's overlap distribution for a record without responses (contexts.distribution).
    status = RecordStatus.completed if dataset.distribution["min_submitted"] <= 0 else RecordStatus.pending
    batch = _Batch()
    # A microsecond apart, in request order: records list by (inserted_at, id), as upstream's do.
    start = datetime.utcnow()
    for position, item in enumerate(items):
        now = start + timedelta(microseconds=position)
        record_id = uuid4()
        batch.records.append(
            {
                "id": record_id,
                "fields": jsonable_encoder(item.fields),
                "metadata": item.metadata,
                "status": status,
                "external_id": item.external_id,
                "dataset_id": dataset.id,
                "inserted_at": now,
                "updated_at": now,
            }
        )
        batch.suggestions[record_id] = [
            {
                **suggestion.model_dump(),
                "id": uuid4(),
                "record_id": record_id,
                "inserted_at": now,
                "updated_at": now,
            }
            for suggestion in item.suggestions or []
        ]
    return batch


async def _insert(db: AsyncSession, batch: _Batch) -> set[UUID]:
    """Insert the records (skipping external ids another request added meanwhile) and their suggestions."""
    if not batch.records:
        return set()
    insert = _INSERT[db.bind.dialect.name]
    records = Record.__table__
    statement = (
        insert(records)
        .on_conflict_do_nothing(index_elements=[records.c.external_id, records.c.dataset_id])
        .returning(records.c.id)
    )
    created = {row[0] for row in (await db.execute(statement, batch.records)).all()}
    suggestions = [row for record_id in created for row in batch.suggestions[record_id]]
    if suggestions:
        await db.execute(insert(Suggestion.__table__), suggestions)
    return created


@dataclass
class _IndexedSuggestion:
    """What a search engine reads of a new suggestion (the attributes of `models.Suggestion`)."""

    question: Question
    value: Any
    type: Any
    agent: str | None
    score: Any


@dataclass
class _IndexedRecord:
    """What a search engine reads of a new record (the attributes of `models.Record`): no ORM load."""

    id: UUID
    external_id: str | None
    fields: dict[str, Any]
    metadata_: dict[str, Any] | None
    status: RecordStatus
    inserted_at: datetime
    updated_at: datetime
    dataset_id: UUID
    suggestions: list[_IndexedSuggestion]
    responses: list[Any] = field(default_factory=list)
    responses_submitted: list[Any] = field(default_factory=list)
    vectors: list[Any] = field(default_factory=list)

    @classmethod
    def of(cls, row: dict[str, Any], batch: _Batch, questions: dict[UUID, Question]) -> _IndexedRecord:
        """The indexable form of an inserted record row."""
        return cls(
            id=row["id"],
            external_id=row["external_id"],
            fields=row["fields"],
            metadata_=row["metadata"],
            status=row["status"],
            inserted_at=row["inserted_at"],
            updated_at=row["updated_at"],
            dataset_id=row["dataset_id"],
            suggestions=[
                _IndexedSuggestion(
                    question=questions[s["question_id"]],
                    value=s["value"],
                    type=s["type"],
                    agent=s["agent"],
                    score=s["score"],
                )
                for s in batch.suggestions[row["id"]]
            ],
        )


__all__ = ["FAST_PATH_UNAVAILABLE", "create_records_bulk", "router"]
