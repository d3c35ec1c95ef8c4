"""Campaign progress: completion against `min_submitted`, per-annotator throughput, velocity, ETA.

Pure functions over the snapshot frames (polars expressions throughout, no loops over rows).

Input columns: `records` (record_id, round, status), `responses` (record_id, round, question, slot,
value, annotator, status, updated_at) and `syncs` (sync_id, synced_at, n_records, n_responses,
completed, pending) of `campaign.snapshot.Snapshot`, plus `meta["min_submitted"]`.

The responses frame has one row per response *value*; a response is the pair (record_id, annotator)
and its status is the status of its latest row. A discarded response may have a single row without
a value. Counts of responses below are counts of such pairs, never of value rows.

`compute_progress` returns a `Progress`; its `to_dict()` is this JSON (timestamps are ISO 8601 strings
in UTC)::

    {
      "schema_version": 1,
      "as_of": str,                     # the `now` that velocity and ETA are measured from
      "min_submitted": int,
      "window_days": int,
      "totals": {
        "records": int,
        "completed": int,               # records with >= min_submitted submitted responses
        "pending": int,                 # records - completed
        "completed_share": float,       # completed / records (0.0 without records)
        "remaining_submissions": int,   # sum over records of max(0, min_submitted - submitted)
        "responses": {"submitted": int, "draft": int, "discarded": int, "total": int},
        "argilla_status": {status: int},  # Argilla's own record status ("completed", "pending", ...)
      },
      "rounds": [                       # one entry per round, in round order (None last)
        {"round": int | None, "records", "completed", "pending", "remaining_submissions",
         "submitted", "argilla_completed", "conflicts": int}
      ],
      "annotators": [                   # by submitted (descending), then username
        {"rank": int, "annotator": str, "submitted": int, "draft": int, "discarded": int,
         "share": float,                # of all submitted responses (0.0 when there are none)
         "last_activity": str | None,   # max updated_at
         "active_days": int}            # distinct UTC dates of updated_at
      ],
      "velocity": {
        "window_days": int,
        "submitted_in_window": int,     # submitted responses with updated_at in [observed_from, as_of]
        "per_day": float,               # submitted_in_window / max(observed_days, min_observed_days)
        "daily": [{"date": str, "submitted": int}],   # the window's calendar days, oldest first
        "remaining_submissions": int,
        "eta_days": float | None,       # None without a rate or before min_observed_days (see below)
        "eta_date": str | None,         # ISO date; None when eta_days is None
        "observed_from": str | None,    # start of the observed span; None before any record or response
        "observed_days": float,         # as_of - observed_from, in days (at most window_days)
        "min_observed_days": float,     # the shortest observed span that gives an ETA
      },
      "conflicts": {
        "records": int,                 # records with conflicting submitted answers
        "checked": int,                 # records with >= 2 submitted responses
        "rating_threshold": float,      # rating values differing by >= this conflict
        "by_question": {question: int}, # records in conflict on each question
        "record_ids": [str],            # the first 20 conflicting record ids, sorted
      },
      "over_time": [                    # one entry per sync, oldest first
        {"sync_id": str, "synced_at": str, "n_records": int, "n_responses": int,
         "completed": int, "pending": int}
      ],
    }

Velocity is measured over the span actually observed: from the moment the campaign opened (its first
record's `inserted_at`, or its first response when records carry no time), capped at the trailing
`window_days`, to `as_of`. Days before the dataset existed never dilute the rate. Over less than
`min_observed_days` (one day: annotators work in daily rhythms, so a burst in the first minutes says
little about the pace) the rate is counted per one day and no ETA is given; renderers say "not enough
activity yet for an ETA". With no submission in the span there is no rate and no ETA either.

A rating conflict is a question whose submitted values differ by at least `rating_threshold` between
annotators; a binary conflict is a record whose labels disagree; a ranking conflict is a record whose
annotators put different responses first (tied firsts count as a set).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import polars as pl

from campaign.agreement import submitted_responses
from campaign.errors import InputError, UsageError
from campaign.snapshot import Snapshot, conform

SCHEMA_VERSION = 1
SUBMITTED, DRAFT, DISCARDED = "submitted", "draft", "discarded"
RESPONSE_STATUSES = (SUBMITTED, DRAFT, DISCARDED)
UNKNOWN_ANNOTATOR = "(unknown)"
MAX_CONFLICT_IDS = 20
MIN_OBSERVED_DAYS = 1.0  # the shortest observed span that gives an ETA (see the module docstring)
_TS = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class ResponseCounts:
    """Responses, (record, annotator) pairs, per latest status."""

    submitted: int
    draft: int
    discarded: int
    total: int


@dataclass(frozen=True)
class Totals:
    """Record and response counts over the whole campaign."""

    records: int
    completed: int  # records with >= min_submitted submitted responses
    pending: int
    completed_share: float
    remaining_submissions: int
    responses: ResponseCounts
    argilla_status: dict[str, int]  # Argilla's own record status


@dataclass(frozen=True)
class RoundProgress:
    """Completion of one round."""

    round: int | None
    records: int
    completed: int
    pending: int
    remaining_submissions: int
    submitted: int
    argilla_completed: int
    conflicts: int


@dataclass(frozen=True)
class AnnotatorProgress:
    """One row of the leaderboard."""

    rank: int
    annotator: str
    submitted: int
    draft: int
    discarded: int
    share: float  # of all submitted responses
    last_activity: str | None
    active_days: int


@dataclass(frozen=True)
class DailyCount:
    """Submitted responses on one UTC date."""

    date: str
    submitted: int


@dataclass(frozen=True)
class Velocity:
    """Submitted responses per day over the observed span, and the ETA that rate gives."""

    window_days: int
    submitted_in_window: int  # in the observed span
    per_day: float
    daily: list[DailyCount]
    remaining_submissions: int
    eta_days: float | None  # None without a rate, or over less than min_observed_days
    eta_date: str | None
    observed_from: str | None  # when the observed span starts: the campaign's opening, capped at the window
    observed_days: float
    min_observed_days: float

    @property
    def enough_observed(self) -> bool:
        """Whether the observed span is long enough for an ETA."""
        return self.observed_days >= self.min_observed_days


@dataclass(frozen=True)
class Conflicts:
    """Records whose submitted answers conflict."""

    records: int
    by_question: dict[str, int]
    record_ids: list[str]  # the first MAX_CONFLICT_IDS, sorted
    checked: int  # records with >= 2 submitted responses
    rating_threshold: float


@dataclass(frozen=True)
class SyncPoint:
    """The progress counts kept at one sync."""

    sync_id: str | None
    synced_at: str | None
    n_records: int
    n_responses: int
    completed: int
    pending: int


@dataclass(frozen=True)
class Progress:
    """What `compute_progress` measures; `to_dict()` gives the JSON in the module docstring."""

    schema_version: int
    as_of: str | None
    min_submitted: int
    window_days: int
    totals: Totals
    rounds: list[RoundProgress]
    annotators: list[AnnotatorProgress]
    velocity: Velocity
    conflicts: Conflicts
    over_time: list[SyncPoint]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the documented schema."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Progress:
        """The Progress whose `to_dict()` is `data` (the JSON read back)."""
        totals, velocity = data["totals"], data["velocity"]
        return cls(
            schema_version=data["schema_version"],
            as_of=data["as_of"],
            min_submitted=data["min_submitted"],
            window_days=data["window_days"],
            totals=Totals(**{**totals, "responses": ResponseCounts(**totals["responses"])}),
            rounds=[RoundProgress(**entry) for entry in data["rounds"]],
            annotators=[AnnotatorProgress(**entry) for entry in data["annotators"]],
            velocity=Velocity(**{**velocity, "daily": [DailyCount(**day) for day in velocity["daily"]]}),
            conflicts=Conflicts(**data["conflicts"]),
            over_time=[SyncPoint(**point) for point in data["over_time"]],
        )


def compute_progress(
    snapshot: Snapshot,
    *,
    now: datetime | None = None,
    window_days: int = 7,
    min_submitted: int | None = None,
    rating_threshold: float = 2.0,
) -> Progress:
    """Completion, per-annotator counts, velocity, ETA, conflicts and history of a snapshot.

    `now` defaults to the snapshot's `synced_at` (so an offline report is reproducible), else the
    current time. `min_submitted` defaults to the snapshot's meta.
    """
    if window_days < 1:
        msg = f"window_days must be at least 1 (got {window_days})."
        raise UsageError(msg)
    if rating_threshold <= 0:
        msg = f"rating_threshold must be positive (got {rating_threshold})."
        raise UsageError(msg)
    needed = resolve_min_submitted(snapshot, min_submitted)
    as_of = resolve_now(snapshot, now)

    responses = _responses(snapshot.responses)
    records = _records(snapshot.records, responses)
    submitted = (
        responses.filter(pl.col("status") == SUBMITTED).group_by("record_id").agg(n_submitted=pl.len())
    )
    per_record = (
        records.join(submitted, on="record_id", how="left")
        .with_columns(pl.col("n_submitted").fill_null(0).cast(pl.Int64))
        .with_columns(
            completed=pl.col("n_submitted") >= needed,
            remaining=(pl.lit(needed, pl.Int64) - pl.col("n_submitted")).clip(lower_bound=0),
        )
    )
    conflicts, conflict_ids = _conflicts(snapshot.responses, rating_threshold)
    per_record = per_record.with_columns(conflict=pl.col("record_id").is_in(conflict_ids.implode()))

    totals = _totals(per_record, responses)
    return Progress(
        schema_version=SCHEMA_VERSION,
        as_of=_iso(as_of),
        min_submitted=needed,
        window_days=window_days,
        totals=totals,
        rounds=_rounds(per_record),
        annotators=_annotators(responses),
        velocity=_velocity(
            responses,
            as_of,
            window_days,
            totals.remaining_submissions,
            _opened_at(snapshot.records, responses),
        ),
        conflicts=Conflicts(
            records=conflicts.records,
            by_question=conflicts.by_question,
            record_ids=conflicts.record_ids,
            checked=int((per_record["n_submitted"] >= 2).sum()),
            rating_threshold=float(rating_threshold),
        ),
        over_time=_over_time(snapshot.syncs),
    )


def resolve_min_submitted(snapshot: Snapshot, override: int | None = None) -> int:
    """`min_submitted` from the override or the snapshot meta, checked to be a positive integer."""
    value: object = override if override is not None else snapshot.meta.get("min_submitted")
    if value is None:
        msg = (
            "The snapshot does not say how many submitted responses complete a record (min_submitted). "
            "Run 'campaign status' to sync again, or pass min_submitted."
        )
        raise InputError(msg)
    if isinstance(value, bool) or not isinstance(value, int | str):
        msg = f"min_submitted must be a positive integer (got {value!r})."
        raise InputError(msg)
    try:
        number = int(value)
    except ValueError:
        msg = f"min_submitted must be a positive integer (got {value!r})."
        raise InputError(msg) from None
    if number < 1:
        msg = f"min_submitted must be a positive integer (got {value!r})."
        raise InputError(msg)
    return number


def resolve_now(snapshot: Snapshot, now: datetime | None = None) -> datetime:
    """The reference time in UTC: `now`, else the snapshot's synced_at, else the current time."""
    if now is None:
        synced = snapshot.meta.get("synced_at")
        if isinstance(synced, datetime):
            now = synced
        elif isinstance(synced, str) and synced:
            try:
                now = datetime.fromisoformat(synced)
            except ValueError:
                now = None
    return datetime.now(UTC) if now is None else _utc(now)


