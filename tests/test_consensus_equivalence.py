"""The vectorised consensus gives exactly what the original record-by-record loops gave.

The reference below is the loop implementation `campaign/consensus.py` had before it became polars
expressions, kept here (and only here) as the plain statement of each policy. Hypothesis draws small
snapshots with every template, ties, unrated slots, drafts and discards, duplicate and stray votes, and
judge suggestions, and both implementations must agree on every frame value (bit for bit) and every count.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.consensus import consolidate, consolidate_pairs, consolidate_unpaired
from campaign.consensus.policy import (
    BELOW_MARGIN,
    BETWEEN_THRESHOLDS,
    CONTRADICTORY,
    DUPLICATE,
    FEWER_THAN_TWO,
    IDENTICAL,
    LOW_AGREEMENT,
    MIDDLE_RANK,
    NO_SUBMITTED,
    NOT_UNANIMOUS,
    PAIRS_SCHEMA,
    TIE,
    TOO_FEW_ANNOTATORS,
    UNPAIRED,
    UNPAIRED_SCHEMA,
    UNRATED,
    ConsensusPolicy,
    Consolidation,
    resolve_min_annotators,
)
from campaign.consensus.votes import BAD, GOOD
from campaign.errors import InputError
from campaign.templates import TEMPLATE_NAMES as TEMPLATES
from tests import test_export_data as data

# ---------------------------------------------------------------------------------------------------------
# Reference: the original loops
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
    nameless = [str(rec.record_id) for rec in out.values() if rec.prompt_id is None]
    if nameless:
        shown = ", ".join(nameless[:3]) + (", ..." if len(nameless) > 3 else "")
        msg = (
            f"{len(nameless)} record(s) have no prompt_id ({shown}); a snapshot synced by 'campaign status' "
            "always has one. Delete the campaign's .campaign/snapshot folder and run 'campaign status' "
            "to sync it again, or set prompt_id on those rows of records.parquet."
        )
        raise InputError(msg)
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


def reference_pairs(
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


def reference_unpaired(
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
    # One example per (prompt, stripped completion): both labels drop them all, else the first is kept.
    rows.sort(key=lambda row: (row["prompt_id"], row["record_id"], row["slot"]))
    same: defaultdict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        same[(row["prompt"], row["completion"].strip())].append(row)
    rows = []
    for group in same.values():
        if len({row["label"] for row in group}) > 1:
            dropped[CONTRADICTORY] += len(group)
        else:
            rows.append(group[0])
            dropped[DUPLICATE] += len(group) - 1
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


# ---------------------------------------------------------------------------------------------------------
# Equivalence
# ---------------------------------------------------------------------------------------------------------

USERS = ["alice", "bob", "carol", "dave", ""]
NUMBERS = ["1", "2", "3", "4", "5", "5", " 4 ", "2.5", "3.3", "0.1", "x", ""]


def _suggestion(rid: str, question: str, slot: int | None, value: str, agent: str | None) -> dict:
    """A judge suggestion whose agent may be missing (it then votes as 'judge')."""
    return {**data.suggestion(rid, question, slot, value), "agent": agent}


@st.composite
def snapshots(draw: st.DrawFn) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """A small snapshot mixing the three templates, with every kind of awkward vote."""
    recs: list[dict] = []
    resp: list[dict] = []
    sugg: list[dict] = []
    n = draw(st.integers(0, 8))
    texts = st.sampled_from(["same", " same ", "other", "third", "", "\x1csame"])
    for i in range(n):
        rid = f"r{draw(st.integers(0, 99)):02d}-{i}"
        template = draw(st.sampled_from(TEMPLATES))
        k = 1 if template == "binary" else draw(st.integers(1, 4))
        responses = draw(st.lists(texts, min_size=k, max_size=k))
        models = draw(st.lists(st.sampled_from([None, "m1", "m2"]), min_size=k, max_size=k))
        prompt_id = draw(st.sampled_from(["p1", "p2", "p3"]))
        recs += data.record(
            rid,
            responses,
            template=template,
            prompt_id=prompt_id,
            round=draw(st.integers(1, 3)),
            models=models,
        )
        for user in draw(st.lists(st.sampled_from(USERS), max_size=4)):
            status = draw(st.sampled_from(["submitted", "submitted", "draft", "discarded"]))
            if template == "rating":
                slots = draw(st.lists(st.sampled_from([None, 1, 2, 3, 4, 5]), max_size=k + 1))
                resp += data.ratings(rid, user, slots, status=status)
                if draw(st.booleans()):
                    row = data.ratings(rid, user, [1], status=status)[0]
                    question = draw(
                        st.sampled_from(["rating_1", "rating_2", "rating_9", "rating_x", "label"])
                    )
                    resp.append(
                        {**row, "question": question, "slot": None, "value": draw(st.sampled_from(NUMBERS))}
                    )
            elif template == "ranking":
                resp += data.ranks(
                    rid, user, draw(st.lists(st.integers(1, k), min_size=k, max_size=k)), status=status
                )
            else:
                resp += data.label(
                    rid, user, draw(st.sampled_from(["good", "bad", " Good", "BAD ", "meh"])), status=status
                )
        for agent in draw(st.lists(st.sampled_from(["judge-a", "judge-b", None]), max_size=2)):
            if template == "rating":
                for slot in range(1, k + 1):
                    value = draw(st.sampled_from(NUMBERS))
                    sugg.append(
                        _suggestion(rid, f"rating_{slot}", draw(st.sampled_from([slot, None])), value, agent)
                    )
            elif template == "ranking":
                for slot in range(1, k + 1):
                    sugg.append(_suggestion(rid, "ranking", slot, str(draw(st.integers(1, k))), agent))
            else:
                sugg.append(_suggestion(rid, "label", None, draw(st.sampled_from(["good", "bad"])), agent))
    return data.frames(recs, resp, sugg)


policies = st.builds(
    lambda rating, min_margin, ranking, binary, min_votes, gate, judge, exclude, min_annotators, kto: (
        ConsensusPolicy.model_validate(
            {
                "rating": {"method": rating, "min_margin": min_margin},
                "ranking": {"method": ranking, "min_margin": min_margin / 2},
                "binary": {"method": binary, "min_votes": min_votes},
                "agreement_gate": gate,
                "judge_fallback": judge,
                "exclude_annotators": exclude,
                "min_annotators": min_annotators,
                "kto": {"desirable_min": kto[0], "undesirable_max": kto[1]},
            }
        )
    ),
    st.sampled_from(["mean", "median"]),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.sampled_from(["borda", "mean_rank"]),
    st.sampled_from(["majority", "unanimous"]),
    st.sampled_from([None, 1, 2]),
    st.sampled_from([None, 0.5, 0.7, 1.0]),
    st.booleans(),
    st.lists(st.sampled_from(["bob", "dave"]), max_size=1),
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([(4.0, 2.0), (3.5, 2.5), (3.0, 1.0)]),
)


def _canonical(result: Consolidation) -> tuple[Any, ...]:
    """Everything a consolidation says, with floats compared bit for bit (repr keeps -0.0 and 0.1 + 0.2)."""
    frame = result.frame
    return (
        frame.schema,
        [repr(row) for row in frame.iter_rows()],
        result.total,
        result.kept,
        dict(sorted(result.dropped.items())),
        result.unit,
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snapshots(),
    policies,
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, [1], [2, 3]]),
    st.none() | st.integers(0, 2**16),
)
def test_vectorised_consensus_matches_the_loops(
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    policy: ConsensusPolicy,
    min_submitted: int | None,
    rounds: list[int] | None,
    shuffle: int | None,
) -> None:
    records, responses, suggestions = tables
    if shuffle is not None:
        # Record rows in any order (not record by record, as a sync writes them), for the sorted numbering.
        records = records.sample(fraction=1.0, shuffle=True, seed=shuffle)
    args: dict[str, Any] = {"policy": policy, "min_submitted": min_submitted, "rounds": rounds}
    both = consolidate(records, responses, suggestions, **args)
    lean = consolidate(records, responses, suggestions, annotators=False, **args)
    for reference, vectorised, kind in (
        (reference_pairs, consolidate_pairs, "pairs"),
        (reference_unpaired, consolidate_unpaired, "unpaired"),
    ):
        result = reference(records, responses, suggestions, **args)
        expected = _canonical(result)
        assert _canonical(vectorised(records, responses, suggestions, **args)) == expected
        assert _canonical(both[kind]) == expected
        # Without the annotator lists (exports that omit them), everything else is the same.
        assert _canonical(lean[kind]) == _canonical(replace(result, frame=result.frame.drop("annotators")))


def test_unknown_template_is_reported_like_before() -> None:
    records, responses, suggestions = data.frames(
        data.record("r1", ["a", "b"]) + data.record("r0", ["c"], template="essay"), []
    )
    messages = []
    for build in (reference_pairs, consolidate_pairs):
        try:
            build(records, responses, suggestions)
        except InputError as exc:
            messages.append(str(exc))
    assert len(messages) == 2
    assert messages[0] == messages[1]


def test_missing_prompt_ids_are_reported_like_the_loops() -> None:
    rows = [row for i in range(5) for row in data.record(f"r{i}", ["a", "b"])]
    records, responses, suggestions = data.frames(rows, [])
    records = records.with_columns(
        prompt_id=pl.when(pl.col("record_id") == "r2").then(pl.lit("p")).otherwise(None)
    )
    messages = []
    for build in (reference_pairs, consolidate_pairs, reference_unpaired, consolidate_unpaired):
        try:
            build(records, responses, suggestions)
        except InputError as exc:
            messages.append(str(exc))
    assert len(messages) == 4 and len(set(messages)) == 1
    assert "4 record(s) have no prompt_id (r0, r1, r3, ...)" in messages[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snapshots(),
    policies,
    st.sampled_from([None, 1, 2, 3]),
    st.sampled_from([None, [1], [2, 3]]),
)
def test_records_written_slot_by_slot_match_the_loops(
    tables: tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame],
    policy: ConsensusPolicy,
    min_submitted: int | None,
    rounds: list[int] | None,
) -> None:
    records, responses, suggestions = tables
    # Each record's rows apart (slot 1 of every record, then slot 2, ...), as another tool may write them.
    records = records.sort("slot", maintain_order=True)
    args: dict[str, Any] = {"policy": policy, "min_submitted": min_submitted, "rounds": rounds}
    both = consolidate(records, responses, suggestions, **args)
    lean = consolidate(records, responses, suggestions, annotators=False, **args)
    for reference, kind in ((reference_pairs, "pairs"), (reference_unpaired, "unpaired")):
        result = reference(records, responses, suggestions, **args)
        assert _canonical(both[kind]) == _canonical(result)
        assert _canonical(lean[kind]) == _canonical(replace(result, frame=result.frame.drop("annotators")))
