"""argilla-server's SearchEngine, backed by the local SQLite index instead of Elasticsearch.

Registered under the name `campaign-sql`; a process that imports this module (through the launcher)
can run argilla-server with ARGILLA_SEARCH_ENGINE=campaign-sql. Observable behaviour follows
argilla_server/search_engine/commons.py: the same filters, sorts, progress dicts (zero counts
omitted) and metrics.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
from argilla_server.enums import MetadataPropertyType, RecordSortField, ResponseStatusFilter, SimilarityOrder
from argilla_server.models import (
    Dataset,
    MetadataProperty,
    Record,
    Response,
    Suggestion,
    User,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    Filter,
    FilterScope,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)

from campaign.server.plugin.search_index import (
    Clause,
    RecordDoc,
    ResponseDoc,
    SearchIndex,
    SuggestionDoc,
    TextSearch,
)

ENGINE_NAME = "campaign-sql"
INDEX_PATH_ENV = "CAMPAIGN_SEARCH_INDEX"
INDEX_FILENAME = "search-index.sqlite"
MAX_TERMS = 2**14

_INDEXES: dict[str, SearchIndex] = {}


def index_path() -> Path:
    """Where this process's index lives: $CAMPAIGN_SEARCH_INDEX, else beside argilla's home."""
    if env := os.environ.get(INDEX_PATH_ENV):
        return Path(env)
    from argilla_server.settings import settings

    return Path(settings.home_path) / INDEX_FILENAME


def shared_index() -> SearchIndex:
    """The process-wide connection to the index (opened once, reused by every request)."""
    path = str(index_path())
    if path not in _INDEXES:
        _INDEXES[path] = SearchIndex(path)
    return _INDEXES[path]


def _timestamp(value: datetime | None) -> float:
    return value.timestamp() if value is not None else 0.0


def _text_of(value: Any) -> str:
    """The searchable text of a field value: plain text, chat messages or custom JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(_text_of(item.get("content") if isinstance(item, dict) else item) for item in value)
    return str(value)


def record_to_doc(record: Record, dataset: Dataset) -> RecordDoc:
    """The index document of a record, built from the attributes the Elasticsearch engine reads."""
    texts = {f.name: _text_of(record.fields.get(f.name)) for f in dataset.fields if not f.is_image}
    metadata: dict[str, Any] = {}
    if record.metadata_:
        for prop in dataset.metadata_properties:
            value = record.metadata_.get(prop.name)
            if value is not None:
                metadata[prop.name] = value
    return RecordDoc(
        record_id=str(record.id),
        dataset_id=str(dataset.id),
        external_id=record.external_id,
        status=str(record.status),
        inserted_at=_timestamp(record.inserted_at),
        updated_at=_timestamp(record.updated_at),
        texts=texts,
        metadata=metadata,
        suggestions=[suggestion_to_doc(s) for s in (record.suggestions or [])],
        responses=[response_to_doc(r) for r in (record.responses or [])],
        vectors={
            str(v.vector_settings_id): np.asarray(v.value, dtype=np.float32).tobytes()
            for v in (record.vectors or [])
        },
    )


def suggestion_to_doc(suggestion: Suggestion) -> SuggestionDoc:
    """The index form of a suggestion."""
    return SuggestionDoc(
        question=suggestion.question.name,
        value=suggestion.value,
        type=str(suggestion.type) if suggestion.type is not None else None,
        agent=suggestion.agent,
        score=suggestion.score if isinstance(suggestion.score, int | float) else None,
    )


def response_to_doc(response: Response) -> ResponseDoc:
    """The index form of a response: status, user and each question's value."""
    values = {q: (v or {}).get("value") for q, v in (response.values or {}).items()}
    return ResponseDoc(
        response_id=str(response.id),
        user_id=str(response.user_id),
        status=str(response.status),
        values=values,
    )


# -- filters and sorts ------------------------------------------------------------------------------


UserNumbers = Callable[[str], int | None]


def compile_filter(filter: Filter, user_numbers: UserNumbers) -> Clause:
    """Translate a search-engine filter into SQL over `idx_records r`.

    `user_numbers` gives the index's number of a user id (`SearchIndex.user_number`): the clauses compare
    it as a constant instead of looking it up again for every record they test.
    """
    if isinstance(filter, AndFilter):
        return Clause.all_of([compile_filter(f, user_numbers) for f in filter.filters])
    scope = filter.scope
    if isinstance(scope, ResponseFilterScope):
        return _response_filter(filter, scope, user_numbers)
    if isinstance(scope, MetadataFilterScope):
        return _exists(
            "idx_metadata m", "m.rid = r.rid AND m.name = ?", (scope.metadata_property,), filter, "m"
        )
    if isinstance(scope, SuggestionFilterScope):
        return _suggestion_filter(filter, scope)
    if isinstance(scope, RecordFilterScope):
        return _record_filter(filter, scope)
    msg = f"Cannot process request for search scope {scope}"
    raise ValueError(msg)