# ---------------------------------------------------------------------------------------------------------
# Frames


def _responses(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per response (record_id, annotator): its latest status, updated_at and round."""
    frame = conform(frame, "responses", where="responses snapshot")
    return (
        frame.select(
            "record_id",
            "round",
            pl.col("annotator").fill_null(UNKNOWN_ANNOTATOR),
            pl.col("status").str.to_lowercase(),
            "updated_at",
        )
        .filter(pl.col("record_id").is_not_null())
        .sort("updated_at", nulls_last=False, maintain_order=True)
        .group_by("record_id", "annotator", maintain_order=True)
        .agg(
            pl.col("status").last(),
            pl.col("updated_at").max(),
            pl.col("round").drop_nulls().first(),
        )
    )


def _records(frame: pl.DataFrame, responses: pl.DataFrame) -> pl.DataFrame:
    """One row per record (record_id, round, status); records known only from responses join in."""
    frame = conform(frame, "records", where="records snapshot")
    known = (
        frame.select("record_id", "round", pl.col("status").str.to_lowercase())
        .filter(pl.col("record_id").is_not_null())
        .unique("record_id", keep="first", maintain_order=True)
    )
    extra = (
        responses.select("record_id", "round", status=pl.lit(None, pl.String))
        .unique("record_id", keep="first", maintain_order=True)
        .join(known, on="record_id", how="anti")
    )
    return pl.concat([known, extra])


# ---------------------------------------------------------------------------------------------------------
# Sections


def _totals(per_record: pl.DataFrame, responses: pl.DataFrame) -> Totals:
    """Record and response counts over the whole campaign."""
    n_records = per_record.height
    completed = int(per_record["completed"].sum())
    counts = _status_counts(responses)
    argilla = (
        per_record.filter(pl.col("status").is_not_null()).group_by("status").agg(n=pl.len()).sort("status")
    )
    argilla_status = {"completed": 0, "pending": 0}
    argilla_status.update({str(s): int(n) for s, n in argilla.iter_rows()})
    return Totals(
        records=n_records,
        completed=completed,
        pending=n_records - completed,
        completed_share=completed / n_records if n_records else 0.0,
        remaining_submissions=int(per_record["remaining"].sum()),
        responses=ResponseCounts(**counts, total=responses.height),
        argilla_status=argilla_status,
    )


def _status_counts(responses: pl.DataFrame) -> dict[str, int]:
    """Responses per status (submitted, draft, discarded), zeros included."""
    row = responses.select(
        [(pl.col("status") == status).sum().alias(status) for status in RESPONSE_STATUSES]
    ).row(0, named=True)
    return {status: int(row[status] or 0) for status in RESPONSE_STATUSES}


def _rounds(per_record: pl.DataFrame) -> list[RoundProgress]:
    """Completion per round."""
    rows = (
        per_record.group_by("round")
        .agg(
            records=pl.len(),
            completed=pl.col("completed").sum(),
            remaining_submissions=pl.col("remaining").sum(),
            submitted=pl.col("n_submitted").sum(),
            argilla_completed=(pl.col("status") == "completed").sum(),
            conflicts=pl.col("conflict").sum(),
        )
        .sort("round", nulls_last=True)
    )
    return [
        RoundProgress(
            round=row["round"],
            records=int(row["records"]),
            completed=int(row["completed"]),
            pending=int(row["records"] - row["completed"]),
            remaining_submissions=int(row["remaining_submissions"]),
            submitted=int(row["submitted"]),
            argilla_completed=int(row["argilla_completed"]),
            conflicts=int(row["conflicts"]),
        )
        for row in rows.iter_rows(named=True)
    ]


def _annotators(responses: pl.DataFrame) -> list[AnnotatorProgress]:
    """The leaderboard: responses per status, share of submitted, last activity and active days."""
    total_submitted = int((responses["status"] == SUBMITTED).sum())
    rows = (
        responses.group_by("annotator")
        .agg(
            *[(pl.col("status") == status).sum().alias(status) for status in RESPONSE_STATUSES],
            last_activity=pl.col("updated_at").max(),
            active_days=pl.col("updated_at").drop_nulls().dt.date().n_unique(),
        )
        .sort(["submitted", "annotator"], descending=[True, False])
    )
    return [
        AnnotatorProgress(
            rank=rank,
            annotator=row["annotator"],
            submitted=int(row[SUBMITTED]),
            draft=int(row[DRAFT]),
            discarded=int(row[DISCARDED]),
            share=row[SUBMITTED] / total_submitted if total_submitted else 0.0,
            last_activity=_iso(row["last_activity"]),
            active_days=int(row["active_days"]),
        )
        for rank, row in enumerate(rows.iter_rows(named=True), start=1)
    ]


def _opened_at(records: pl.DataFrame, responses: pl.DataFrame) -> datetime | None:
    """When the campaign opened: its first record's insertion, or its first response without record times."""
    inserted = conform(records, "records", where="records snapshot")["inserted_at"].min()
    first = inserted if inserted is not None else responses["updated_at"].min()
    return first if isinstance(first, datetime) else None


def _velocity(
    responses: pl.DataFrame, now: datetime, window_days: int, remaining: int, opened_at: datetime | None
) -> Velocity:
    """Submitted responses per day over the observed span, and the ETA that rate gives."""
    start = now - timedelta(days=window_days)
    if opened_at is not None:
        start = max(start, _utc(opened_at))
    observed_days = max(0.0, (now - start) / timedelta(days=1)) if opened_at is not None else 0.0
    in_window = responses.filter(
        (pl.col("status") == SUBMITTED)
        & (pl.col("updated_at") >= pl.lit(start, _TS))
        & (pl.col("updated_at") <= pl.lit(now, _TS))
    )
    n = in_window.height
    per_day = n / max(observed_days, MIN_OBSERVED_DAYS)
    first_day = now.date() - timedelta(days=window_days - 1)
    by_day = dict(
        responses.filter(
            (pl.col("status") == SUBMITTED)
            & (pl.col("updated_at").dt.date() >= pl.lit(first_day, pl.Date))
            & (pl.col("updated_at").dt.date() <= pl.lit(now.date(), pl.Date))
        )
        .group_by(day=pl.col("updated_at").dt.date())
        .agg(n=pl.len())
        .iter_rows()
    )
    daily = [
        DailyCount(date=day.isoformat(), submitted=int(by_day.get(day, 0)))
        for day in (first_day + timedelta(days=i) for i in range(window_days))
    ]
    eta_days: float | None = None
    eta_date: str | None = None
    if per_day > 0 and observed_days >= MIN_OBSERVED_DAYS:
        eta_days = remaining / per_day
        eta_date = _eta_date(now, eta_days).isoformat()
    return Velocity(
        window_days=window_days,
        submitted_in_window=n,
        per_day=per_day,
        daily=daily,
        remaining_submissions=remaining,
        eta_days=eta_days,
        eta_date=eta_date,
        observed_from=_iso(start) if opened_at is not None else None,
        observed_days=observed_days,
        min_observed_days=MIN_OBSERVED_DAYS,
    )


def _eta_date(now: datetime, days: float) -> date:
    """The date `days` after `now`, capped so that absurdly slow campaigns do not overflow."""
    try:
        return (now + timedelta(days=days)).date()
    except OverflowError:
        return date.max


@dataclass(frozen=True)
class _Found:
    """Conflicting records, before the counts of checked records join them."""

    records: int
    by_question: dict[str, int]
    record_ids: list[str]


def _conflicts(responses: pl.DataFrame, threshold: float) -> tuple[_Found, pl.Series]:
    """Records whose submitted answers conflict, per question kind; and their ids."""
    frame = submitted_responses(responses)
    rating = (
        frame.filter(pl.col("question").str.starts_with("rating_"))
        .with_columns(v=pl.col("value").cast(pl.Float64, strict=False))
        .filter(pl.col("v").is_not_null())
        .group_by("record_id", "question")
        .agg(spread=pl.col("v").max() - pl.col("v").min(), n=pl.col("annotator").n_unique())
        .filter((pl.col("n") >= 2) & (pl.col("spread") >= threshold))
        .select("record_id", "question")
    )
    label = (
        frame.filter(pl.col("question") == "label")
        .group_by("record_id")
        .agg(n=pl.col("value").str.to_lowercase().n_unique())
        .filter(pl.col("n") >= 2)
        .select("record_id", question=pl.lit("label"))
    )
    ranking = (
        frame.filter(pl.col("question") == "ranking")
        .with_columns(v=pl.col("value").cast(pl.Float64, strict=False))
        .filter(pl.col("v").is_not_null())
        .filter(pl.col("v") == pl.col("v").min().over("record_id", "annotator"))
        .group_by("record_id", "annotator")
        .agg(top=pl.col("slot").sort().cast(pl.String).str.join(","))
        .group_by("record_id")
        .agg(n=pl.col("top").n_unique())
        .filter(pl.col("n") >= 2)
        .select("record_id", question=pl.lit("ranking"))
    )
    found = pl.concat([rating, label, ranking])
    by_question = found.group_by("question").agg(n=pl.len()).sort("question")
    ids = found["record_id"].unique().sort()
    summary = _Found(
        records=ids.len(),
        by_question={str(q): int(n) for q, n in by_question.iter_rows()},
        record_ids=ids.head(MAX_CONFLICT_IDS).to_list(),
    )
    return summary, ids


def _over_time(syncs: pl.DataFrame) -> list[SyncPoint]:
    """The progress counts kept at every sync, oldest first."""
    frame = conform(syncs, "syncs", where="syncs snapshot").sort("synced_at", nulls_last=False)
    return [
        SyncPoint(
            sync_id=row["sync_id"],
            synced_at=_iso(row["synced_at"]),
            n_records=_int(row["n_records"]),
            n_responses=_int(row["n_responses"]),
            completed=_int(row["completed"]),
            pending=_int(row["pending"]),
        )
        for row in frame.iter_rows(named=True)
    ]


def _int(value: int | None) -> int:
    return int(value) if value is not None else 0


def _utc(value: datetime) -> datetime:
    """A timestamp in UTC; a naive one is taken as UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: datetime | None) -> str | None:
    """A timestamp as ISO 8601 in UTC."""
    return None if value is None else _utc(value).isoformat()
