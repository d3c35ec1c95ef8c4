"""Consolidation policies: submitted responses -> one consensus frame of pairs (DPO/ORPO) or examples (KTO).

Input columns: the snapshot's `records` and `responses` tables (and `suggestions` for the judge fallback).
Output columns: `PAIRS_SCHEMA` or `UNPAIRED_SCHEMA`. Every record (or response, for KTO from rating and
ranking) that is not kept is counted under exactly one drop reason, so `kept + sum(dropped) == total`.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from campaign.errors import InputError, UsageError

TEMPLATES = ("rating", "ranking", "binary")
GOOD, BAD = "good", "bad"

# Drop reasons, in the order a record is checked.
NO_SUBMITTED = "no_submitted_responses"
TOO_FEW_ANNOTATORS = "too_few_annotators"
FEWER_THAN_TWO = "fewer_than_two_responses"
TIE = "tie"
NOT_UNANIMOUS = "not_unanimous"
BELOW_MARGIN = "margin_below_threshold"
IDENTICAL = "identical_responses"
LOW_AGREEMENT = "low_agreement"
BETWEEN_THRESHOLDS = "between_kto_thresholds"
UNRATED = "unrated_response"
MIDDLE_RANK = "middle_rank"
UNPAIRED = "no_opposite_label_for_prompt"

PAIRS_SCHEMA: dict[str, pl.DataType] = {
    "prompt": pl.String(),
    "chosen": pl.String(),
    "rejected": pl.String(),
    "prompt_id": pl.String(),
    "record_id": pl.String(),
    "rejected_record_id": pl.String(),
    "round": pl.Int64(),
    "chosen_model": pl.String(),
    "rejected_model": pl.String(),
    "chosen_score": pl.Float64(),
    "rejected_score": pl.Float64(),
    "margin": pl.Float64(),
    "n_annotators": pl.Int64(),
    "agreement": pl.Float64(),
    "source": pl.String(),
    "annotators": pl.List(pl.String()),
}
UNPAIRED_SCHEMA: dict[str, pl.DataType] = {
    "prompt": pl.String(),
    "completion": pl.String(),
    "label": pl.Boolean(),
    "prompt_id": pl.String(),
    "record_id": pl.String(),
    "slot": pl.Int64(),
    "round": pl.Int64(),
    "model": pl.String(),
    "score": pl.Float64(),
    "n_annotators": pl.Int64(),
    "agreement": pl.Float64(),
    "source": pl.String(),
    "annotators": pl.List(pl.String()),
}


class RatingPolicy(BaseModel):
    """How ratings (1-5 per response) become a chosen/rejected pair."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["mean", "median"] = Field(
        default="mean", description="How the ratings of one response are combined across annotators."
    )
    min_margin: float = Field(
        default=1.0,
        ge=0,
        description="Minimum score difference between chosen and rejected; ties are always dropped.",
    )


class RankingPolicy(BaseModel):
    """How rankings become a chosen/rejected pair."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["borda", "mean_rank"] = Field(
        default="borda",
        description=(
            "'borda': mean number of responses ranked strictly worse; 'mean_rank': mean rank (1 = best)."
        ),
    )
    min_margin: float = Field(
        default=0.0,
        ge=0,
        description="Minimum score difference between best and worst; ties are always dropped.",
    )


class BinaryPolicy(BaseModel):
    """How good/bad votes on one completion become a label."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["majority", "unanimous"] = Field(
        default="majority", description="'majority' drops ties; 'unanimous' drops any disagreement."
    )
    min_votes: int | None = Field(
        default=None, ge=1, description="Minimum submitted votes per record; None uses min_annotators."
    )


