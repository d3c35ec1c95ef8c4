"""Consensus policies on literal frames, plus property tests of the invariants."""

from __future__ import annotations

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_export_data import frames, label, ranks, ratings, record, suggestion

from campaign.consensus import ConsensusPolicy, consolidate_pairs, consolidate_unpaired, policy_from_mapping
from campaign.consensus import policy as c
from campaign.errors import InputError, UsageError


def pairs(recs, resp, sugg=(), **kwargs):
    records, responses, suggestions = frames(recs, resp, sugg)
    kwargs.setdefault("min_submitted", 1)
    return consolidate_pairs(records, responses, suggestions, **kwargs)


def unpaired(recs, resp, sugg=(), **kwargs):
    records, responses, suggestions = frames(recs, resp, sugg)
    kwargs.setdefault("min_submitted", 1)
    return consolidate_unpaired(records, responses, suggestions, **kwargs)


def check_accounting(result: c.Consolidation) -> None:
    assert result.kept + sum(result.dropped.values()) == result.total
    assert all(n > 0 for n in result.dropped.values())


# --- policy model -------------------------------------------------------------------------------------


def test_policy_defaults_follow_the_design():
    policy = ConsensusPolicy()
    assert policy.rating.method == "mean" and policy.rating.min_margin == 1.0
    assert policy.ranking.method == "borda"
    assert policy.binary.method == "majority"
    assert (policy.kto.desirable_min, policy.kto.undesirable_max) == (4.0, 2.0)
    assert policy.judge_fallback is False and policy.min_annotators is None


def test_policy_fields_are_documented():
    for model in (ConsensusPolicy, c.RatingPolicy, c.RankingPolicy, c.BinaryPolicy, c.KTOPolicy):
        for name, info in model.model_fields.items():
            assert info.description, f"{model.__name__}.{name} lacks a description"


def test_policy_rejects_unknown_keys_with_the_key_in_the_message():
    with pytest.raises(UsageError, match=r"consensus\.rating\.min_marign"):
        policy_from_mapping({"rating": {"min_marign": 2}})


def test_policy_rejects_inverted_kto_thresholds():
    with pytest.raises(UsageError, match="undesirable_max"):
        policy_from_mapping({"kto": {"desirable_min": 2, "undesirable_max": 3}})


def test_overrides_pick_the_section_by_method_name():
    policy = ConsensusPolicy().with_overrides(method="median", min_margin=2.0, judge_fallback=True)
    assert policy.rating.method == "median"
    assert policy.rating.min_margin == policy.ranking.min_margin == 2.0
    assert policy.judge_fallback is True
    assert ConsensusPolicy().with_overrides(method="unanimous").binary.method == "unanimous"
    with pytest.raises(UsageError, match="Unknown consensus method"):
        ConsensusPolicy().with_overrides(method="vote")


def test_min_annotators_falls_back_to_min_submitted_then_one():
    assert c.resolve_min_annotators(ConsensusPolicy(), 3) == 3
    assert c.resolve_min_annotators(ConsensusPolicy(min_annotators=2), 3) == 2
    assert c.resolve_min_annotators(ConsensusPolicy(), None) == 1


# --- rating -------------------------------------------------------------------------------------------


def test_rating_mean_picks_highest_and_lowest():
    recs = record("r1", ["low", "high", "mid"], models=["m1", "m2", "m3"])
    resp = ratings("r1", "ann", [1, 5, 3]) + ratings("r1", "bob", [2, 4, 3])
    result = pairs(recs, resp)
    row = result.frame.row(0, named=True)
    assert (row["chosen"], row["rejected"]) == ("high", "low")
    assert (row["chosen_model"], row["rejected_model"]) == ("m2", "m1")
    assert (row["chosen_score"], row["rejected_score"], row["margin"]) == (4.5, 1.5, 3.0)
    assert row["n_annotators"] == 2 and row["agreement"] == 1.0 and row["source"] == "human"
    assert row["prompt"] == "Prompt of r1" and row["prompt_id"] == "p-r1" and row["record_id"] == "r1"
    assert row["annotators"] == ["ann", "bob"]
    assert (result.total, result.kept, result.dropped) == (1, 1, {})


