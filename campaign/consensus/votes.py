"""The snapshot read for a consolidation: its records, their response slots, who judges each record, and the
votes it is decided on.

Input columns: the snapshot's `records` and `responses` tables (and `suggestions` for the judge fallback).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import polars as pl

from campaign.consensus.policy import (
    NO_SUBMITTED,
    TOO_FEW_ANNOTATORS,
    ConsensusPolicy,
    resolve_min_annotators,
)
from campaign.errors import InputError
from campaign.snapshot import RECORDS_SCHEMA, RESPONSES_SCHEMA, SUGGESTIONS_SCHEMA
from campaign.templates import TEMPLATE_NAMES

GOOD, BAD = "good", "bad"
RECORD_KEY = pl.col("record_id").cast(pl.Categorical())

# The snapshot columns a consolidation reads (its column contract, checked before any work).
RECORD_COLUMNS = [c for c in RECORDS_SCHEMA if c not in ("status", "inserted_at", "updated_at")]
RESPONSE_COLUMNS = [c for c in RESPONSES_SCHEMA if c not in ("prompt_id", "round", "updated_at")]
SUGGESTION_COLUMNS = [c for c in SUGGESTIONS_SCHEMA if c != "score"]


@dataclass(frozen=True)
class Inputs:
    """The records of a consolidation, their slots, and the votes each judged record is decided on."""

    # rid (numbers the records in the exports' order), record_id, prompt_id, round, template (an enum),
    # prompt, n_slots, source ('human', 'judge', or null when the record is dropped before any decision),
    # reason (why it is dropped), n_annotators (+ annotators)
    records: pl.DataFrame
    slots: pl.DataFrame  # rid, slot, response, model: one row per response of a record
    # rid, template, voter (categorical), slot, value: one vote per voter and slot (which may not be one of
    # the record's responses), from the source that judges the record
    votes: pl.DataFrame
    annotators: bool  # whether examples carry the sorted list of their voters


def read_inputs(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None,
    policy: ConsensusPolicy,
    min_submitted: int | None,
    rounds: Iterable[int] | None,
    annotators: bool = True,
) -> Inputs:
    """Records, slots, who judges each record (its annotators, else the judge, else a drop reason), votes."""
    recs, slots = _read_records(records, rounds)
    _require(responses, RESPONSE_COLUMNS, "responses")
    submitted = pl.col("status") == "submitted"
    if policy.exclude_annotators:
        submitted &= ~pl.col("annotator").is_in(sorted(set(policy.exclude_annotators)))
    human = _read_votes(responses, submitted, recs, "annotator")
    judge = human.clear()
    if policy.judge_fallback and suggestions is not None:
        _require(suggestions, SUGGESTION_COLUMNS, "suggestions")
        judge = _read_votes(suggestions, pl.lit(True), recs, "agent")
    judged = _who_judges(recs, human, judge, policy, min_submitted)
    votes = pl.concat(
        [
            part.join(judged.filter(pl.col("source") == source), on="rid", how="semi")
            for source, part in (("human", human), ("judge", judge))
        ]
    )
    if annotators:
        voters = votes.group_by("rid").agg(annotators=pl.col("voter").unique().sort().cast(pl.String()))
        judged = judged.join(voters, on="rid", how="left")
    return Inputs(judged.drop("key"), slots, votes, annotators)


def _require(frame: pl.DataFrame, columns: Iterable[str], name: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        msg = f"The {name} frame lacks column(s) {', '.join(missing)}; run 'campaign status' to re-sync."
        raise InputError(msg)


def _read_records(records: pl.DataFrame, rounds: Iterable[int] | None) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One row per record (the fields of its first row by slot, numbered `rid`) and one per (record, slot)
    (the last row wins; a missing slot is slot 1)."""
    _require(records, RECORD_COLUMNS, "records")
    rows = records.select(RECORD_COLUMNS)
    if rounds is not None:
        rows = rows.filter(pl.col("round").is_in(sorted(set(rounds))))
    # Records are found by `key`, their id as a categorical: joins and groups compare numbers, not texts.
    rows = rows.with_columns(key=RECORD_KEY).sort("slot", maintain_order=True)
    # Numbered in the exports' order (prompt id, then record id), so examples are ordered by numbers.
    recs = rows.unique("key", keep="first", maintain_order=True).sort("prompt_id", "record_id")
    recs = recs.with_row_index("rid")
    recs = recs.select(
        "rid", "key", "record_id", "prompt_id", "round", "template", pl.col("prompt").fill_null("")
    )
    bad = recs.filter(~pl.col("template").is_in(TEMPLATE_NAMES).fill_null(True)).sort("record_id")
    if bad.height:
        record_id, template = bad.select("record_id", "template").row(0)
        choices = ", ".join(TEMPLATE_NAMES)
        msg = f"Record {record_id} has unknown template {template!r}; expected one of {choices}."
        raise InputError(msg)
    _check_prompt_ids(recs)
    recs = recs.with_columns(pl.col("template").cast(pl.Enum(TEMPLATE_NAMES)))  # compared as numbers
    slots = (
        rows.select("key", pl.col("slot").fill_null(1), pl.col("response").fill_null(""), "model")
        .unique(["key", "slot"], keep="last")
        .join(recs.select("key", "rid"), on="key", nulls_equal=True)
        .drop("key")
    )
    n_slots = slots.group_by("rid").agg(n_slots=pl.len())
    return recs.join(n_slots, on="rid", how="left"), slots


