"""The consensus rules, one function each, over the votes of `Inputs`.

Each returns one row per decided unit (a record, or a response for KTO from ratings) with a `reason`: null
when the unit is kept, else the drop reason.
"""

from __future__ import annotations

import statistics

import polars as pl

from campaign.consensus.policy import (
    BELOW_MARGIN,
    BETWEEN_THRESHOLDS,
    CONTRADICTORY,
    DUPLICATE,
    FEWER_THAN_TWO,
    IDENTICAL,
    LOW_AGREEMENT,
    NO_SUBMITTED,
    NOT_UNANIMOUS,
    TIE,
    UNRATED,
    ConsensusPolicy,
)
from campaign.consensus.votes import Inputs

# What Python's str.strip() removes (str.isspace): texts are compared and checked for emptiness as Python
# strips them (polars' default strip_chars keeps \x1c-\x1f).
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007"
    "\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)


def stripped(column: str) -> pl.Expr:
    """`column` without surrounding whitespace, as Python's str.strip() removes it."""
    return pl.col(column).str.strip_chars(WHITESPACE)


def below_gate(agreement: pl.Expr, policy: ConsensusPolicy) -> pl.Expr:
    """Whether an example's agreement is below the agreement gate (the judge's examples have none: they pass)."""
    if policy.agreement_gate is None:
        return pl.lit(False)
    return agreement.fill_null(policy.agreement_gate) < policy.agreement_gate


def _gated(decided: pl.DataFrame, policy: ConsensusPolicy) -> pl.DataFrame:
    """Kept rows whose agreement is below the gate are dropped as low_agreement."""
    low = pl.col("reason").is_null() & below_gate(pl.col("agreement"), policy)
    return decided.with_columns(reason=pl.when(low).then(pl.lit(LOW_AGREEMENT)).otherwise("reason"))


def scores(votes: pl.DataFrame, column: str, method: str, *extra: pl.Expr) -> pl.DataFrame:
    """rid, slot, score (+ `extra`): the votes on each response combined, as `statistics.fmean` or
    `statistics.median` combine them.

    Integral votes (all that Argilla's rating and ranking questions give) sum exactly in any order, so the
    sum over the count is fmean's result; a response with another vote is combined by `statistics` itself.
    """
    keys, value = ["rid", "slot"], pl.col(column)
    combined = value.median() if method == "median" else value.sum() / pl.len()
    out = votes.group_by(keys).agg(combined.alias("score"), *extra)
    integral = (value.round(0) == value) & (value.abs() < 2.0**31)
    inexact = votes.filter(~integral).select(keys).unique()
    if inexact.height:
        combine = statistics.median if method == "median" else statistics.fmean
        lists = votes.join(inexact, on=keys, how="semi").group_by(keys).agg(value)
        exact = [float(combine(values)) for values in lists.get_column(column).to_list()]
        lists = lists.select(*keys, exact=pl.Series(exact, dtype=pl.Float64()))
        out = (
            out.join(lists, on=keys, how="left")
            .with_columns(score=pl.coalesce("exact", "score"))
            .drop("exact")
        )
    return out


def rating_scores(inputs: Inputs, policy: ConsensusPolicy) -> pl.DataFrame:
    """Each response of the judged rating records (rid, slot, response, model, source) with its score, its
    number of ratings n, and how many of them are at least kto.desirable_min (n_high) or at most
    kto.undesirable_max (n_low); all null when it has no rating."""
    judged = inputs.records.filter(pl.col("source").is_not_null() & (pl.col("template") == "rating"))
    votes, value = inputs.votes.filter(pl.col("template") == "rating"), pl.col("value")
    high, low = (value >= policy.kto.desirable_min).sum(), (value <= policy.kto.undesirable_max).sum()
    rated = scores(
        votes, "value", policy.rating.method, pl.len().alias("n"), high.alias("n_high"), low.alias("n_low")
    )
    responses = inputs.slots.join(judged.select("rid", "source"), on="rid", how="inner")
    return responses.join(rated, on=["rid", "slot"], how="left")