class KTOPolicy(BaseModel):
    """Thresholds that turn a rating score into a KTO label."""

    model_config = ConfigDict(extra="forbid")

    desirable_min: float = Field(
        default=4.0, description="A response scoring at least this is desirable (True)."
    )
    undesirable_max: float = Field(
        default=2.0, description="A response scoring at most this is undesirable (False)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> KTOPolicy:
        if self.undesirable_max >= self.desirable_min:
            msg = (
                f"kto.undesirable_max ({self.undesirable_max}) must be below kto.desirable_min "
                f"({self.desirable_min}); fix the consensus section of campaign.yaml."
            )
            raise ValueError(msg)
        return self


class ConsensusPolicy(BaseModel):
    """Every threshold of the consensus, as the `consensus:` section of campaign.yaml."""

    model_config = ConfigDict(extra="forbid")

    min_annotators: int | None = Field(
        default=None,
        ge=1,
        description="Minimum distinct submitting annotators per record; None uses min_submitted.",
    )
    agreement_gate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Drop examples whose per-record agreement (share of annotators agreeing) is below this.",
    )
    exclude_annotators: list[str] = Field(
        default_factory=list, description="Usernames whose responses are ignored (e.g. flagged as careless)."
    )
    judge_fallback: bool = Field(
        default=False,
        description=(
            "Use judge suggestions for records without enough human responses (marked source='judge')."
        ),
    )
    rating: RatingPolicy = Field(default_factory=RatingPolicy, description="Policy for the rating template.")
    ranking: RankingPolicy = Field(
        default_factory=RankingPolicy, description="Policy for the ranking template."
    )
    binary: BinaryPolicy = Field(default_factory=BinaryPolicy, description="Policy for the binary template.")
    kto: KTOPolicy = Field(default_factory=KTOPolicy, description="Rating thresholds for KTO labels.")

    def with_overrides(
        self,
        *,
        method: str | None = None,
        min_margin: float | None = None,
        judge_fallback: bool | None = None,
    ) -> ConsensusPolicy:
        """A copy with command-line overrides; `method` picks its section by name, `min_margin` sets both."""
        data = self.model_dump()
        if method is not None:
            section = METHOD_SECTIONS.get(method)
            if section is None:
                msg = f"Unknown consensus method {method!r}; use one of {', '.join(METHOD_SECTIONS)}."
                raise UsageError(msg)
            data[section]["method"] = method
        if min_margin is not None:
            data["rating"]["min_margin"] = min_margin
            data["ranking"]["min_margin"] = min_margin
        if judge_fallback is not None:
            data["judge_fallback"] = judge_fallback
        return policy_from_mapping(data)


METHOD_SECTIONS = {
    "mean": "rating",
    "median": "rating",
    "borda": "ranking",
    "mean_rank": "ranking",
    "majority": "binary",
    "unanimous": "binary",
}


