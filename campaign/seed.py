"""distilabel outputs -> record payloads: column contracts, row validation, stable ids, shuffled slots.

This module is offline: it reads sources (see `campaign.readers`) and produces plain
`RecordPayload`s that `campaign.client` logs to Argilla.

Input columns recognised without a mapping (the first one present wins):
    - prompt: instruction, prompt, input, inputs
    - responses: generations (list), generation, response, completion, targets
    - models: generation_models, generation_model, model_name
    - ratings, rationales: ratings, rationales (UltraFeedback; ratings may be None or hold None)
    - judge: model_name, when a ratings column is present (UltraFeedback writes the judge's
      model there, and the generators' models come from generation_models)
    - language: language
"""

from __future__ import annotations

import hashlib
import heapq
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from campaign.client.records import QuestionIndex, RecordCompletion, RecordPayload, SuggestionPayload
from campaign.errors import Conflict, InputError, UsageError
from campaign.readers import DEFAULT_BATCH_SIZE, SourceReader, open_source, rows_source
from campaign.templates import TEMPLATE_NAMES as TEMPLATES

if TYPE_CHECKING:
    import pyarrow as pa

    from campaign.client import ArgillaClient

__all__ = [
    "TEMPLATES",
    "ColumnMapping",
    "PlanPreview",
    "RecordPayload",
    "RecordPlan",
    "SeedOptions",
    "SeedReport",
    "SkipExample",
    "SourceReader",
    "SuggestionPayload",
    "describe_plan",
    "open_source",
    "plan_records",
    "prompt_id",
    "record_id",
    "resolve_mapping",
    "rows_source",
]

MIN_RESPONSES = 2
MAX_RESPONSES = 8
DEFAULT_MAX_CHARS = 100_000
RATING_RANGE = (1, 5)
DEFAULT_AGENT = "ultrafeedback"
FAST_PATH_ENV = "CAMPAIGN_SEED_FAST_PATH"  # "0": write through the stock bulk upsert even on the local server
HUMAN_MODEL = "human"
ID_HEX_CHARS = 32
EXAMPLES_PER_REASON = 3

CANDIDATES: dict[str, tuple[str, ...]] = {
    "prompt": ("instruction", "prompt", "input", "inputs"),
    "responses": ("generations", "generation", "response", "completion", "targets"),
    "models": ("generation_models", "generation_model", "model_name"),
    "ratings": ("ratings",),
    "rationales": ("rationales",),
    "judge": ("model_name",),
    "language": ("language",),
}
MAPPING_KEYS = tuple(CANDIDATES)
# Columns that hold lists in distilabel outputs; in CSV they arrive as JSON strings.
_LIST_COLUMNS = frozenset({"generations", "generation_models", "ratings", "rationales"})

# Reasons a row (or, for binary, a completion) is skipped.
EMPTY_PROMPT = "empty prompt"
WRONG_TYPE = "wrong type"
TOO_FEW = "too few responses"
TOO_MANY = "too many responses"
EMPTY_RESPONSE = "empty response"
TOO_LONG = "text too long"
DUPLICATE_PROMPT = "duplicate prompt"
DUPLICATE_COMPLETION = "duplicate completion"
IDENTICAL_RESPONSES = "identical responses"  # equal after whitespace normalisation; skipped by option
INVALID_TEXT = "invalid text"
_SLOT_SUFFIX = re.compile(r"_\d+$")
DRIFT_CHECK_RECORDS = 20
MODELS_LENGTH = "models do not match responses"
# Reasons a kept row gets no judge suggestion.
RATING_NONE = "judge rating is None"
RATING_OUT_OF_RANGE = "judge rating out of range"
RATINGS_WRONG_TYPE = "judge ratings of wrong type"
RATINGS_LENGTH = "judge ratings do not match responses"