def test_rating_median_differs_from_mean():
    recs = record("r1", ["a", "b"])
    resp = ratings("r1", "x", [5, 4]) + ratings("r1", "y", [5, 4]) + ratings("r1", "z", [1, 4])
    mean = pairs(recs, resp, policy=ConsensusPolicy.model_validate({"rating": {"min_margin": 0.1}}))
    assert mean.frame["chosen"].to_list() == ["b"]  # mean 3.67 vs 4
    median = pairs(recs, resp, policy=ConsensusPolicy.model_validate({"rating": {"method": "median"}}))
    assert median.frame["chosen"].to_list() == ["a"]  # median 5 vs 4
    assert median.frame["agreement"].to_list() == [pytest.approx(2 / 3)]


@pytest.mark.parametrize(
    ("values", "reason"),
    [
        ([[3, 3], [4, 4]], c.TIE),
        ([[3, 4], [3, 3]], c.BELOW_MARGIN),
    ],
)
def test_rating_ties_and_small_margins_are_dropped(values, reason):
    recs = record("r1", ["a", "b"])
    resp = ratings("r1", "x", values[0]) + ratings("r1", "y", values[1])
    result = pairs(recs, resp)
    assert result.frame.height == 0 and result.dropped == {reason: 1}


def test_rating_records_without_enough_annotators_are_counted_by_reason():
    recs = record("r1", ["a", "b"]) + record("r2", ["a", "b"]) + record("r3", ["a", "b"])
    resp = (
        ratings("r1", "x", [5, 1])  # one annotator, two required
        + ratings("r2", "x", [5, 1], status="draft")  # nothing submitted
        + ratings("r3", "x", [5, 1], status="discarded")
    )
    result = pairs(recs, resp, min_submitted=2)
    assert result.dropped == {c.TOO_FEW_ANNOTATORS: 1, c.NO_SUBMITTED: 2}
    check_accounting(result)


def test_policy_min_annotators_beats_min_submitted():
    recs = record("r1", ["a", "b"])
    result = pairs(
        recs, ratings("r1", "x", [5, 1]), min_submitted=2, policy=ConsensusPolicy(min_annotators=1)
    )
    assert result.kept == 1


def test_excluded_annotators_are_ignored():
    recs = record("r1", ["a", "b"])
    resp = ratings("r1", "good", [5, 1]) + ratings("r1", "careless", [1, 5])
    assert pairs(recs, resp).dropped == {c.TIE: 1}
    result = pairs(recs, resp, policy=ConsensusPolicy(exclude_annotators=["careless"]))
    assert result.frame["chosen"].to_list() == ["a"]
    assert result.frame["annotators"].to_list() == [["good"]]


def test_agreement_gate_drops_contested_records():
    recs = record("r1", ["a", "b"])
    resp = ratings("r1", "x", [5, 1]) + ratings("r1", "y", [5, 1]) + ratings("r1", "z", [1, 2])
    assert pairs(recs, resp).frame["agreement"].to_list() == [pytest.approx(2 / 3)]
    gated = pairs(recs, resp, policy=ConsensusPolicy(agreement_gate=0.75))
    assert gated.dropped == {c.LOW_AGREEMENT: 1}


def test_identical_texts_and_single_responses_are_dropped():
    recs = record("r1", ["same", " same "]) + record("r2", ["only one"])
    resp = ratings("r1", "x", [5, 1]) + ratings("r2", "x", [5])
    result = pairs(recs, resp)
    assert result.dropped == {c.IDENTICAL: 1, c.FEWER_THAN_TWO: 1}


def test_rounds_select_records():
    recs = record("r1", ["a", "b"], round=1) + record("r2", ["a", "b"], round=2)
    resp = ratings("r1", "x", [5, 1]) + ratings("r2", "x", [1, 5])
    result = pairs(recs, resp, rounds=[2])
    assert result.total == 1 and result.frame["record_id"].to_list() == ["r2"]
    assert result.frame["round"].to_list() == [2]


def test_unknown_template_and_missing_columns_raise():
    recs = record("r1", ["a", "b"], template="essay")
    with pytest.raises(InputError, match="unknown template 'essay'"):
        pairs(recs, [])
    records, responses, _ = frames(record("r1", ["a", "b"]), [])
    with pytest.raises(InputError, match="lacks column"):
        consolidate_pairs(records, responses.drop("annotator"))


