"""Consolidation: the rules' decisions turned into DPO/ORPO pairs and KTO examples, with the drop counts.

Output columns: `PAIRS_SCHEMA` or `UNPAIRED_SCHEMA`, sorted by prompt id, then record id (then the rejected
record, or the slot).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import polars as pl

from campaign.consensus.policy import (
    IDENTICAL,
    MIDDLE_RANK,
    PAIRS_SCHEMA,
    UNPAIRED,
    UNPAIRED_SCHEMA,
    ConsensusPolicy,
    Consolidation,
)
from campaign.consensus.rules import (
    binary_labels,
    chosen_and_rejected,
    rating_labels,
    rating_scores,
    repeated_examples,
    stripped,
)
from campaign.consensus.votes import Inputs, read_inputs

# The record fields that examples carry.
RECORD_FIELDS = ("record_id", "prompt_id", "round", "prompt", "source", "n_annotators", "annotators")


def consolidate_pairs(
    records: pl.DataFrame, responses: pl.DataFrame, suggestions: pl.DataFrame | None = None, **options: Any
) -> Consolidation:
    """Preference pairs (prompt, chosen, rejected + provenance) for DPO and ORPO; one unit = one record.

    `options` are those of `consolidate`."""
    return consolidate(records, responses, suggestions, kinds=["pairs"], **options)["pairs"]


def consolidate_unpaired(
    records: pl.DataFrame, responses: pl.DataFrame, suggestions: pl.DataFrame | None = None, **options: Any
) -> Consolidation:
    """KTO examples (prompt, completion, label + provenance); one unit = one response of a record.

    `options` are those of `consolidate`."""
    return consolidate(records, responses, suggestions, kinds=["unpaired"], **options)["unpaired"]


def consolidate(
    records: pl.DataFrame,
    responses: pl.DataFrame,
    suggestions: pl.DataFrame | None = None,
    *,
    kinds: Iterable[str] = ("pairs", "unpaired"),
    policy: ConsensusPolicy | None = None,
    min_submitted: int | None = None,
    rounds: Iterable[int] | None = None,
    annotators: bool = True,
) -> dict[str, Consolidation]:
    """Several consolidations ('pairs', 'unpaired') of one snapshot, reading its votes once.

    `annotators=False` leaves the `annotators` column out of the frames (for exports that omit it).
    """
    policy = policy or ConsensusPolicy()
    inputs = read_inputs(records, responses, suggestions, policy, min_submitted, rounds, annotators)
    wanted = dict.fromkeys(kinds)
    # Pairs and KTO examples read the same decisions of the rating, ranking and binary records.
    rated = rating_scores(inputs, policy)
    scored, binary = chosen_and_rejected(inputs, policy, rated), binary_labels(inputs, policy)
    done = {}
    if "pairs" in wanted:
        done["pairs"] = _pairs(inputs, scored, binary)
    if "unpaired" in wanted:
        done["unpaired"] = _unpaired(inputs, scored, binary, rating_labels(inputs, policy, rated))
    return {kind: done[kind] for kind in wanted}


def _pairs(inputs: Inputs, scored: pl.DataFrame, binary: pl.DataFrame) -> Consolidation:
    """Rating and ranking records give a pair each; binary records are paired by prompt (`_pair_binary`)."""
    kept = _with_record(scored.filter(pl.col("reason").is_null()), inputs).with_columns(
        chosen="chosen_response", rejected="rejected_response", rejected_record_id="record_id", rid_r="rid"
    )
    pairs, unpaired = _pair_binary(binary.filter(pl.col("reason").is_null()), inputs)
    frame = _finish([kept, pairs], PAIRS_SCHEMA, ["rid", "rid_r"], inputs)
    one = pl.lit(1)
    dropped = _counts(
        inputs.records.select("reason", weight=one),
        scored.select("reason", weight=one),
        binary.select("reason", weight=one),
        unpaired,
    )
    return Consolidation(frame, inputs.records.height, kept.height + 2 * pairs.height, dropped, "records")


def _pair_binary(labelled: pl.DataFrame, inputs: Inputs) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Pair the good and bad completions of each prompt: the best good (highest share of good votes) with the
    worst bad, then the next ones; pairs of identical texts are dropped, and so are completions left without
    an opposite label.

    Returns the pairs and the (reason, weight) of the completions that were not paired.
    """
    items = _with_record(labelled, inputs)
    rank = pl.int_range(pl.len()).over("prompt_id").alias("rank")
    order = ["prompt_id", "share", "rid"]
    goods = items.filter(pl.col("label")).sort(order, descending=[False, True, False]).with_columns(rank)
    bads = items.filter(~pl.col("label")).sort(order).with_columns(rank)
    matched = goods.join(bads, on=["prompt_id", "rank"], how="inner", suffix="_r")
    identical = stripped("text") == stripped("text_r")
    judge = (pl.col("source") == "judge") | (pl.col("source_r") == "judge")
    pairs = matched.filter(~identical).select(
        "rid",
        "rid_r",
        "prompt",
        "prompt_id",
        "record_id",
        annotators=pl.concat_list("annotators", "annotators_r").list.unique().list.sort()
        if inputs.annotators
        else pl.lit(None),
        chosen="text",
        rejected="text_r",
        rejected_record_id="record_id_r",
        round=pl.max_horizontal("round", "round_r"),
        chosen_model="model",
        rejected_model="model_r",
        chosen_score="share",
        rejected_score="share_r",
        margin=pl.col("share") - pl.col("share_r"),
        n_annotators=pl.min_horizontal("n_annotators", "n_annotators_r"),
        agreement=pl.min_horizontal("agreement", "agreement_r"),
        source=pl.when(judge).then(pl.lit("judge")).otherwise(pl.lit("human")),
    )
    dropped = pl.DataFrame(
        {
            "reason": [UNPAIRED, IDENTICAL],
            "weight": [items.height - 2 * matched.height, 2 * (matched.height - pairs.height)],
        }
    )
    return pairs, dropped