@dataclass(frozen=True)
class SeedOptions:
    """What to build from a source: template, number of responses, round and run controls."""

    template: str
    responses: int = 2
    round: int = 1
    source_name: str | None = None
    language: str | None = None
    mapping: Mapping[str, str] = field(default_factory=dict)
    shuffle: bool = True
    seed: int = 0
    strict: bool = False
    skip_identical: bool = False  # skip rows (binary: completions) whose responses are identical
    max_chars: int = DEFAULT_MAX_CHARS
    limit: int | None = None
    sample: int | None = None
    batch_size: int = DEFAULT_BATCH_SIZE

    def __post_init__(self) -> None:
        if self.template not in TEMPLATES:
            msg = f"Unknown template {self.template!r}; choose one of {', '.join(TEMPLATES)}."
            raise UsageError(msg)
        if self.template != "binary" and not MIN_RESPONSES <= self.responses <= MAX_RESPONSES:
            msg = f"--responses must be between {MIN_RESPONSES} and {MAX_RESPONSES}, got {self.responses}."
            raise UsageError(msg)
        for name in ("round", "max_chars", "batch_size"):
            if getattr(self, name) < 1:
                msg = f"{name} must be at least 1, got {getattr(self, name)}."
                raise UsageError(msg)
        for name in ("limit", "sample"):
            value = getattr(self, name)
            if value is not None and value < 1:
                msg = f"--{name} must be at least 1, got {value}."
                raise UsageError(msg)
        unknown = sorted(set(self.mapping) - set(MAPPING_KEYS))
        if unknown:
            msg = f"Unknown --map field {', '.join(unknown)}; the fields are {', '.join(MAPPING_KEYS)}."
            raise UsageError(msg)


@dataclass(frozen=True)
class SkipExample:
    """A skipped row (or a kept row without suggestion): where, and why."""

    source: str
    row: int
    reason: str
    detail: str
    kind: str = "row"  # "row": skipped; "suggestion": kept without judge suggestion; "warning": kept


@dataclass
class SeedReport:
    """Counts filled while records are planned: rows read, records, skips by reason."""

    rows_read: int = 0
    records: int = 0
    suggestions: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    suggestion_skipped: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)  # rows kept despite a problem, by reason
    not_sampled: int = 0
    examples: list[SkipExample] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    mappings: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def rows_skipped(self) -> int:
        """Rows (or binary completions) skipped, all reasons together."""
        return sum(self.skipped.values())

    def require_records(self) -> None:
        """Fail when rows were read but every one was skipped: there is nothing to seed."""
        if self.records or not self.rows_skipped:
            return
        reasons = ", ".join(f"{reason}: {count}" for reason, count in self.skipped.most_common())
        first = next((e for e in self.examples if e.kind == "row"), None)
        example = f"; e.g. row {first.row}: {first.reason} ({first.detail})" if first else ""
        msg = (
            f"{', '.join(self.sources)}: all {self.rows_skipped} rows were skipped ({reasons}){example}. "
            "Nothing to seed: fix the source, or map other columns with --map FIELD=COLUMN."
        )
        raise InputError(msg)

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data."""
        return {
            "sources": list(self.sources),
            "rows_read": self.rows_read,
            "records": self.records,
            "suggestions": self.suggestions,
            "rows_skipped": self.rows_skipped,
            "skipped": dict(self.skipped.most_common()),
            "suggestion_skipped": dict(self.suggestion_skipped.most_common()),
            "warnings": dict(self.warnings.most_common()),
            "not_sampled": self.not_sampled,
            "examples": [asdict(e) for e in self.examples],
            "mappings": self.mappings,
        }

    def _note(self, counter: Counter[str], example: SkipExample) -> None:
        counter[example.reason] += 1
        if counter[example.reason] <= EXAMPLES_PER_REASON:
            self.examples.append(example)


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns feed the prompt, responses, models, judge ratings and language."""

    prompt: str
    responses: tuple[str, ...]
    models: tuple[str, ...] = ()
    ratings: str | None = None
    rationales: str | None = None
    judge: str | None = None
    language: str | None = None

    def columns(self) -> list[str]:
        """The source columns to read, each once."""
        wanted = [self.prompt, *self.responses, *self.models]
        wanted += [c for c in (self.ratings, self.rationales, self.judge, self.language) if c]
        return list(dict.fromkeys(wanted))

    def to_dict(self) -> dict[str, str]:
        """The mapping as `field -> column` (comma-joined when several columns feed a field)."""
        items: dict[str, str] = {"prompt": self.prompt, "responses": ",".join(self.responses)}
        if self.models:
            items["models"] = ",".join(self.models)
        for name in ("ratings", "rationales", "judge", "language"):
            value = getattr(self, name)
            if value:
                items[name] = value
        return items


