"""The annotator's queue search (`POST /me/datasets/{id}/records/search`) that only reads.

Upstream's handler with one change: the metadata an annotator may not see is left out of the answer
instead of being removed from the records' ORM objects (which the session flushed as an UPDATE, see
`fixes`). A record missing from the database (deleted after the search index answered) is left out
instead of failing the request.
"""

from __future__ import annotations

from uuid import UUID

from argilla_server.api.handlers.v1.datasets import records as handlers
from argilla_server.api.policies.v1 import DatasetPolicy, RecordPolicy, authorize, is_authorized
from argilla_server.api.schemas.v1.records import Record as RecordSchema
from argilla_server.api.schemas.v1.records import (
    RecordIncludeParam,
    SearchRecord,
    SearchRecordsQuery,
    SearchRecordsResult,
)
from argilla_server.contexts import datasets
from argilla_server.database import get_async_db
from argilla_server.models import Dataset, User
from argilla_server.search_engine import SearchEngine, get_search_engine
from argilla_server.security import auth
from fastapi import Depends, Query, Security
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.attributes import set_committed_value


async def search_current_user_dataset_records(
    *,
    db: AsyncSession = Depends(get_async_db),
    search_engine: SearchEngine = Depends(get_search_engine),
    dataset_id: UUID,
    body: SearchRecordsQuery,
    include: RecordIncludeParam | None = Depends(handlers.parse_record_include_param),
    offset: int = Query(0, ge=0),
    limit: int = Query(
        default=handlers.LIST_DATASET_RECORDS_LIMIT_DEFAULT, ge=1, le=handlers.LIST_DATASET_RECORDS_LIMIT_LE
    ),
    current_user: User = Security(auth.get_current_user),
) -> SearchRecordsResult:
    """The current user's page of records that match the query, with the metadata they may see."""
    dataset = await Dataset.get_or_raise(
        db, dataset_id, options=[selectinload(Dataset.fields), selectinload(Dataset.metadata_properties)]
    )
    await authorize(current_user, DatasetPolicy.search_records(dataset))
    await handlers._validate_search_records_query(db, body, dataset)
    found = await handlers._get_search_responses(
        db=db,
        search_engine=search_engine,
        dataset=dataset,
        search_records_query=body,
        limit=limit,
        offset=offset,
        user=current_user,
    )
    records = await datasets.get_records_by_ids(
        db=db,
        dataset_id=dataset_id,
        records_ids=[item.record_id for item in found.items],
        include=include,
        user_id=current_user.id,
    )
    # Whether a user may see a metadata property depends on the dataset and the name only.
    visible: dict[str, bool] = {}
    items = []
    for item, record in zip(found.items, records, strict=True):
        if record is None:
            continue
        # Sets the relationship the policy reads without recording a change, as a query would load it.
        set_committed_value(record, "dataset", dataset)
        answer = RecordSchema.model_validate(record)
        if record.metadata_ is not None:
            metadata = {}
            for name, value in record.metadata_.items():
                if name not in visible:
                    visible[name] = await is_authorized(current_user, RecordPolicy.get_metadata(record, name))
                if visible[name]:
                    metadata[name] = value
            answer.metadata = metadata
        items.append(SearchRecord(record=answer, query_score=item.score))
    return SearchRecordsResult(items=items, total=found.total)