def _unpaired(
    inputs: Inputs, scored: pl.DataFrame, binary: pl.DataFrame, rating: pl.DataFrame
) -> Consolidation:
    """Binary records give one example; rating records one per labelled response; ranking records two (the
    chosen response True, the rejected False), the responses between them are dropped as middle_rank; then
    an example repeating another is dropped (`repeated_examples`)."""
    units = pl.when(pl.col("template") == "binary").then(1).otherwise(pl.col("n_slots"))
    total = int(inputs.records.select(units.sum()).item() or 0)
    kept = pl.col("reason").is_null()
    ranking = scored.filter(pl.col("template") == "ranking").join(
        inputs.records.select("rid", weight="n_slots"), on="rid", how="left"
    )
    ranked = ranking.filter(kept)
    columns = ["rid", "label", "agreement", "text", "model"]
    rows = [
        binary.filter(kept).select(*columns, slot=pl.lit(1, dtype=pl.Int64()), score="share"),
        rating.filter(kept).select(*columns, "slot", "score"),
        *(
            ranked.select(
                "rid",
                "agreement",
                label=pl.lit(side == "chosen"),
                slot=f"{side}_slot",
                score=f"{side}_score",
                text=f"{side}_response",
                model=f"{side}_model",
            )
            for side in ("chosen", "rejected")
        ),
    ]
    parts = [_with_record(part, inputs).with_columns(completion="text") for part in rows]
    frame = repeated_examples(_finish(parts, UNPAIRED_SCHEMA, ["rid", "slot"], inputs))
    dropped = _counts(
        inputs.records.select("reason", weight=units),
        binary.select("reason", weight=pl.lit(1)),
        rating.select("reason", weight=pl.lit(1)),
        ranking.select("reason", "weight"),
        ranked.select(reason=pl.lit(MIDDLE_RANK), weight=pl.col("weight") - 2),
        frame.select("reason", weight=pl.lit(1)),
    )
    frame = frame.filter(pl.col("reason").is_null()).drop("reason")
    return Consolidation(frame, total, total - sum(dropped.values()), dropped, "responses")


def _with_record(frame: pl.DataFrame, inputs: Inputs) -> pl.DataFrame:
    """`frame` (by rid) with the fields of its record."""
    fields = [c for c in RECORD_FIELDS if c not in frame.columns and c in inputs.records.columns]
    return frame.join(inputs.records.select("rid", *fields), on="rid", how="left")


def _finish(
    parts: list[pl.DataFrame], schema: dict[str, pl.DataType], order: list[str], inputs: Inputs
) -> pl.DataFrame:
    """The parts in `schema`'s columns and types (without `annotators` unless wanted), in the exports' order."""
    columns = [pl.col(c).cast(t) for c, t in schema.items() if c != "annotators" or inputs.annotators]
    keys = [c for c in order if c not in schema]
    return pl.concat([part.select(*keys, *columns) for part in parts]).sort(order).drop(keys)


def _counts(*parts: pl.DataFrame) -> dict[str, int]:
    """Drop reasons summed over frames of (reason, weight); reasons that dropped nothing are left out."""
    frames = [
        part.select(pl.col("reason").cast(pl.String()), pl.col("weight").cast(pl.Int64())) for part in parts
    ]
    sums = pl.concat(frames).drop_nulls("reason").group_by("reason").agg(pl.col("weight").sum())
    return {reason: n for reason, n in sorted(sums.iter_rows()) if n > 0}