def prompt_id(prompt: str) -> str:
    """The stable id of a prompt: sha256 of its text, as hex."""
    return hashlib.sha256(prompt.encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def record_id(template: str, prompt: str, responses: Sequence[str]) -> str:
    """The stable id of a record: sha256 of template, prompt and responses (in source order)."""
    payload = json.dumps([template, prompt, list(responses)], ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:ID_HEX_CHARS]


def slot_order(count: int, *, seed: int, record: str) -> list[int]:
    """Source positions shown in slots 1..count, shuffled deterministically by (seed, record id)."""
    digest = hashlib.sha256(f"{seed}:{record}".encode()).digest()
    order = list(range(count))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order


def resolve_mapping(
    columns: Sequence[str],
    template: str,
    mapping: Mapping[str, str] | None = None,
    *,
    schema: pa.Schema | None = None,
    source: str = "source",
) -> ColumnMapping:
    """Pick the columns for each input field (explicit mapping first) and check the contract."""
    if template not in TEMPLATES:
        msg = f"Unknown template {template!r}; choose one of {', '.join(TEMPLATES)}."
        raise UsageError(msg)
    mapping = dict(mapping or {})
    unknown = sorted(set(mapping) - set(MAPPING_KEYS))
    if unknown:
        msg = f"Unknown --map field {', '.join(unknown)}; the fields are {', '.join(MAPPING_KEYS)}."
        raise UsageError(msg)
    available = list(columns)
    explicit: dict[str, tuple[str, ...]] = {}
    for key, value in mapping.items():
        names = tuple(part.strip() for part in str(value).split(",") if part.strip())
        missing = [n for n in names if n not in available]
        if not names or missing:
            msg = (
                f"{source}: --map {key}={value} names no column that exists "
                f"({', '.join(missing) or 'empty'}); the columns are: {', '.join(available)}."
            )
            raise InputError(msg)
        if len(names) > 1 and key not in ("responses", "models"):
            msg = f"--map {key}= takes one column, got {value!r}."
            raise UsageError(msg)
        explicit[key] = names

    def auto(key: str, exclude: Sequence[str] = ()) -> str | None:
        return next((c for c in CANDIDATES[key] if c in available and c not in exclude), None)

    prompt = explicit["prompt"][0] if "prompt" in explicit else auto("prompt")
    if prompt is None:
        msg = (
            f"{source}: no prompt column; looked for {', '.join(CANDIDATES['prompt'])} among the columns "
            f"{', '.join(available)}. Name it with --map prompt=COLUMN."
        )
        raise InputError(msg)
    if "responses" in explicit:
        responses = explicit["responses"]
    else:
        found = auto("responses", exclude=[prompt])
        if found is None:
            msg = (
                f"{source}: no responses column; looked for {', '.join(CANDIDATES['responses'])} among the "
                f"columns {', '.join(available)}. Name it with --map responses=COLUMN (or COL_A,COL_B)."
            )
            raise InputError(msg)
        responses = (found,)
    ratings = explicit["ratings"][0] if "ratings" in explicit else auto("ratings")
    # UltraFeedback overwrites model_name with the judge's model: with ratings present,
    # model_name names the judge, and generators come only from generation_model(s).
    if "models" in explicit:
        models = explicit["models"]
    else:
        exclude = ["model_name"] if ratings else []
        found_models = auto("models", exclude=exclude)
        models = (found_models,) if found_models else ()
    if "judge" in explicit:
        judge: str | None = explicit["judge"][0]
    else:
        judge = auto("judge") if ratings else None
        if judge in models:
            judge = None
    rationales = explicit["rationales"][0] if "rationales" in explicit else auto("rationales")
    language = explicit["language"][0] if "language" in explicit else auto("language")
    result = ColumnMapping(
        prompt=prompt,
        responses=responses,
        models=models,
        ratings=ratings,
        rationales=rationales,
        judge=judge,
        language=language,
    )
    if schema is not None:
        _check_schema(result, schema, source)
    return result


def _check_schema(mapping: ColumnMapping, schema: pa.Schema, source: str) -> None:
    """Check column types where the source declares them, before any row is read."""
    import pyarrow as pa

    def is_text(t: pa.DataType) -> bool:
        return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_null(t))

    def is_list_of(t: pa.DataType, item: Any) -> bool:
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            return bool(item(t.value_type))
        return False

    def is_number(t: pa.DataType) -> bool:
        return bool(pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_null(t))

    def fail(role: str, column: str, expected: str) -> None:
        msg = (
            f"{source}: column {column!r} ({role}) has type {schema.field(column).type}, "
            f"expected {expected}. "
            f"Map another column with --map {role}=COLUMN."
        )
        raise InputError(msg)

    if not is_text(schema.field(mapping.prompt).type):
        fail("prompt", mapping.prompt, "text")
    for column in mapping.responses:
        kind = schema.field(column).type
        if not (is_text(kind) or is_list_of(kind, is_text)):
            fail("responses", column, "text or a list of texts")
    for column in mapping.models:
        kind = schema.field(column).type
        if not (is_text(kind) or is_list_of(kind, is_text)):
            fail("models", column, "text or a list of texts")
    if mapping.ratings:
        kind = schema.field(mapping.ratings).type
        if not (is_list_of(kind, is_number) or is_number(kind) or is_text(kind)):
            fail("ratings", mapping.ratings, "a list of numbers")