def policy_from_mapping(data: Mapping[str, Any] | None, *, where: str = "consensus") -> ConsensusPolicy:
    """Validate a `consensus:` mapping, with a message that names the bad key."""
    from pydantic import ValidationError

    try:
        return ConsensusPolicy.model_validate(dict(data or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"Invalid consensus policy: {problems}."
        raise UsageError(msg) from None


def resolve_min_annotators(policy: ConsensusPolicy, min_submitted: int | None) -> int:
    """The effective minimum number of annotators: the policy's, else min_submitted, else 1."""
    return policy.min_annotators or min_submitted or 1


@dataclass(frozen=True)
class Consolidation:
    """A consensus frame plus the accounting of what was dropped and why."""

    frame: pl.DataFrame
    total: int
    kept: int
    dropped: dict[str, int]
    unit: str

    @property
    def rows(self) -> int:
        """Number of examples (a binary DPO pair uses two kept records)."""
        return self.frame.height

    def as_dict(self) -> dict[str, Any]:
        """Counts as plain data, for manifests and --json."""
        return {
            "unit": self.unit,
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "rows": self.rows,
        }


# ---------------------------------------------------------------------------------------------------------
# Internals: per-record votes and decisions
# ---------------------------------------------------------------------------------------------------------

Votes = dict[int, dict[str, float]]  # slot -> annotator -> value (rating, rank, or 1.0 good / 0.0 bad)


@dataclass
class _Record:
    record_id: str
    prompt_id: str
    round: int | None
    template: str
    prompt: str
    slots: dict[int, tuple[str, str | None]] = field(default_factory=dict)  # slot -> (response, model)


@dataclass
class _Pair:
    chosen: int
    rejected: int
    chosen_score: float
    rejected_score: float
    margin: float
    agreement: float | None


@dataclass
class _Judged:
    """The votes a record is decided on, and whose they are."""

    votes: Votes
    source: str
    annotators: list[str]


REQUIRED_RECORD_COLUMNS = (
    "record_id",
    "prompt_id",
    "round",
    "template",
    "prompt",
    "slot",
    "response",
    "model",
)
REQUIRED_RESPONSE_COLUMNS = ("record_id", "question", "slot", "value", "annotator", "status")
REQUIRED_SUGGESTION_COLUMNS = ("record_id", "question", "slot", "value", "agent")


def _require(frame: pl.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"The {name} frame lacks column(s) {', '.join(missing)}; run 'campaign status' to re-sync."
        raise InputError(msg)


def _records(records: pl.DataFrame, rounds: Iterable[int] | None) -> list[_Record]:
    _require(records, REQUIRED_RECORD_COLUMNS, "records")
    frame = records
    if rounds is not None:
        frame = frame.filter(pl.col("round").is_in(sorted(set(rounds))))
    out: dict[str, _Record] = {}
    frame = frame.sort(["record_id", "slot"])
    # Column lists zipped, not iter_rows(named=True): a dict per row dominates the time at 1M rows.
    columns = [frame.get_column(c).to_list() for c in REQUIRED_RECORD_COLUMNS]
    for rid, prompt_id, round_, template, prompt, slot, response, model in zip(*columns, strict=True):
        rec = out.get(rid)
        if rec is None:
            if template not in TEMPLATES:
                msg = (
                    f"Record {rid} has unknown template {template!r}; expected one of {', '.join(TEMPLATES)}."
                )
                raise InputError(msg)
            rec = out[rid] = _Record(rid, prompt_id, round_, template, prompt or "")
        rec.slots[1 if slot is None else int(slot)] = (response or "", model)
    return list(out.values())


def _question_slot(template: str, question: str, slot: int | None) -> int | None:
    """Which slot a response value is about, or None if the question does not belong to the template."""
    if template == "rating" and question.startswith("rating_"):
        if slot is not None:
            return slot
        suffix = question.removeprefix("rating_")
        return int(suffix) if suffix.isdigit() else None
    if template == "ranking" and question == "ranking":
        return slot
    if template == "binary" and question == "label":
        return 1
    return None


def _parse(template: str, value: Any) -> float | None:
    if value is None:
        return None
    if template == "binary":
        text = str(value).strip().lower()
        return 1.0 if text == GOOD else 0.0 if text == BAD else None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _collect(
    frame: pl.DataFrame, templates: Mapping[str, str], who: str, *, exclude: set[str] | None = None
) -> dict[str, Votes]:
    """record_id -> slot -> voter -> value, for the records in `templates` (record_id -> template)."""
    votes: dict[str, Votes] = defaultdict(dict)
    if frame.height == 0:
        return votes
    ids = pl.Series(list(templates), dtype=pl.String())
    rows = frame.filter(pl.col("record_id").is_in(ids))
    if who == "annotator":
        rows = rows.filter(pl.col("status") == "submitted")
        if exclude:
            rows = rows.filter(~pl.col("annotator").is_in(sorted(exclude)))
    sort_cols = (
        ["record_id", "question", "slot", who] if who in rows.columns else ["record_id", "question", "slot"]
    )
    rows = rows.sort(sort_cols, nulls_last=True)
    voters = rows.get_column(who).to_list() if who in rows.columns else [None] * rows.height
    columns = [rows.get_column(c).to_list() for c in ("record_id", "question", "slot", "value")]
    for rid, question, raw_slot, raw_value, voter in zip(*columns, voters, strict=True):
        template = templates[rid]
        slot = _question_slot(template, question or "", raw_slot)
        value = _parse(template, raw_value)
        if slot is None or value is None:
            continue
        votes[rid].setdefault(slot, {})[voter or "judge"] = value
    return votes


def _voters(votes: Votes) -> list[str]:
    return sorted({voter for by_voter in votes.values() for voter in by_voter})


def _judged(rec: _Record, inputs: _Inputs, policy: ConsensusPolicy) -> _Judged | str:
    """The votes to decide a record on, or the reason it is dropped before any decision."""
    votes = inputs.human.get(rec.record_id, {})
    min_annotators = inputs.min_annotators
    if rec.template == "binary" and policy.binary.min_votes is not None:
        min_annotators = policy.binary.min_votes
    annotators = _voters(votes)
    reason = None
    if not annotators:
        reason = NO_SUBMITTED
    elif len(annotators) < min_annotators:
        reason = TOO_FEW_ANNOTATORS
    if reason is None:
        return _Judged(votes, "human", annotators)
    judge_votes = inputs.judge.get(rec.record_id, {}) if policy.judge_fallback else {}
    if judge_votes:
        return _Judged(judge_votes, "judge", _voters(judge_votes))
    return reason


def _aggregate(values: list[float], method: str) -> float:
    return float(statistics.median(values)) if method == "median" else float(statistics.fmean(values))


def _borda(votes: Votes) -> Votes:
    """Per annotator, the number of responses they ranked strictly worse than each response."""
    by_voter: dict[str, dict[int, float]] = defaultdict(dict)
    for slot, values in votes.items():
        for voter, rank in values.items():
            by_voter[voter][slot] = rank
    points: Votes = defaultdict(dict)
    for voter, ranks in by_voter.items():
        for slot, rank in ranks.items():
            points[slot][voter] = float(sum(1 for other in ranks.values() if other > rank))
    return dict(points)


def _scored_pair(
    rec: _Record, judged: _Judged, policy: ConsensusPolicy
) -> tuple[_Pair, dict[int, float]] | str:
    """Best and worst response of a rating or ranking record, or the drop reason."""
    votes = {slot: v for slot, v in judged.votes.items() if v and slot in rec.slots}
    if rec.template == "rating":
        min_margin = policy.rating.min_margin
        better = votes  # higher rating is better
        scores = {slot: _aggregate(list(v.values()), policy.rating.method) for slot, v in votes.items()}
        keys = scores
    else:
        min_margin = policy.ranking.min_margin
        if policy.ranking.method == "borda":
            better = _borda(votes)
            scores = {slot: _aggregate(list(v.values()), "mean") for slot, v in better.items()}
            keys = scores
        else:
            better = {slot: {a: -r for a, r in v.items()} for slot, v in votes.items()}
            scores = {slot: _aggregate(list(v.values()), "mean") for slot, v in votes.items()}
            keys = {slot: -s for slot, s in scores.items()}
    if len(keys) < 2:
        return FEWER_THAN_TWO
    chosen = min(keys, key=lambda s: (-keys[s], s))
    rejected = min(keys, key=lambda s: (keys[s], -s))
    margin = keys[chosen] - keys[rejected]
    if margin <= 0:
        return TIE
    if margin < min_margin:
        return BELOW_MARGIN
    if rec.slots[chosen][0].strip() == rec.slots[rejected][0].strip():
        return IDENTICAL
    agreement = _pair_agreement(better, chosen, rejected) if judged.source == "human" else None
    pair = _Pair(chosen, rejected, scores[chosen], scores[rejected], margin, agreement)
    return pair, scores


def _pair_agreement(better: Votes, chosen: int, rejected: int) -> float | None:
    """Share of annotators who judged both responses and strictly preferred the chosen one."""
    a, b = better.get(chosen, {}), better.get(rejected, {})
    both = [voter for voter in a if voter in b]
    if not both:
        return None
    return sum(1 for voter in both if a[voter] > b[voter]) / len(both)


def _gated(agreement: float | None, policy: ConsensusPolicy) -> bool:
    """Whether an example falls below the agreement gate (judge rows, with no agreement, pass)."""
    return policy.agreement_gate is not None and agreement is not None and agreement < policy.agreement_gate


def _binary_label(judged: _Judged, policy: ConsensusPolicy) -> tuple[bool, float, float | None] | str:
    """(label, share of good votes, agreement) of a binary record, or the drop reason."""
    votes = list(judged.votes.get(1, {}).values())
    if not votes:
        return NO_SUBMITTED
    good = sum(votes)
    share = good / len(votes)
    if policy.binary.method == "unanimous" and 0 < good < len(votes):
        return NOT_UNANIMOUS
    if good * 2 == len(votes):
        return TIE
    label = good * 2 > len(votes)
    agreement = (share if label else 1 - share) if judged.source == "human" else None
    if _gated(agreement, policy):
        return LOW_AGREEMENT
    return label, share, agreement


# ---------------------------------------------------------------------------------------------------------
# Public: pairs (DPO/ORPO) and unpaired examples (KTO)
# ---------------------------------------------------------------------------------------------------------


_Labelled = tuple[_Record, _Judged, bool, float, float | None]


@dataclass
class _Inputs:
    records: list[_Record]
    human: dict[str, Votes]
    judge: dict[str, Votes]
    min_annotators: int


def _prepare(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None,
    policy: ConsensusPolicy,
    min_submitted: int | None,
    rounds: Iterable[int] | None,
) -> _Inputs:
    recs = _records(records, rounds)
    templates = {rec.record_id: rec.template for rec in recs}
    _require(responses, REQUIRED_RESPONSE_COLUMNS, "responses")
    human = _collect(responses, templates, "annotator", exclude=set(policy.exclude_annotators))
    judge: dict[str, Votes] = {}
    if policy.judge_fallback and suggestions is not None:
        _require(suggestions, REQUIRED_SUGGESTION_COLUMNS, "suggestions")
        judge = _collect(suggestions, templates, "agent")
    return _Inputs(recs, human, judge, resolve_min_annotators(policy, min_submitted))


def consolidate_pairs(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None = None,
    *,
    policy: ConsensusPolicy | None = None,
    min_submitted: int | None = None,
    rounds: Iterable[int] | None = None,
) -> Consolidation:
    """Preference pairs (prompt, chosen, rejected + provenance) for DPO and ORPO; one unit = one record."""
    policy = policy or ConsensusPolicy()
    inputs = _prepare(records, responses, suggestions, policy, min_submitted, rounds)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    kept = 0
    binary_labelled: list[_Labelled] = []
    for rec in inputs.records:
        judged = _judged(rec, inputs, policy)
        if isinstance(judged, str):
            dropped[judged] += 1
            continue
        if rec.template == "binary":
            decided = _binary_label(judged, policy)
            if isinstance(decided, str):
                dropped[decided] += 1
            else:
                binary_labelled.append((rec, judged, *decided))
            continue
        outcome = _scored_pair(rec, judged, policy)
        if isinstance(outcome, str):
            dropped[outcome] += 1
            continue
        pair, _ = outcome
        if _gated(pair.agreement, policy):
            dropped[LOW_AGREEMENT] += 1
            continue
        kept += 1
        rows.append(_pair_row(rec, rec, pair.chosen, pair.rejected, pair, judged, judged))
    pair_kept, pair_rows, pair_dropped = _pair_binary(binary_labelled)
    kept += pair_kept
    rows.extend(pair_rows)
    dropped.update(pair_dropped)
    frame = _frame(rows, PAIRS_SCHEMA).sort(["prompt_id", "record_id", "rejected_record_id"])
    return Consolidation(frame, len(inputs.records), kept, dict(dropped), "records")


def _frame(rows: list[dict[str, Any]], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """Rows as a frame, built column by column (row-wise construction makes a Series per list cell)."""
    return pl.DataFrame({name: [row[name] for row in rows] for name in schema}, schema=schema)


def _pair_row(
    chosen_rec: _Record,
    rejected_rec: _Record,
    chosen_slot: int,
    rejected_slot: int,
    pair: _Pair,
    chosen_judged: _Judged,
    rejected_judged: _Judged,
) -> dict[str, Any]:
    annotators = sorted(set(chosen_judged.annotators) | set(rejected_judged.annotators))
    source = "judge" if "judge" in (chosen_judged.source, rejected_judged.source) else "human"
    rounds = [r for r in (chosen_rec.round, rejected_rec.round) if r is not None]
    n_annotators = min(len(chosen_judged.annotators), len(rejected_judged.annotators))
    return {
        "prompt": chosen_rec.prompt,
        "chosen": chosen_rec.slots[chosen_slot][0],
        "rejected": rejected_rec.slots[rejected_slot][0],
        "prompt_id": chosen_rec.prompt_id,
        "record_id": chosen_rec.record_id,
        "rejected_record_id": rejected_rec.record_id,
        "round": max(rounds) if rounds else None,
        "chosen_model": chosen_rec.slots[chosen_slot][1],
        "rejected_model": rejected_rec.slots[rejected_slot][1],
        "chosen_score": pair.chosen_score,
        "rejected_score": pair.rejected_score,
        "margin": pair.margin,
        "n_annotators": n_annotators,
        "agreement": pair.agreement,
        "source": source,
        "annotators": annotators,
    }


def _pair_binary(
    labelled: list[_Labelled],
) -> tuple[int, list[dict[str, Any]], Counter[str]]:
    """Pair good and bad completions of the same prompt: best good with worst bad, then the next ones."""
    by_prompt: dict[str, list[_Labelled]] = defaultdict(list)
    for item in labelled:
        by_prompt[item[0].prompt_id].append(item)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    kept = 0
    for prompt_id in sorted(by_prompt):
        items = by_prompt[prompt_id]
        goods = sorted((i for i in items if i[2]), key=lambda i: (-i[3], i[0].record_id))
        bads = sorted((i for i in items if not i[2]), key=lambda i: (i[3], i[0].record_id))
        n = min(len(goods), len(bads))
        dropped[UNPAIRED] += len(items) - 2 * n
        for good, bad in zip(goods[:n], bads[:n], strict=True):
            if good[0].slots[1][0].strip() == bad[0].slots[1][0].strip():
                dropped[IDENTICAL] += 2
                continue
            agreements = [a for a in (good[4], bad[4]) if a is not None]
            pair = _Pair(1, 1, good[3], bad[3], good[3] - bad[3], min(agreements) if agreements else None)
            rows.append(_pair_row(good[0], bad[0], 1, 1, pair, good[1], bad[1]))
            kept += 2
    return kept, rows, +dropped


def consolidate_unpaired(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None = None,
    *,
    policy: ConsensusPolicy | None = None,
    min_submitted: int | None = None,
    rounds: Iterable[int] | None = None,
) -> Consolidation:
    """KTO examples (prompt, completion, label + provenance); one unit = one response of a record."""
    policy = policy or ConsensusPolicy()
    inputs = _prepare(records, responses, suggestions, policy, min_submitted, rounds)
    rows: list[dict[str, Any]] = []
    dropped: Counter[str] = Counter()
    total = 0
    for rec in inputs.records:
        slots = sorted(rec.slots) if rec.template != "binary" else [1]
        total += len(slots)
        judged = _judged(rec, inputs, policy)
        if isinstance(judged, str):
            dropped[judged] += len(slots)
            continue
        if rec.template == "binary":
            decided = _binary_label(judged, policy)
            if isinstance(decided, str):
                dropped[decided] += 1
                continue
            label, share, agreement = decided
            rows.append(_example_row(rec, 1, label, share, agreement, judged))
        elif rec.template == "rating":
            for slot in slots:
                reason_or_row = _rating_example(rec, slot, judged, policy)
                if isinstance(reason_or_row, str):
                    dropped[reason_or_row] += 1
                else:
                    rows.append(reason_or_row)
        else:
            outcome = _scored_pair(rec, judged, policy)
            if isinstance(outcome, str):
                dropped[outcome] += len(slots)
                continue
            pair, scores = outcome
            if _gated(pair.agreement, policy):
                dropped[LOW_AGREEMENT] += len(slots)
                continue
            for slot, label in ((pair.chosen, True), (pair.rejected, False)):
                rows.append(_example_row(rec, slot, label, scores[slot], pair.agreement, judged))
            dropped[MIDDLE_RANK] += len(slots) - 2
    frame = _frame(rows, UNPAIRED_SCHEMA).sort(["prompt_id", "record_id", "slot"])
    dropped = +dropped
    return Consolidation(frame, total, total - sum(dropped.values()), dict(dropped), "responses")


def _rating_example(
    rec: _Record, slot: int, judged: _Judged, policy: ConsensusPolicy
) -> dict[str, Any] | str:
    values = judged.votes.get(slot, {})
    if not values:
        return UNRATED
    score = _aggregate(list(values.values()), policy.rating.method)
    if score >= policy.kto.desirable_min:
        label = True
    elif score <= policy.kto.undesirable_max:
        label = False
    else:
        return BETWEEN_THRESHOLDS
    if not rec.slots[slot][0].strip():
        return UNRATED
    agreement = None
    if judged.source == "human":
        same = [
            v >= policy.kto.desirable_min if label else v <= policy.kto.undesirable_max
            for v in values.values()
        ]
        agreement = sum(same) / len(same)
    if _gated(agreement, policy):
        return LOW_AGREEMENT
    return _example_row(rec, slot, label, score, agreement, judged)


def _example_row(
    rec: _Record, slot: int, label: bool, score: float, agreement: float | None, judged: _Judged
) -> dict[str, Any]:
    return {
        "prompt": rec.prompt,
        "completion": rec.slots[slot][0],
        "label": label,
        "prompt_id": rec.prompt_id,
        "record_id": rec.record_id,
        "slot": slot,
        "round": rec.round,
        "model": rec.slots[slot][1],
        "score": score,
        "n_annotators": len(judged.annotators),
        "agreement": agreement,
        "source": judged.source,
        "annotators": judged.annotators,
    }
