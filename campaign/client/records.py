"""Records as the client takes them (plain dataclasses) and the REST bodies they become."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from campaign.errors import InputError

_AGENT_INVALID = re.compile(r"[^a-zA-Z0-9\-_:./\s]")


def safe_agent(agent: str | None) -> str | None:
    """An agent name that argilla-server accepts (letters, digits, -_:./ and spaces; 1-200 chars)."""
    if agent is None:
        return None
    cleaned = _AGENT_INVALID.sub("-", agent).strip()[:200]
    return cleaned if re.search(r"[a-zA-Z0-9]", cleaned) else None


@dataclass(frozen=True)
class SuggestionPayload:
    """A judge suggestion for one question."""

    question: str
    value: Any
    agent: str
    score: float | None = None

    def to_argilla_dict(self) -> dict[str, Any]:
        """Keyword arguments for `argilla.Suggestion`."""
        return {
            "question_name": self.question,
            "value": self.value,
            "agent": self.agent,
            "score": self.score,
            "type": "model",
        }


@dataclass(frozen=True)
class RecordPayload:
    """One Argilla record, as plain data: stable id, fields, metadata and suggestions."""

    id: str
    fields: dict[str, str]
    metadata: dict[str, str | int]
    suggestions: list[SuggestionPayload] = field(default_factory=list)

    def to_argilla_dict(self) -> dict[str, Any]:
        """Keyword arguments for `argilla.Record` (suggestions as `argilla.Suggestion` kwargs)."""
        return {
            "id": self.id,
            "fields": dict(self.fields),
            "metadata": dict(self.metadata),
            "suggestions": [s.to_argilla_dict() for s in self.suggestions],
        }


@dataclass(frozen=True)
class QuestionIndex:
    """What record bodies need of a dataset's questions: their ids by name, and which are rankings."""

    ids: Mapping[str, str]
    rankings: Collection[str] = frozenset()

    @classmethod
    def of(cls, questions: list[dict[str, Any]]) -> QuestionIndex:
        """The index of questions as the server lists them."""
        ids = {q["name"]: str(q["id"]) for q in questions}
        rankings = {q["name"] for q in questions if (q.get("settings") or {}).get("type") == "ranking"}
        return cls(ids, frozenset(rankings))


def record_body(payload: RecordPayload, questions: QuestionIndex) -> dict[str, Any]:
    """The body of one record for argilla-server's bulk endpoints, keyed by the stable id."""
    return {
        "external_id": payload.id,
        "fields": dict(payload.fields),
        "metadata": dict(payload.metadata),
        "suggestions": [suggestion_body(payload.id, s, questions) for s in payload.suggestions],
    }


def suggestion_body(record: str, s: SuggestionPayload, questions: QuestionIndex) -> dict[str, Any]:
    """The REST body of one suggestion of record `record` (named in the error for an unknown question)."""
    if s.question not in questions.ids:
        msg = f"Record {record}: the dataset has no question {s.question!r} for a suggestion."
        raise InputError(msg)
    value = s.value
    if s.question in questions.rankings:
        # The REST API takes a ranking as [{"value": option}, ...] (the SDK converts the same way).
        value = [{"value": str(option)} for option in value]
    item: dict[str, Any] = {"question_id": questions.ids[s.question], "value": value, "type": "model"}
    agent = safe_agent(s.agent)
    if agent:
        item["agent"] = agent
    if s.score is not None:
        item["score"] = s.score
    return item


@dataclass(frozen=True)
class RecordCompletion:
    """What a re-seed adds to a record the server holds: its whole metadata, and suggestions it lacks."""

    server_id: str
    external_id: str
    metadata: dict[str, Any]
    suggestions: list[SuggestionPayload] = field(default_factory=list)


def completion_body(completion: RecordCompletion, questions: QuestionIndex) -> dict[str, Any]:
    """The bulk-upsert body of a completion: no fields and no responses, so those stay as they are."""
    item: dict[str, Any] = {"id": completion.server_id, "metadata": dict(completion.metadata)}
    if completion.suggestions:
        item["suggestions"] = [
            suggestion_body(completion.external_id, s, questions) for s in completion.suggestions
        ]
    return item


@dataclass(frozen=True)
class StoredSuggestion:
    """A suggestion as the server stored it (the value in the server's shape), by question name."""

    question: str
    value: Any
    agent: str | None = None
    score: Any = None
    type: str | None = None


@dataclass(frozen=True)
class StoredResponse:
    """A user's response as the server stored it (values in the server's shape)."""

    user_id: str
    status: str
    values: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredRecord:
    """A record with its suggestions and responses, as a backup holds it, to be written back."""

    external_id: str
    fields: dict[str, Any]
    metadata: dict[str, Any] | None = None
    vectors: dict[str, Any] = field(default_factory=dict)
    suggestions: list[StoredSuggestion] = field(default_factory=list)
    responses: list[StoredResponse] = field(default_factory=list)


def stored_record_body(record: StoredRecord, question_ids: Mapping[str, str]) -> dict[str, Any]:
    """The bulk-upsert body of a stored record; suggestions name their questions by id."""
    item: dict[str, Any] = {"external_id": record.external_id, "fields": record.fields}
    if record.metadata is not None:
        item["metadata"] = record.metadata
    if record.vectors:
        item["vectors"] = record.vectors
    suggestions = []
    for s in record.suggestions:
        suggestion: dict[str, Any] = {"question_id": question_ids[s.question], "value": s.value}
        suggestion |= {
            key: value
            for key, value in (("agent", s.agent), ("score", s.score), ("type", s.type))
            if value is not None
        }
        suggestions.append(suggestion)
    if suggestions:
        item["suggestions"] = suggestions
    responses = []
    for r in record.responses:
        response: dict[str, Any] = {"user_id": r.user_id, "status": r.status}
        if r.values is not None:
            response["values"] = r.values
        elif r.status != "discarded":
            response["values"] = {}  # drafts and submissions must carry values, even empty ones
        responses.append(response)
    if responses:
        item["responses"] = responses
    return item