def _value_condition(filter: Filter, alias: str, text_col: str = "vtext", num_col: str = "vnum") -> Clause:
    if isinstance(filter, TermsFilter):
        values = [str(v) for v in filter.values]
        if not values:
            return Clause("0")
        return Clause(f"{alias}.{text_col} IN ({','.join('?' * len(values))})", tuple(values))
    if isinstance(filter, RangeFilter):
        parts, params = [], []
        if filter.ge is not None:
            parts.append(f"{alias}.{num_col} >= ?")
            params.append(filter.ge)
        if filter.le is not None:
            parts.append(f"{alias}.{num_col} <= ?")
            params.append(filter.le)
        if not parts:
            parts.append(f"{alias}.{num_col} IS NOT NULL")
        return Clause(" AND ".join(parts), tuple(params))
    msg = f"Cannot process request for filter {filter}"
    raise ValueError(msg)


def _exists(table: str, join: str, params: tuple[Any, ...], filter: Filter, alias: str) -> Clause:
    condition = _value_condition(filter, alias)
    return Clause(
        f"EXISTS (SELECT 1 FROM {table} WHERE {join} AND {condition.sql})", params + condition.params
    )


def _suggestion_filter(filter: Filter, scope: SuggestionFilterScope) -> Clause:
    columns = {
        "value": ("vtext", "vnum"),
        "score": ("score", "score"),
        "agent": ("agent", "agent"),
        "type": ("type", "type"),
    }
    if scope.property not in columns:
        msg = f"Cannot process request for search scope {scope}"
        raise ValueError(msg)
    text_col, num_col = columns[scope.property]
    if scope.property == "score" and isinstance(filter, TermsFilter):
        values = [float(v) for v in filter.values]
        condition = (
            Clause(f"s.score IN ({','.join('?' * len(values))})", tuple(values)) if values else Clause("0")
        )
    else:
        condition = _value_condition(filter, "s", text_col, num_col)
    return Clause(
        f"EXISTS (SELECT 1 FROM idx_suggestions s WHERE s.rid = r.rid AND s.question = ? AND {condition.sql})",
        (scope.question, *condition.params),
    )


def _record_filter(filter: Filter, scope: RecordFilterScope) -> Clause:
    column = _record_column(scope.property)
    if isinstance(filter, TermsFilter):
        values = [str(v) for v in filter.values]
        if not values:
            return Clause("0")
        return Clause(f"r.{column} IN ({','.join('?' * len(values))})", tuple(values), record_columns=True)
    if isinstance(filter, RangeFilter):
        parts, params = [], []
        for op, bound in ((">=", filter.ge), ("<=", filter.le)):
            if bound is not None:
                parts.append(f"r.{column} {op} ?")
                params.append(_record_bound(bound))
        return Clause(" AND ".join(parts) or "1", tuple(params), record_columns=True)
    msg = f"Cannot process request for filter {filter}"
    raise ValueError(msg)


def _record_column(name: str) -> str:
    columns = {
        RecordSortField.id.value: "record_id",
        RecordSortField.external_id.value: "external_id",
        RecordSortField.inserted_at.value: "inserted_at",
        RecordSortField.updated_at.value: "updated_at",
        RecordSortField.status.value: "status",
    }
    if name not in columns:
        msg = f"Cannot process request for record property {name!r}"
        raise ValueError(msg)
    return columns[name]


def _record_bound(bound: Any) -> Any:
    if isinstance(bound, datetime):
        return bound.timestamp()
    if isinstance(bound, str):
        try:
            return datetime.fromisoformat(bound).timestamp()
        except ValueError:
            return bound
    return bound


def _response_filter(filter: Filter, scope: ResponseFilterScope, user_numbers: UserNumbers) -> Clause:
    user_id = str(scope.user.id) if scope.user is not None else None
    if scope.question:
        condition = _value_condition(filter, "v")
        user_sql, user_params = (" AND v.user_id = ?", (user_id,)) if user_id else ("", ())
        return Clause(
            "EXISTS (SELECT 1 FROM idx_response_values v WHERE v.rid = r.rid AND v.question = ?"
            f" AND {condition.sql}{user_sql})",
            (scope.question, *condition.params, *user_params),
        )
    if scope.property == "status" and isinstance(filter, TermsFilter):
        return response_status_clause([str(v) for v in filter.values], user_id, user_numbers)
    msg = f"Cannot process filter scope {scope}"
    raise ValueError(msg)