def chosen_and_rejected(inputs: Inputs, policy: ConsensusPolicy, rated: pl.DataFrame) -> pl.DataFrame:
    """The chosen and rejected response of each judged rating or ranking record, or why it is dropped.

    A response's score: for ratings the mean (or median) rating; for rankings ('borda') the mean number of
    responses its annotators ranked strictly worse, or ('mean_rank') its mean rank, lower being better.
    Chosen is the best score (the lowest slot among equals) and rejected the worst (the highest slot among
    equals). The record is dropped with fewer than two scored responses, on a tie, below the template's
    min_margin, when both texts are the same, or below the agreement gate. Agreement is the share of the
    annotators who judged both responses that preferred the chosen one.

    Columns: rid, template, reason, margin, agreement, and chosen_ and rejected_ slot, score, response, model.
    """
    templates = ("rating", "ranking")
    judged = inputs.records.filter(pl.col("source").is_not_null() & pl.col("template").is_in(templates))
    # Only votes on the record's responses count (a vote on another slot is ignored).
    responses = inputs.slots.select("rid", "slot")
    rating = inputs.votes.filter(pl.col("template") == "rating").with_columns(better=pl.col("value"))
    ranking = inputs.votes.filter(pl.col("template") == "ranking").join(
        responses, on=["rid", "slot"], how="semi"
    )
    # `better` is higher for the response a voter prefers; the score's `key` is higher for the better score.
    if policy.ranking.method == "borda":
        by_voter = ["rid", "voter"]
        worse = pl.len().over(by_voter) - pl.col("value").rank("max").over(by_voter)
        ranking = ranking.with_columns(better=worse.cast(pl.Float64()))
        ranking_scores = scores(ranking, "better", "mean").with_columns(key=pl.col("score"))
    else:
        ranking = ranking.with_columns(better=-pl.col("value"))
        ranking_scores = scores(ranking, "value", "mean").with_columns(key=-pl.col("score"))
    # The scored responses of each record, best first, with their texts (a score on another slot is ignored).
    columns = ["rid", "slot", "score", "response", "model"]
    ordered = pl.concat(
        [
            rated.filter(pl.col("score").is_not_null()).select(*columns, key="score"),
            ranking_scores.join(inputs.slots, on=["rid", "slot"]).select(*columns, "key"),
        ]
    ).sort(["rid", "key", "slot"], descending=[False, True, False])
    sides = pl.col("slot", "score", "response", "model")
    best = ordered.group_by("rid", maintain_order=True).agg(
        sides.first().name.prefix("chosen_"),
        sides.last().name.prefix("rejected_"),
        n=pl.len(),
        margin=pl.col("key").first() - pl.col("key").last(),
    )
    decided = judged.select("rid", "template", "source").join(best, on="rid", how="left")
    rating_template = pl.col("template") == "rating"
    min_margin = pl.when(rating_template).then(policy.rating.min_margin).otherwise(policy.ranking.min_margin)
    reason = (
        pl.when(pl.col("n").fill_null(0) < 2)
        .then(pl.lit(FEWER_THAN_TWO))
        .when(pl.col("margin") <= 0)
        .then(pl.lit(TIE))
        .when(pl.col("margin") < min_margin)
        .then(pl.lit(BELOW_MARGIN))
        .when(stripped("chosen_response") == stripped("rejected_response"))
        .then(pl.lit(IDENTICAL))
    )
    decided = decided.with_columns(reason=reason)
    decided = decided.join(_agreement(decided, pl.concat([rating, ranking])), on="rid", how="left")
    return _gated(decided, policy).drop("source", "n")


def _agreement(decided: pl.DataFrame, votes: pl.DataFrame) -> pl.DataFrame:
    """rid, agreement of the kept pairs judged by annotators: the share of the annotators who judged both
    responses that preferred the chosen one (its `better` is higher)."""
    pairs = decided.filter(pl.col("reason").is_null() & (pl.col("source") == "human"))
    better = votes.select("rid", "slot", "voter", "better")

    def on(slot: str) -> pl.DataFrame:
        return better.join(pairs.select("rid", slot=slot), on=["rid", "slot"], how="semi")

    both = on("chosen_slot").join(on("rejected_slot"), on=["rid", "voter"], suffix="_r")
    preferred = (pl.col("better") > pl.col("better_r")).sum()
    return both.group_by("rid").agg(agreement=preferred / pl.len())