def _check_prompt_ids(recs: pl.DataFrame) -> None:
    """Refuse records without a prompt id: the split and the binary pairing group by it.

    A sync never writes one (it falls back to the record id) and `campaign seed` always sets it, so a null
    means the snapshot was written or edited by something else; guessing would put a prompt in both splits.
    """
    missing = recs.filter(pl.col("prompt_id").is_null()).sort("record_id")
    if missing.height:
        ids = missing.get_column("record_id").to_list()
        shown = ", ".join(str(i) for i in ids[:3]) + (", ..." if len(ids) > 3 else "")
        msg = (
            f"{len(ids)} record(s) have no prompt_id ({shown}); a snapshot synced by 'campaign status' "
            "always has one. Delete the campaign's .campaign/snapshot folder and run 'campaign status' "
            "to sync it again, or set prompt_id on those rows of records.parquet."
        )
        raise InputError(msg)


def _number(value: str) -> float | None:
    """A rating or rank, as Python's float() reads it; NaN and infinities have no mean or order: no vote."""
    try:
        number = float(value)
    except ValueError:
        return None
    return number + 0.0 if math.isfinite(number) else None  # + 0.0 turns -0.0 into 0.0


def _label(value: str) -> float | None:
    """A binary vote: 1.0 good, 0.0 bad (any case, surrounding spaces ignored)."""
    text = value.strip().lower()
    return 1.0 if text == GOOD else 0.0 if text == BAD else None


def _rating_slot(question: str) -> int | None:
    """The slot a rating question names when its row has none: rating_<n> -> n."""
    suffix = question.removeprefix("rating_")
    return int(suffix) if suffix.isdecimal() else None


def _parsed(frame: pl.DataFrame, column: str, parse: Callable[[str], Any], dtype: pl.DataType) -> pl.Expr:
    """`column` through `parse`, called once per distinct value (ratings, ranks, labels and questions are few)."""
    values = frame.get_column(column).unique().drop_nulls().to_list()
    if not values:
        return pl.lit(None, dtype=dtype)
    return pl.col(column).replace_strict(values, [parse(v) for v in values], default=None, return_dtype=dtype)