def response_status_clause(statuses: list[str], user_id: str | None, user_numbers: UserNumbers) -> Clause:
    """Records whose responses have one of these statuses; `pending` means no response (by the user)."""
    if not statuses:
        # An empty status list matches everything, as an empty nested bool query does.
        return Clause("1")
    user_sql = ""
    user_params: tuple[int, ...] = ()
    if user_id:
        number = user_numbers(user_id)
        if number is None:  # the index holds no response of this user: every record is pending for them
            return Clause("1" if ResponseStatusFilter.pending.value in statuses else "0")
        user_sql, user_params = " AND p.uno = ?", (number,)
    options: list[Clause] = []
    if ResponseStatusFilter.pending.value in statuses:
        options.append(
            Clause(f"NOT EXISTS (SELECT 1 FROM idx_responses p WHERE p.rid = r.rid{user_sql})", user_params)
        )
    others = [s for s in statuses if s != ResponseStatusFilter.pending.value]
    if others:
        marks = ",".join("?" * len(others))
        options.append(
            Clause(
                f"EXISTS (SELECT 1 FROM idx_responses p WHERE p.rid = r.rid AND p.status IN ({marks}){user_sql})",
                (*others, *user_params),
            )
        )
    return Clause.any_of(options)


def _only_status_filter(filter: Filter | None) -> tuple[list[str], str | None] | None:
    """The statuses and user of a filter that is nothing but a response-status filter (the UI's queue)."""
    while isinstance(filter, AndFilter) and len(filter.filters) == 1:
        filter = filter.filters[0]
    if not isinstance(filter, TermsFilter):
        return None
    scope = filter.scope
    if not isinstance(scope, ResponseFilterScope) or scope.question or scope.property != "status":
        return None
    if not filter.values:
        return None
    return [str(v) for v in filter.values], (str(scope.user.id) if scope.user is not None else None)


def compile_order(order: Order, dataset: Dataset | None = None) -> Clause:
    """Translate one sort key into an ORDER BY term; missing values sort last either way, as in Elasticsearch."""
    direction = "DESC" if str(order.order) == "desc" else "ASC"
    aggregate = "max" if direction == "DESC" else "min"
    scope: FilterScope = order.scope
    if isinstance(scope, RecordFilterScope):
        return Clause(f"r.{_record_column(scope.property)} {direction}", record_columns=True)
    if isinstance(scope, MetadataFilterScope):
        column = _metadata_sort_column(scope.metadata_property, dataset)
        return Clause(
            f"(SELECT {aggregate}(m.{column}) FROM idx_metadata m WHERE m.rid = r.rid AND m.name = ?)"
            f" {direction} NULLS LAST",
            (scope.metadata_property,),
        )
    if isinstance(scope, SuggestionFilterScope):
        column = {"value": "vnum", "score": "score", "agent": "agent", "type": "type"}.get(
            scope.property, "vnum"
        )
        return Clause(
            f"(SELECT {aggregate}(s.{column}) FROM idx_suggestions s WHERE s.rid = r.rid AND s.question = ?)"
            f" {direction} NULLS LAST",
            (scope.question,),
        )
    if isinstance(scope, ResponseFilterScope):
        question = scope.question or scope.property
        user_sql, params = "", [question]
        if scope.user is not None:
            user_sql, params = " AND v.user_id = ?", [question, str(scope.user.id)]
        return Clause(
            f"(SELECT avg(v.vnum) FROM idx_response_values v WHERE v.rid = r.rid AND v.question = ?{user_sql})"
            f" {direction} NULLS LAST",
            tuple(params),
        )
    msg = f"Cannot process request for search scope {scope}"
    raise ValueError(msg)


def _metadata_sort_column(name: str, dataset: Dataset | None) -> str:
    if dataset is not None:
        for prop in dataset.metadata_properties:
            if prop.name == name and prop.type == MetadataPropertyType.terms:
                return "vtext"
    return "vnum"


def _text_search(dataset: Dataset, query: TextQuery | str | None) -> TextSearch | None:
    if query is None:
        return None
    text = TextQuery(q=query) if isinstance(query, str) else query
    if text.field and dataset.field_by_name(text.field) is None:
        msg = f"Field {text.field} not found in dataset {dataset.id}"
        raise Exception(msg)
    return TextSearch(q=text.q, field=text.field)