def binary_labels(inputs: Inputs, policy: ConsensusPolicy) -> pl.DataFrame:
    """The label of each judged binary record, or why it is dropped.

    'majority': good when more than half the votes say good, bad when fewer do, dropped on a tie;
    'unanimous' also drops any disagreement. share is the share of good votes, agreement the share of votes
    that agree with the label (for the annotators' records). Then the agreement gate.

    Columns: rid, reason, label, share, agreement, text, model (of its response, slot 1).
    """
    judged = inputs.records.filter(pl.col("source").is_not_null() & (pl.col("template") == "binary"))
    votes = inputs.votes.filter((pl.col("template") == "binary") & (pl.col("slot") == 1))
    counts = votes.group_by("rid").agg(good=pl.col("value").sum(), n=pl.len())
    good, n = pl.col("good").fill_null(0), pl.col("n").fill_null(0)
    unanimous = policy.binary.method == "unanimous"
    reason = (
        pl.when(n == 0)
        .then(pl.lit(NO_SUBMITTED))
        .when(pl.lit(unanimous) & (good > 0) & (good < n))
        .then(pl.lit(NOT_UNANIMOUS))
        .when(good * 2 == n)
        .then(pl.lit(TIE))
    )
    share, label = pl.col("share"), pl.col("label")
    decided = (
        judged.select("rid", "source")
        .join(counts, on="rid", how="left")
        .with_columns(reason=reason, label=good * 2 > n, share=good / n)
        .with_columns(
            agreement=pl.when(pl.col("source") == "human").then(
                pl.when(label).then(share).otherwise(1.0 - share)
            )
        )
    )
    texts = inputs.slots.filter(pl.col("slot") == 1).select("rid", "model", text="response")
    return (
        _gated(decided, policy)
        .select("rid", "reason", "label", "share", "agreement")
        .join(texts, on="rid", how="left")
    )


def rating_labels(inputs: Inputs, policy: ConsensusPolicy, rated: pl.DataFrame) -> pl.DataFrame:
    """The KTO label of each response of the judged rating records, or why it is dropped.

    A response whose score (mean or median rating) is at least kto.desirable_min is desirable (True), at
    most kto.undesirable_max undesirable (False); it is dropped when unrated, between the two, with an
    empty text, or below the agreement gate. Agreement is the share of its ratings on the label's side.

    Columns: rid, slot, reason, label, score, agreement, text, model.
    """
    high, low = policy.kto.desirable_min, policy.kto.undesirable_max
    score, label, n = pl.col("score"), pl.col("label"), pl.col("n")
    reason = (
        pl.when(n.is_null())
        .then(pl.lit(UNRATED))
        .when(label.is_null())
        .then(pl.lit(BETWEEN_THRESHOLDS))
        .when(stripped("response") == "")
        .then(pl.lit(UNRATED))
    )
    on_side = pl.when(label).then(pl.col("n_high") / n).otherwise(pl.col("n_low") / n)
    decided = rated.with_columns(
        label=pl.when(score >= high).then(True).when(score <= low).then(False)
    ).with_columns(reason=reason, agreement=pl.when(pl.col("source") == "human").then(on_side))
    columns = ["rid", "slot", "reason", "label", "score", "agreement", "model"]
    return _gated(decided, policy).select(*columns, text="response")


def repeated_examples(examples: pl.DataFrame) -> pl.DataFrame:
    """KTO `examples`, in the exports' order, with `reason`: why each is dropped for repeating another.

    Examples with the same prompt and the same completion (compared stripped, as identical responses are)
    say nothing when their labels differ: all of them are dropped as contradictory_labels. When their labels
    agree, the first is kept and the others are dropped as duplicate_example. So an export never holds one
    (prompt, completion) twice or with both labels.
    """
    same = ["prompt", "text"]
    labels_differ = pl.len().over(same) != pl.len().over(*same, "label")
    later = ~pl.struct(same).is_first_distinct()
    reason = pl.when(labels_differ).then(pl.lit(CONTRADICTORY)).when(later).then(pl.lit(DUPLICATE))
    return examples.with_columns(text=stripped("completion")).with_columns(reason=reason).drop("text")