@pytest.mark.parametrize("build", [pairs, unpaired])
def test_a_record_without_prompt_id_is_refused_by_name(build):
    # The split and the binary pairing group by prompt id; a sync never leaves it null.
    recs = record("r1", ["a", "b"]) + [
        {**row, "prompt_id": None} for row in record("r2", ["c", "d"]) + record("r3", ["e", "f"])
    ]
    resp = [row for rid in ("r1", "r2", "r3") for row in ratings(rid, "x", [5, 1])]
    with pytest.raises(InputError, match=r"2 record\(s\) have no prompt_id \(r2, r3\).*campaign status"):
        build(recs, resp)


def test_null_prompt_id_outside_the_selected_rounds_is_not_looked_at():
    recs = record("r1", ["a", "b"]) + [
        {**row, "prompt_id": None} for row in record("r2", ["c", "d"], round=2)
    ]
    resp = ratings("r1", "x", [5, 1]) + ratings("r2", "x", [5, 1])
    assert pairs(recs, resp, rounds=[1]).frame["record_id"].to_list() == ["r1"]


def test_null_record_fields_other_than_prompt_id_give_no_crash():
    # Null texts become empty (then refused or dropped as unrated), a null model stays null, and a record
    # without an id gets no votes (votes name their record), so it is dropped as unanswered.
    recs = (
        record("r1", ["a", "b"], models=[None, "m2"])
        + [{**row, "record_id": None} for row in record("r2", ["c", "d"])]
        + [{**row, "response": None} for row in record("r3", ["e", "f"])][:1]
        + record("r3", ["e", "f"])[1:]
    )
    resp = ratings("r1", "x", [5, 1]) + ratings("r3", "x", [5, 1])
    result = pairs(recs, resp)
    check_accounting(result)
    assert result.frame["record_id"].to_list() == ["r1", "r3"]
    assert result.frame["chosen_model"].to_list() == [None, "model-1"]
    assert result.frame["chosen"].to_list() == ["a", ""]
    assert result.dropped == {"no_submitted_responses": 1}
    examples = unpaired(recs, resp)
    check_accounting(examples)
    assert examples.dropped == {"no_submitted_responses": 2, "unrated_response": 1}


# --- judge fallback -----------------------------------------------------------------------------------


def test_judge_fallback_is_off_by_default_and_marked_when_on():
    recs = record("r1", ["a", "b"]) + record("r2", ["a", "b"])
    resp = ratings("r1", "x", [4, 2])
    sugg = [suggestion("r2", "rating_1", 1, "2"), suggestion("r2", "rating_2", 2, "5")]
    off = pairs(recs, resp, sugg)
    assert off.dropped == {c.NO_SUBMITTED: 1}
    on = pairs(recs, resp, sugg, policy=ConsensusPolicy(judge_fallback=True))
    rows = {row["record_id"]: row for row in on.frame.iter_rows(named=True)}
    assert rows["r1"]["source"] == "human"
    assert rows["r2"]["source"] == "judge" and rows["r2"]["chosen"] == "b"
    assert rows["r2"]["agreement"] is None and rows["r2"]["annotators"] == ["judge-model"]
    check_accounting(on)


# --- ranking ------------------------------------------------------------------------------------------


def test_ranking_borda_and_mean_rank():
    recs = record("r1", ["a", "b", "c"], template="ranking")
    resp = ranks("r1", "x", [1, 2, 3]) + ranks("r1", "y", [2, 1, 3]) + ranks("r1", "z", [1, 3, 2])
    borda = pairs(recs, resp).frame.row(0, named=True)
    assert (borda["chosen"], borda["rejected"]) == ("a", "c")
    assert borda["chosen_score"] == pytest.approx(5 / 3) and borda["rejected_score"] == pytest.approx(1 / 3)
    assert borda["agreement"] == 1.0
    mean_rank = pairs(recs, resp, policy=ConsensusPolicy().with_overrides(method="mean_rank"))
    row = mean_rank.frame.row(0, named=True)
    assert (row["chosen"], row["rejected"]) == ("a", "c")
    assert row["chosen_score"] == pytest.approx(4 / 3) and row["margin"] == pytest.approx(4 / 3)