@dataclass
class _Row:
    prompt: str
    responses: list[str]
    models: list[str | None]
    ratings: list[int | None] | None
    judge: str
    language: str | None


class _Skip(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


class RecordPlan(Iterator[list[RecordPayload]]):
    """Record payloads in batches, planned lazily; `report` fills as batches are taken.

    The column contract of every source is checked when the plan is made, before any row
    is read.
    """

    def __init__(
        self,
        readers: SourceReader | Sequence[SourceReader],
        options: SeedOptions,
        *,
        report: SeedReport | None = None,
    ) -> None:
        self.readers = [readers] if isinstance(readers, SourceReader) else list(readers)
        if not self.readers:
            msg = "No seed source given."
            raise UsageError(msg)
        self.options = options
        self.report = report if report is not None else SeedReport()
        self.mappings = [
            resolve_mapping(r.columns, options.template, options.mapping, schema=r.schema, source=r.name)
            for r in self.readers
        ]
        for reader, mapping in zip(self.readers, self.mappings, strict=True):
            self.report.sources.append(reader.name)
            self.report.mappings[reader.name] = mapping.to_dict()
        self._seen_prompts: set[bytes] = set()
        self._batches = self._plan()

    def __iter__(self) -> RecordPlan:
        return self

    def __next__(self) -> list[RecordPayload]:
        return next(self._batches)

    def _plan(self) -> Iterator[list[RecordPayload]]:
        options = self.options
        records = self._records()
        if options.sample is not None:
            records = self._sampled(records, options.sample)
        remaining = options.limit
        batch: list[RecordPayload] = []
        for record in records:
            batch.append(record)
            self.report.records += 1
            self.report.suggestions += len(record.suggestions)
            if remaining is not None:
                remaining -= 1
            if len(batch) >= options.batch_size or remaining == 0:
                yield batch
                batch = []
            if remaining == 0:
                return
        if batch:
            yield batch

    def _records(self) -> Iterator[RecordPayload]:
        for reader, mapping in zip(self.readers, self.mappings, strict=True):
            source = self.options.source_name or reader.short_name
            number = 0
            for rows in reader.iter_batches(self.options.batch_size, columns=mapping.columns()):
                for row in rows:
                    number += 1
                    self.report.rows_read += 1
                    yield from self._row_records(row, number, reader.name, source, mapping)

    def _sampled(self, records: Iterator[RecordPayload], size: int) -> Iterator[RecordPayload]:
        """A deterministic sample of `size` records: the smallest hashes of (seed, id), memory O(size)."""
        heap: list[tuple[int, int, RecordPayload]] = []
        total = 0
        for position, record in enumerate(records):
            total += 1
            key = int.from_bytes(
                hashlib.sha256(f"{self.options.seed}:{record.id}".encode()).digest()[:8], "big"
            )
            if len(heap) < size:
                heapq.heappush(heap, (-key, position, record))
            elif -heap[0][0] > key:
                heapq.heapreplace(heap, (-key, position, record))
        self.report.not_sampled += total - len(heap)
        for _, _, record in sorted(heap, key=lambda item: item[1]):
            yield record

    def _skip(self, reader: str, number: int, reason: str, detail: str) -> None:
        if self.options.strict:
            msg = f"{reader} row {number}: {reason} ({detail}). Fix the row, or drop --strict to skip it."
            raise InputError(msg)
        self.report._note(self.report.skipped, SkipExample(reader, number, reason, detail))

    def _identical(self, reader: str, number: int, detail: str) -> bool:
        """Identical responses: skip them with `skip_identical` (True), else keep them with a warning."""
        if self.options.skip_identical:
            self._skip(reader, number, IDENTICAL_RESPONSES, detail)
            return True
        example = SkipExample(reader, number, IDENTICAL_RESPONSES, detail, kind="warning")
        self.report._note(self.report.warnings, example)
        return False

    def _no_suggestion(self, reader: str, number: int, reason: str, detail: str) -> None:
        example = SkipExample(reader, number, reason, detail, kind="suggestion")
        self.report._note(self.report.suggestion_skipped, example)

    def _row_records(
        self, raw: dict[str, Any], number: int, reader: str, source: str, mapping: ColumnMapping
    ) -> Iterator[RecordPayload]:
        try:
            row = self._validate(raw, mapping)
        except _Skip as skip:
            self._skip(reader, number, skip.reason, skip.detail)
            return
        key = hashlib.sha256(row.prompt.encode("utf-8")).digest()[:16]
        if key in self._seen_prompts:
            self._skip(reader, number, DUPLICATE_PROMPT, f"prompt {_preview(row.prompt)} was seen before")
            return
        if self.options.template == "binary":
            self._seen_prompts.add(key)
            ratings = self._checked_ratings(raw, row, mapping, reader, number)
            yield from self._binary_records(row, ratings, reader, number, source)
            return
        # A pair of identical responses says nothing about which is better, and labels one text both ways.
        repeated = _first_repeat(row.responses)
        if repeated is not None and self._identical(reader, number, _identical_detail(*repeated)):
            return  # skipped like an invalid row: a later row with the same prompt may still be seeded
        self._seen_prompts.add(key)
        ratings = self._checked_ratings(raw, row, mapping, reader, number)
        yield self._comparison_record(row, ratings, source)

    def _validate(self, raw: dict[str, Any], mapping: ColumnMapping) -> _Row:
        options = self.options
        prompt = raw.get(mapping.prompt)
        if prompt is None or (isinstance(prompt, str) and not prompt.strip()):
            raise _Skip(EMPTY_PROMPT, f"column {mapping.prompt!r} is empty")
        if not isinstance(prompt, str):
            raise _Skip(WRONG_TYPE, f"column {mapping.prompt!r} holds {type(prompt).__name__}, not text")
        _check_encodable(prompt, "the prompt")
        if len(prompt) > options.max_chars:
            raise _Skip(TOO_LONG, f"prompt has {len(prompt)} characters, the limit is {options.max_chars}")
        responses = _gather(raw, mapping.responses, what="responses")
        for position, response in enumerate(responses):
            if response is None or (isinstance(response, str) and not response.strip()):
                raise _Skip(EMPTY_RESPONSE, f"response {position} (0-based) is empty")
            if not isinstance(response, str):
                raise _Skip(WRONG_TYPE, f"response {position} holds {type(response).__name__}, not text")
            _check_encodable(response, f"response {position}")
            if len(response) > options.max_chars:
                detail = (
                    f"response {position} has {len(response)} characters, the limit is {options.max_chars}"
                )
                raise _Skip(TOO_LONG, detail)
        wanted = 1 if options.template == "binary" else options.responses
        if len(responses) < wanted:
            raise _Skip(
                TOO_FEW, f"{len(responses)} response(s), the {options.template} template needs {wanted}"
            )
        if options.template != "binary" and len(responses) > wanted:
            detail = f"{len(responses)} responses, the {options.template} template shows {wanted}"
            raise _Skip(TOO_MANY, detail + "; re-run with --responses to match")
        models: list[str | None]
        try:
            found = _gather(raw, mapping.models, what="models") if mapping.models else []
        except _Skip:
            found = []
        if found:
            if len(found) == 1 and len(responses) > 1:
                found = found * len(responses)
            if len(found) != len(responses):
                detail = (
                    f"{len(found)} models for {len(responses)} responses in {', '.join(mapping.models)!r}"
                )
                raise _Skip(MODELS_LENGTH, detail)
            models = [m if isinstance(m, str) and m.strip() else None for m in found]
        elif mapping.responses == ("targets",):
            models = [HUMAN_MODEL] * len(responses)  # Aya rows: the targets are human answers
        else:
            models = []
        judge = raw.get(mapping.judge) if mapping.judge else None
        language = options.language
        if language is None and mapping.language:
            value = raw.get(mapping.language)
            language = value if isinstance(value, str) and value.strip() else None
        return _Row(
            prompt=prompt,
            responses=list(responses),
            models=models,
            ratings=None,
            judge=judge if isinstance(judge, str) and judge.strip() else DEFAULT_AGENT,
            language=language,
        )

    def _checked_ratings(
        self, raw: dict[str, Any], row: _Row, mapping: ColumnMapping, reader: str, number: int
    ) -> list[int | None] | None:
        """Valid ratings per response (None where unusable); None when there is no ratings column."""
        if not mapping.ratings:
            return None
        count = len(row.responses)
        try:
            value = _decode_list(raw.get(mapping.ratings), mapping.ratings)
        except _Skip as skip:
            self._no_suggestion(reader, number, RATINGS_WRONG_TYPE, skip.detail)
            return [None] * count
        if value is None:
            self._no_suggestion(reader, number, RATING_NONE, f"column {mapping.ratings!r} is empty")
            return [None] * count
        if not isinstance(value, list):
            value = [value] if count == 1 else value
        if not isinstance(value, list):
            detail = f"column {mapping.ratings!r} holds {type(value).__name__}"
            self._no_suggestion(reader, number, RATINGS_WRONG_TYPE, detail)
            return [None] * count
        if all(v is None for v in value):
            self._no_suggestion(reader, number, RATING_NONE, f"column {mapping.ratings!r} holds only None")
            return [None] * count
        if len(value) != count:
            detail = f"{len(value)} ratings for {count} responses"
            self._no_suggestion(reader, number, RATINGS_LENGTH, detail)
            return [None] * count
        ratings: list[int | None] = []
        reasons: dict[str, str] = {}
        low, high = RATING_RANGE
        for position, rating in enumerate(value):
            if rating is None:
                reasons.setdefault(RATING_NONE, f"rating {position} (0-based) is None")
                ratings.append(None)
            elif isinstance(rating, bool) or not isinstance(rating, int | float):
                reasons.setdefault(RATINGS_WRONG_TYPE, f"rating {position} is {type(rating).__name__}")
                ratings.append(None)
            elif not float(rating).is_integer() or not low <= rating <= high:
                reasons.setdefault(
                    RATING_OUT_OF_RANGE, f"rating {position} is {rating}, expected {low}..{high}"
                )
                ratings.append(None)
            else:
                ratings.append(int(rating))
        for reason, detail in reasons.items():
            self._no_suggestion(reader, number, reason, detail)
        return ratings

    def _metadata(self, row: _Row, source: str) -> dict[str, str | int]:
        metadata: dict[str, str | int] = {
            "prompt_id": prompt_id(row.prompt),
            "round": self.options.round,
            "source": source,
        }
        if row.language:
            metadata["language"] = row.language
        return metadata

    def _comparison_record(self, row: _Row, ratings: list[int | None] | None, source: str) -> RecordPayload:
        options = self.options
        identifier = record_id(options.template, row.prompt, row.responses)
        count = len(row.responses)
        order = (
            slot_order(count, seed=options.seed, record=identifier) if options.shuffle else list(range(count))
        )
        fields = {"prompt": row.prompt}
        metadata = self._metadata(row, source)
        for slot, position in enumerate(order, start=1):
            fields[f"response_{slot}"] = row.responses[position]
            model = row.models[position] if position < len(row.models) else None
            if model:
                metadata[f"model_{slot}"] = model
            metadata[f"source_index_{slot}"] = position
        suggestions: list[SuggestionPayload] = []
        # Partial judge output usually means a parse failure: suggest all slots or none.
        if ratings is not None and all(r is not None for r in ratings):
            if options.template == "rating":
                suggestions = [
                    SuggestionPayload(f"rating_{slot}", ratings[position], row.judge)
                    for slot, position in enumerate(order, start=1)
                ]
            else:
                best_first = sorted(
                    range(1, count + 1), key=lambda s: (-(ratings[order[s - 1]] or 0), order[s - 1])
                )
                suggestions = [SuggestionPayload("ranking", [f"response_{s}" for s in best_first], row.judge)]
        return RecordPayload(id=identifier, fields=fields, metadata=metadata, suggestions=suggestions)

    def _binary_records(
        self, row: _Row, ratings: list[int | None] | None, reader: str, number: int, source: str
    ) -> Iterator[RecordPayload]:
        seen: set[str] = set()
        normalised: dict[str, int] = {}
        for position, completion in enumerate(row.responses):
            if completion in seen:
                self._skip(
                    reader, number, DUPLICATE_COMPLETION, f"response {position} repeats an earlier one"
                )
                continue
            seen.add(completion)
            earlier = normalised.setdefault(_normalised(completion), position)
            if earlier != position and self._identical(reader, number, _identical_detail(earlier, position)):
                continue
            metadata = self._metadata(row, source)
            model = row.models[position] if position < len(row.models) else None
            if model:
                metadata["model"] = model
            metadata["source_index"] = position
            suggestions = []
            rating = ratings[position] if ratings is not None else None
            if rating is not None and rating != 3:
                suggestions.append(SuggestionPayload("label", "good" if rating >= 4 else "bad", row.judge))
            yield RecordPayload(
                id=record_id("binary", row.prompt, [completion]),
                fields={"prompt": row.prompt, "completion": completion},
                metadata=metadata,
                suggestions=suggestions,
            )


def _gather(raw: dict[str, Any], columns: Sequence[str], *, what: str) -> list[Any]:
    """The values of a list-valued field: one list column, one text column, or several columns."""
    if len(columns) > 1:
        return [raw.get(c) for c in columns]
    column = columns[0]
    value = _decode_list(raw.get(column), column)
    if value is None:
        return [None]
    if isinstance(value, str):
        return [value]
    if isinstance(value, list | tuple):
        return list(value)
    raise _Skip(
        WRONG_TYPE, f"column {column!r} ({what}) holds {type(value).__name__}, not text or a list of texts"
    )


def _decode_list(value: Any, column: str) -> Any:
    """Decode a JSON list stored as text (CSV) in a column that distilabel writes as a list."""
    if column in _LIST_COLUMNS and isinstance(value, str) and value.lstrip().startswith("["):
        try:
            return json.loads(value)
        except (ValueError, RecursionError) as exc:
            detail = f"column {column!r} holds a broken JSON list ({str(exc)[:80]})"
            raise _Skip(WRONG_TYPE, detail) from None
    return value


def _normalised(text: str) -> str:
    """A text with runs of whitespace made one space and the ends stripped."""
    return " ".join(text.split())


def _first_repeat(responses: Sequence[str]) -> tuple[int, int] | None:
    """The first (earlier, later) positions of two responses equal after whitespace normalisation."""
    first: dict[str, int] = {}
    for position, response in enumerate(responses):
        earlier = first.setdefault(_normalised(response), position)
        if earlier != position:
            return earlier, position
    return None


def _identical_detail(earlier: int, later: int) -> str:
    return f"responses {earlier} and {later} (0-based) are identical after whitespace normalisation"


def _check_encodable(text: str, what: str) -> None:
    """Refuse text that cannot be stored as UTF-8 (a lone surrogate from a broken \\ud800 escape)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        detail = f"{what} holds a lone surrogate {text[exc.start]!r} at character {exc.start}"
        raise _Skip(INVALID_TEXT, detail) from None


def _preview(text: str, width: int = 40) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= width else flat[: width - 1] + "…")


def plan_records(
    readers: SourceReader | Sequence[SourceReader],
    options: SeedOptions,
    *,
    report: SeedReport | None = None,
) -> RecordPlan:
    """Plan record payloads in batches; the column contract is checked before any row is read."""
    return RecordPlan(readers, options, report=report)


@dataclass(frozen=True)
class PlanPreview:
    """What a dry run shows: the first records and the report over the whole source."""

    records: list[RecordPayload]
    report: SeedReport


def describe_plan(
    readers: SourceReader | Sequence[SourceReader], options: SeedOptions, *, first: int = 5
) -> PlanPreview:
    """Plan every record without writing, keeping the first `first` payloads and the full report."""
    plan = plan_records(readers, options)
    kept: list[RecordPayload] = []
    for batch in plan:
        if len(kept) < first:
            kept.extend(batch[: first - len(kept)])
    return PlanPreview(records=kept, report=plan.report)


# -- writing -------------------------------------------------------------------------------------


@dataclass
class SeedOutcome:
    """What a seeding run did: created, already present (completed), skipped, and how long it took."""

    created: int = 0
    already_present: int = 0
    completed: int = 0  # records already present that got missing metadata or suggestions
    seconds: float = 0.0
    report: SeedReport = field(default_factory=SeedReport)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary."""
        rate = self.created / self.seconds if self.seconds > 0 else None
        return {
            "created": self.created,
            "already_present": self.already_present,
            "completed": self.completed,
            "skipped": self.report.rows_skipped,
            "seconds": round(self.seconds, 3),
            "records_per_second": round(rate, 1) if rate else None,
            "report": self.report.to_dict(),
        }


def write_plan(
    client: ArgillaClient,
    dataset_id: str,
    plan: Iterable[list[RecordPayload]],
    *,
    on_batch: Callable[[int, int], None] | None = None,
    fast_path: bool | None = None,
) -> SeedOutcome:
    """Send planned records that the dataset does not hold yet; records already there are counted, not resent.

    A record already there gets the metadata keys and suggestions it lacks (a source fixed since, with
    more columns), never new fields or responses. Each bulk request is one transaction and ids are content hashes, so a run killed half-way and run
    again ends with exactly the planned records. `on_batch(created, present)` reports progress. The local
    server's create-only endpoint is used when it exists, unless `fast_path=False` (or, by default, the
    environment sets CAMPAIGN_SEED_FAST_PATH=0): then every batch goes through the stock bulk upsert.
    """
    import os
    import time
    from concurrent.futures import Future, ThreadPoolExecutor

    started = time.perf_counter()
    questions = client.question_index(dataset_id)
    outcome = SeedOutcome()
    if fast_path is None:
        fast_path = os.environ.get(FAST_PATH_ENV, "1") != "0"
    pending: list[Future[tuple[int, int]]] = []
    # An empty dataset holds none of the ids: skip the existence checks (a first run's common case).
    check_existing = int(client.dataset_progress(dataset_id).get("total", 0)) > 0
    # Two requests in flight: the server writes one batch while the next is planned and checked.
    with ThreadPoolExecutor(max_workers=2) as pool:
        for batch in plan:
            ids = [p.id for p in batch]
            present = client.existing_records(dataset_id, ids) if check_existing else {}
            fresh = [p for p in batch if p.id not in present]
            outcome.already_present += len(batch) - len(fresh)
            completions = [
                completion
                for p in batch
                if p.id in present and (completion := completion_of(p, present[p.id], questions)) is not None
            ]
            if completions:
                outcome.completed += client.complete_records(dataset_id, completions, questions=questions)
            if fresh:
                pending.append(
                    pool.submit(
                        client.create_records, dataset_id, fresh, questions=questions, fast_path=fast_path
                    )
                )
            while len(pending) >= 2:
                _count(outcome, pending.pop(0).result())
            if on_batch is not None:
                on_batch(len(fresh), len(batch) - len(fresh))
        for future in pending:
            _count(outcome, future.result())
    outcome.seconds = time.perf_counter() - started
    if isinstance(plan, RecordPlan):
        outcome.report = plan.report
    return outcome


def completion_of(
    payload: RecordPayload, existing: Mapping[str, Any], questions: QuestionIndex
) -> RecordCompletion | None:
    """What `payload` adds to the record the server holds under its id: missing metadata and suggestions.

    None when nothing is missing, or when the record shows its responses in other slots (another shuffle
    seed): slot metadata and suggestions would then describe other texts.
    """
    if dict(existing.get("fields") or {}) != payload.fields:
        return None
    metadata = dict(existing.get("metadata") or {})
    added = {key: value for key, value in payload.metadata.items() if metadata.get(key) is None}
    suggested = {str(s.get("question_id")) for s in existing.get("suggestions") or []}
    missing = [s for s in payload.suggestions if questions.ids.get(s.question) not in suggested]
    if not added and not missing:
        return None
    return RecordCompletion(
        server_id=str(existing["id"]),
        external_id=payload.id,
        metadata=metadata | added,
        suggestions=missing,
    )


def check_dataset_fits(
    client: ArgillaClient, dataset_id: str, readers: Sequence[SourceReader], options: SeedOptions
) -> None:
    """Refuse to seed when the first records need fields or questions the dataset lacks (or it needs
    fields they lack): campaign.yaml changed after 'campaign create'. Checked before anything is sent."""
    from dataclasses import replace

    batch = next(iter(plan_records(readers, replace(options, limit=DRIFT_CHECK_RECORDS))), [])
    questions = client.question_index(dataset_id)
    fields = client.settings_items(dataset_id, "fields")
    names = {str(f["name"]) for f in fields}
    wanted = {name for payload in batch for name in payload.fields}
    asked = {s.question for payload in batch for s in payload.suggestions}
    missing = sorted((wanted - names) | (asked - set(questions.ids)))
    unsent = sorted({str(f["name"]) for f in fields if f.get("required")} - wanted)
    if not missing and not unsent:
        return
    slotted = {_SLOT_SUFFIX.sub("", name) for name in wanted if _SLOT_SUFFIX.search(name)}

    def responses(field_names: Iterable[str]) -> int:
        slots = [n for n in field_names if _SLOT_SUFFIX.search(n) and _SLOT_SUFFIX.sub("", n) in slotted]
        return max(len(slots) // max(len(slotted), 1), 1)

    differs = ", ".join(
        [*(f"{n} (not in the dataset)" for n in missing), *(f"{n} (not sent)" for n in unsent)]
    )
    msg = (
        f"The dataset has {responses(names)} responses per record, campaign.yaml says "
        f"{responses(wanted)}: campaign.yaml changed since 'campaign create' ({differs}). "
        "Run 'campaign create' to see the difference, or restore campaign.yaml."
    )
    raise Conflict(msg)


def _count(outcome: SeedOutcome, written: tuple[int, int]) -> None:
    # The server's own count: a record another run added since the existence check is present, not created.
    created, present = written
    outcome.created += created
    outcome.already_present += present