def _read_votes(frame: pl.DataFrame, counts: pl.Expr, recs: pl.DataFrame, who: str) -> pl.DataFrame:
    """One vote per voter and slot of the records in `recs`, from the rows of `frame` where `counts` holds:
    rid, template, voter, slot, value.

    A value counts for a slot when its question belongs to the record's template: rating_<n> (its slot, else
    n), ranking (its slot) or label (slot 1), and parses (a number; for labels good or bad). A voter without
    a name is 'judge'. When a voter answered one slot twice, the last in (question, slot, voter) order wins.
    """
    template, question = pl.col("template"), pl.col("question")
    slot = (
        pl.when((template == "rating") & question.str.starts_with("rating_"))
        .then(pl.coalesce("slot", _parsed(frame, "question", _rating_slot, pl.Int64())))
        .when((template == "ranking") & (question == "ranking"))
        .then("slot")
        .when((template == "binary") & (question == "label"))
        .then(pl.lit(1, dtype=pl.Int64()))
    )
    value = (
        pl.when(template == "binary")
        .then(_parsed(frame, "value", _label, pl.Float64()))
        .otherwise(_parsed(frame, "value", _number, pl.Float64()))
    )
    nameless = pl.col(who).is_null() | (pl.col(who) == "")
    # Categorical: voters are few, so they are grouped and joined on as numbers (and still sort by name).
    voter = pl.when(nameless).then(pl.lit("judge")).otherwise(who).cast(pl.Categorical())
    keys = ["rid", "counted_slot", "voter"]
    # The join keeps the rows' order: of two rows alike in question, slot and voter, the later one wins.
    votes = (
        frame.lazy()
        .filter(counts)
        .with_columns(key=RECORD_KEY)
        .join(recs.lazy().select("key", "rid", "template"), on="key", how="inner", maintain_order="left")
        .select("rid", "template", "question", "slot", who, counted_slot=slot, counted=value, voter=voter)
        .filter(pl.col("counted_slot").is_not_null() & pl.col("counted").is_not_null())
        .with_columns(repeated=pl.len().over(keys) > 1)
        .collect()
    )
    last = (
        votes.filter("repeated")
        .sort("question", "slot", who, nulls_last=True, maintain_order=True)
        .unique(keys, keep="last")
    )
    return pl.concat([votes.filter(~pl.col("repeated")), last]).select(
        "rid", "template", "voter", slot="counted_slot", value="counted"
    )


def _who_judges(
    recs: pl.DataFrame,
    human: pl.DataFrame,
    judge: pl.DataFrame,
    policy: ConsensusPolicy,
    min_submitted: int | None,
) -> pl.DataFrame:
    """`recs` with source, reason and n_annotators.

    A record is judged by its annotators when at least `min_annotators` of them (`binary.min_votes` for
    binary records) submitted a vote; else, with the judge fallback, by the judges that voted on it; else it
    is dropped: no submitted responses, or too few annotators.
    """
    for name, votes in (("human_n", human), ("judge_n", judge)):
        counts = votes.group_by("rid").agg(pl.col("voter").n_unique().alias(name))
        recs = recs.join(counts, on="rid", how="left").with_columns(pl.col(name).fill_null(0))
    need = pl.lit(resolve_min_annotators(policy, min_submitted))
    if policy.binary.min_votes is not None:
        need = pl.when(pl.col("template") == "binary").then(pl.lit(policy.binary.min_votes)).otherwise(need)
    human_n, judge_n = pl.col("human_n"), pl.col("judge_n")
    source = pl.when(human_n >= need).then(pl.lit("human")).when(judge_n > 0).then(pl.lit("judge"))
    reason = pl.when(human_n == 0).then(pl.lit(NO_SUBMITTED)).otherwise(pl.lit(TOO_FEW_ANNOTATORS))
    return recs.with_columns(
        source=source,
        reason=pl.when(source.is_null()).then(reason),
        n_annotators=pl.when(source == "human").then(human_n).when(source == "judge").then(judge_n),
    ).drop("human_n", "judge_n")