def test_ranking_tie_is_dropped():
    recs = record("r1", ["a", "b"], template="ranking")
    resp = ranks("r1", "x", [1, 2]) + ranks("r1", "y", [2, 1])
    assert pairs(recs, resp).dropped == {c.TIE: 1}


def test_ranking_to_kto_top_true_bottom_false_middle_dropped():
    recs = record("r1", ["a", "b", "c"], template="ranking")
    result = unpaired(recs, ranks("r1", "x", [2, 1, 3]))
    assert dict(zip(result.frame["completion"], result.frame["label"], strict=True)) == {
        "b": True,
        "c": False,
    }
    assert result.dropped == {c.MIDDLE_RANK: 1} and result.total == 3
    check_accounting(result)


# --- KTO from rating ----------------------------------------------------------------------------------


def test_rating_to_kto_thresholds():
    recs = record("r1", ["great", "meh", "bad", "unrated"])
    resp = ratings("r1", "x", [5, 3, 1, None]) + ratings("r1", "y", [4, 3, 2, None])
    result = unpaired(recs, resp)
    got = {row["completion"]: (row["label"], row["score"]) for row in result.frame.iter_rows(named=True)}
    assert got == {"great": (True, 4.5), "bad": (False, 1.5)}
    assert result.dropped == {c.BETWEEN_THRESHOLDS: 1, c.UNRATED: 1}
    assert result.frame.schema["label"] == pl.Boolean
    check_accounting(result)


def test_rating_to_kto_agreement_is_share_on_the_same_side():
    recs = record("r1", ["x"])
    resp = ratings("r1", "a", [5]) + ratings("r1", "b", [5]) + ratings("r1", "c", [3])
    result = unpaired(recs, resp)
    assert result.frame["agreement"].to_list() == [pytest.approx(2 / 3)]


# --- binary -------------------------------------------------------------------------------------------


def test_binary_majority_and_tie():
    recs = record("r1", ["c1"], template="binary") + record("r2", ["c2"], template="binary")
    resp = label("r1", "x", "good") + label("r1", "y", "good") + label("r1", "z", "bad")
    resp += label("r2", "x", "good") + label("r2", "y", "bad")
    result = unpaired(recs, resp)
    assert result.frame.select("record_id", "label", "score").rows() == [("r1", True, pytest.approx(2 / 3))]
    assert result.dropped == {c.TIE: 1}


def test_binary_unanimous_and_min_votes():
    recs = record("r1", ["c1"], template="binary")
    resp = label("r1", "x", "good") + label("r1", "y", "good") + label("r1", "z", "bad")
    strict = unpaired(recs, resp, policy=ConsensusPolicy().with_overrides(method="unanimous"))
    assert strict.dropped == {c.NOT_UNANIMOUS: 1}
    few = unpaired(recs, resp, policy=ConsensusPolicy.model_validate({"binary": {"min_votes": 4}}))
    assert few.dropped == {c.TOO_FEW_ANNOTATORS: 1}


def test_kto_drops_identical_completions_with_both_labels():
    # A record whose two generations are the same text, rated best and worst: no label can be trusted.
    recs = record("r1", ["same", " same "]) + record("r2", ["kept", "worse"])
    resp = ratings("r1", "x", [5, 1]) + ratings("r2", "x", [5, 1])
    result = unpaired(recs, resp)
    assert result.frame.select("record_id", "completion", "label").rows() == [
        ("r2", "kept", True),
        ("r2", "worse", False),
    ]
    assert result.dropped == {c.CONTRADICTORY: 2}
    check_accounting(result)


def test_kto_keeps_one_of_identical_completions_with_the_same_label():
    recs = record("r1", ["same", "same"])
    result = unpaired(recs, ratings("r1", "x", [5, 4]))
    assert result.frame.select("slot", "completion", "label").rows() == [(1, "same", True)]
    assert result.dropped == {c.DUPLICATE: 1}
    check_accounting(result)