@SearchEngine.register(engine_name=ENGINE_NAME)
class SQLiteSearchEngine(SearchEngine):
    """SearchEngine over the local SQLite index; one shared connection per process."""

    def __init__(self, index: SearchIndex) -> None:
        self.index = index

    @classmethod
    async def new_instance(cls) -> SQLiteSearchEngine:
        return cls(shared_index())

    async def close(self) -> None:
        # The connection is shared by every request of this process and lives as long as it does.
        return None

    async def ping(self) -> bool:
        self.index.query("SELECT 1")
        return True

    async def info(self) -> dict:
        import sqlite3

        return {
            "engine": ENGINE_NAME,
            "version": {"number": sqlite3.sqlite_version},
            "path": str(self.index.path),
        }

    async def create_index(self, dataset: Dataset) -> None:
        self.index.create_dataset(str(dataset.id))

    async def delete_index(self, dataset: Dataset) -> None:
        self.index.delete_dataset(str(dataset.id))

    async def configure_metadata_property(
        self, dataset: Dataset, metadata_property: MetadataProperty
    ) -> None:
        # Columns are generic: a new property needs no schema change. Existing records are not
        # re-indexed for it, as with Elasticsearch's put_mapping.
        return None

    async def configure_index_vectors(self, vector_settings: VectorSettings) -> None:
        return None

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        self.index.upsert_records(record_to_doc(record, dataset) for record in records)

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        if "status" in update:
            self.index.update_record_status(str(record.id), str(update["status"]))

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        self.index.delete_records(str(record.id) for record in records)

    async def update_record_response(self, response: Response) -> None:
        self.index.upsert_response(str(response.record_id), response_to_doc(response))

    async def delete_record_response(self, response: Response) -> None:
        self.index.delete_response(str(response.id))

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        self.index.upsert_suggestion(str(suggestion.record_id), suggestion_to_doc(suggestion))

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        self.index.delete_suggestion(str(suggestion.record_id), suggestion.question.name)

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        counts = self.index.status_counts(str(dataset.id))
        return {"total": sum(counts.values()), **{k: v for k, v in counts.items() if v}}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        counts = self.index.user_status_counts(str(dataset.id), str(user.id))
        return {"total": sum(counts.values()), **{k: v for k, v in counts.items() if v}}

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | UUID | None = None,
    ) -> SearchResponses:
        text = _text_search(dataset, query)
        if any(isinstance(order.scope, MetadataFilterScope) for order in sort or []):
            # A metadata sort reads the property's type; the dataset search endpoint loads the dataset
            # without its properties, and a lazy load outside await fails.
            await dataset.awaitable_attrs.metadata_properties
        total = None
        statuses = _only_status_filter(filter)
        if statuses is not None and text is None:
            values, user = statuses
            total = self.index.count_by_status(str(dataset.id), values, user)
        hits, total = self.index.search(
            str(dataset.id),
            text=text,
            where=compile_filter(filter, self.index.user_number) if filter else None,
            order=[compile_order(o, dataset) for o in sort or []],
            user_id=str(user_id) if user_id is not None else None,
            offset=offset,
            limit=limit,
            total=total,
        )
        return SearchResponses(
            items=[SearchResponseItem(record_id=UUID(rid), score=score) for rid, score in hits], total=total
        )

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        dataset_id = str(metadata_property.dataset_id)
        if metadata_property.type == MetadataPropertyType.terms:
            total, terms = self.index.terms_metrics(dataset_id, metadata_property.name, MAX_TERMS)
            return TermsMetrics(
                total=total, values=[TermsMetrics.TermCount(term=t, count=n) for t, n in terms]
            )
        low, high = self.index.numeric_metrics(dataset_id, metadata_property.name)
        if metadata_property.type == MetadataPropertyType.integer:
            return IntegerMetadataMetrics(
                min=int(low) if low is not None else None, max=int(high) if high is not None else None
            )
        return FloatMetadataMetrics(min=low, max=high)

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: Filter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            msg = "Must provide either vector value or record to compute the similarity search"
            raise ValueError(msg)
        excluded = None
        if not value:
            assert record is not None
            excluded = str(record.id)
            value = record.vector_value_by_vector_settings(vector_settings)
        if not value:
            msg = "Cannot find a vector value to apply with provided info"
            raise ValueError(msg)
        ids, blobs = self.index.vectors(
            str(dataset.id),
            str(vector_settings.id),
            where=compile_filter(filter, self.index.user_number) if filter else None,
            text=_text_search(dataset, query),
        )
        keep = [i for i, rid in enumerate(ids) if rid != excluded]
        if not keep:
            return SearchResponses(items=[], total=0)
        matrix = np.frombuffer(b"".join(blobs[i] for i in keep), dtype=np.float32).reshape(len(keep), -1)
        target = np.asarray(value, dtype=np.float32)
        if order == SimilarityOrder.least_similar:
            target = -target
        norms = np.linalg.norm(matrix, axis=1) * (np.linalg.norm(target) or 1.0)
        cosine = (matrix @ target) / np.where(norms == 0, 1.0, norms)
        scores = (1.0 + cosine) / 2.0  # Elasticsearch's cosine similarity score
        top = np.argsort(-scores, kind="stable")[:max_results]
        items = [
            SearchResponseItem(record_id=UUID(ids[keep[i]]), score=float(scores[i]))
            for i in top
            if threshold is None or scores[i] >= threshold
        ]
        return SearchResponses(items=items, total=len(items))