def test_kto_compares_binary_completions_across_records_of_a_prompt():
    recs = [
        row
        for rid, text in (("a", "one"), ("b", "one"), ("c", "two"), ("d", "two "))
        for row in record(rid, [text], template="binary", prompt_id="p", prompt="P")
    ]
    resp = (
        label("a", "x", "good") + label("b", "x", "bad") + label("c", "x", "good") + label("d", "x", "good")
    )
    result = unpaired(recs, resp)
    assert result.frame.select("record_id", "completion", "label").rows() == [("c", "two", True)]
    assert result.dropped == {c.CONTRADICTORY: 2, c.DUPLICATE: 1}
    check_accounting(result)


def test_binary_to_dpo_pairs_good_with_bad_per_prompt():
    recs = (
        record("g1", ["good one"], template="binary", prompt_id="p", prompt="P")
        + record("g2", ["good two"], template="binary", prompt_id="p", prompt="P")
        + record("b1", ["bad one"], template="binary", prompt_id="p", prompt="P")
        + record("lonely", ["only good"], template="binary", prompt_id="q", prompt="Q")
    )
    resp = label("g1", "x", "good") + label("g1", "y", "good")
    resp += label("g2", "x", "good") + label("g2", "y", "good") + label("g2", "z", "bad")
    resp += label("b1", "x", "bad") + label("b1", "y", "bad")
    resp += label("lonely", "x", "good")
    result = pairs(recs, resp)
    row = result.frame.row(0, named=True)
    assert result.frame.height == 1
    assert (row["chosen"], row["rejected"], row["record_id"], row["rejected_record_id"]) == (
        "good one",
        "bad one",
        "g1",
        "b1",
    )
    assert row["margin"] == 1.0 and row["prompt"] == "P"
    assert result.kept == 2 and result.dropped == {c.UNPAIRED: 2}
    check_accounting(result)


# --- properties ---------------------------------------------------------------------------------------

rating_values = st.integers(min_value=1, max_value=5)


@st.composite
def rating_data(draw):
    n_records = draw(st.integers(min_value=0, max_value=8))
    recs, resp = [], []
    for i in range(n_records):
        n_slots = draw(st.integers(min_value=1, max_value=4))
        texts = [f"resp {i}-{s}" if draw(st.booleans()) else "dup" for s in range(n_slots)]
        recs += record(f"r{i}", texts, prompt_id=f"p{i % 3}")
        for a in draw(st.lists(st.sampled_from(["a", "b", "c", "d"]), unique=True, max_size=4)):
            values = draw(st.lists(st.one_of(st.none(), rating_values), min_size=n_slots, max_size=n_slots))
            status = draw(st.sampled_from(["submitted", "submitted", "draft", "discarded"]))
            resp += ratings(f"r{i}", a, values, status=status)
    return recs, resp


@given(
    data=rating_data(),
    margin=st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    method=st.sampled_from(["mean", "median"]),
    gate=st.one_of(st.none(), st.floats(min_value=0, max_value=1)),
    min_submitted=st.integers(min_value=1, max_value=3),
)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_rating_invariants(data, margin, method, gate, min_submitted):
    recs, resp = data
    policy = ConsensusPolicy.model_validate(
        {"rating": {"method": method, "min_margin": margin}, "agreement_gate": gate}
    )
    result = pairs(recs, resp, policy=policy, min_submitted=min_submitted)
    check_accounting(result)
    assert result.kept == result.frame.height
    for row in result.frame.iter_rows(named=True):
        assert row["chosen"] != row["rejected"]
        assert row["margin"] >= margin and row["margin"] > 0
        assert row["chosen_score"] > row["rejected_score"]
        assert row["n_annotators"] >= min_submitted
        if gate is not None:
            assert row["agreement"] is None or row["agreement"] >= gate
    kto = unpaired(recs, resp, policy=policy, min_submitted=min_submitted)
    check_accounting(kto)
    assert kto.kept == kto.frame.height
    assert kto.total == len(recs)
    for row in kto.frame.iter_rows(named=True):
        assert row["score"] >= 4 if row["label"] else row["score"] <= 2


@st.composite
def ranking_data(draw):
    n_records = draw(st.integers(min_value=0, max_value=6))
    recs, resp = [], []
    for i in range(n_records):
        n_slots = draw(st.integers(min_value=2, max_value=4))
        recs += record(f"r{i}", [f"t{i}-{s}" for s in range(n_slots)], template="ranking")
        for a in draw(st.lists(st.sampled_from(["a", "b", "c"]), unique=True, max_size=3)):
            order = draw(st.permutations(list(range(1, n_slots + 1))))
            resp += ranks(f"r{i}", a, order)
    return recs, resp


@given(
    data=ranking_data(), method=st.sampled_from(["borda", "mean_rank"]), margin=st.sampled_from([0, 0.5, 1])
)
@settings(max_examples=100, deadline=None)
def test_ranking_invariants(data, method, margin):
    recs, resp = data
    policy = ConsensusPolicy().with_overrides(method=method, min_margin=margin)
    result = pairs(recs, resp, policy=policy)
    check_accounting(result)
    for row in result.frame.iter_rows(named=True):
        assert row["chosen"] != row["rejected"] and row["margin"] >= margin and row["margin"] > 0
    kto = unpaired(recs, resp, policy=policy)
    check_accounting(kto)
    assert kto.frame.height == 2 * result.frame.height


# --- row order ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["as synced", "slot by slot", "rows shuffled"])
def test_examples_come_by_prompt_then_record_id_whatever_order_the_records_come_in(layout):
    # Records written out of record_id order (a sync writes them as the server returns them), with
    # prompts shared between records: the examples still come by prompt id, then record id.
    names = [("r9", "p2"), ("r3", "p1"), ("r7", "p1"), ("r1", "p2"), ("r5", "p1")]
    recs, resp = [], []
    for record_id, prompt_id in names:
        recs += record(record_id, [f"good {record_id}", f"bad {record_id}"], prompt_id=prompt_id)
        for user in ("u1", "u2"):
            resp += ratings(record_id, user, [5, 1])
    records, responses, suggestions = frames(recs, resp)
    if layout == "slot by slot":  # each record's rows apart: its id comes in two runs
        records = records.sort("slot", maintain_order=True)
    elif layout == "rows shuffled":
        records = records.sample(fraction=1.0, shuffle=True, seed=3)
    expected = sorted((p, r) for r, p in names)
    pairs_frame = consolidate_pairs(records, responses, suggestions).frame
    assert list(pairs_frame.select("prompt_id", "record_id").iter_rows()) == expected
    kto = consolidate_unpaired(records, responses, suggestions).frame
    assert list(kto.select("prompt_id", "record_id", "label").iter_rows()) == [
        (p, r, label) for p, r in expected for label in (True, False)
    ]


# --- votes ------------------------------------------------------------------------------------------------


def test_votes_on_unknown_or_null_record_ids_are_ignored():
    recs = record("r1", ["good", "bad"]) + record("r2", ["fine", "poor"])
    resp = ratings("r1", "alice", [5, 1]) + ratings("r1", "bob", [4, 2]) + ratings("r2", "bob", [5, 1])
    records, clean, suggestions = frames(recs, resp)
    # Votes on an unknown record id and on a null one, which would otherwise decide r2.
    stray = frames(recs, ratings("r2", "alice", [1, 5]) * 2)[1].with_columns(
        record_id=pl.Series(["x", "x", None, None], dtype=pl.String)
    )
    with_stray = pl.concat([clean, stray])
    for build in (consolidate_pairs, consolidate_unpaired):
        expected = build(records, clean, suggestions)
        got = build(records, with_stray, suggestions)
        assert got.frame.equals(expected.frame) and got.dropped == expected.dropped


def test_a_repeated_vote_counts_once_and_the_last_row_wins():
    recs = record("r1", ["good", "bad"])
    resp = ratings("r1", "alice", [1, 5]) + ratings("r1", "alice", [5, 1]) + ratings("r1", "bob", [4, 2])
    result = consolidate_pairs(*frames(recs, resp))
    row = result.frame.row(0, named=True)
    assert (row["chosen"], row["n_annotators"], row["annotators"]) == ("good", 2, ["alice", "bob"])
    assert (row["chosen_score"], row["rejected_score"], row["agreement"]) == (4.5, 1.5, 1.0)
