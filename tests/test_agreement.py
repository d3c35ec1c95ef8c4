"""Agreement statistics: hand-computable cases, published reference values and properties."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import krippendorff
import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as scipy_stats

from campaign import agreement as ag
from campaign.errors import InputError, NotFound, UsageError

REFERENCE = Path(__file__).resolve().parents[1].parent / "shared" / "reference" / "agreement"
FIXTURES = Path(__file__).parent / "fixtures" / "agreement"


def long(rows: list[tuple[Any, Any, Any]]) -> pl.DataFrame:
    """A unit/annotator/value frame from literal rows."""
    if not rows:
        return pl.DataFrame(schema={"unit": pl.String, "annotator": pl.String, "value": pl.Int64})
    return pl.DataFrame(rows, schema=["unit", "annotator", "value"], orient="row")


def from_matrix(matrix: list[list[Any]], raters: list[str] | None = None) -> pl.DataFrame:
    """Units x raters (None = missing) -> long frame."""
    raters = raters or [f"r{j}" for j in range(len(matrix[0]))]
    rows = [(str(i), r, v) for i, row in enumerate(matrix) for r, v in zip(raters, row, strict=True)]
    return long([row for row in rows if row[2] is not None])


# Three units, two annotators: (1,1), (1,2), (2,2). By hand: o11 = o22 = 2, o12 = o21 = 1,
# n1 = n2 = 3, n = 6, so alpha = 1 - (n - 1) * 2 / (2 * 3 * 3) = 4/9 for any level (two values).
HALF = [("u1", "a", 1), ("u1", "b", 1), ("u2", "a", 1), ("u2", "b", 2), ("u3", "a", 2), ("u3", "b", 2)]


# ---------------------------------------------------------------- alpha


@pytest.mark.parametrize("level", ["nominal", "ordinal", "interval"])
def test_alpha_hand_computed(level: ag.Level) -> None:
    result = ag.alpha(long(HALF), level=level)
    assert result.value == pytest.approx(4 / 9)
    assert (result.n_units, result.n_annotators, result.n_values) == (3, 2, 6)
    assert result.note is None


def test_alpha_ignores_units_with_a_single_value() -> None:
    result = ag.alpha(long([*HALF, ("u4", "a", 3)]), level="nominal")
    assert result.value == pytest.approx(4 / 9)
    assert result.n_units == 3


def test_alpha_matches_krippendorff_docstring_example() -> None:
    nan = None
    data = [
        [nan, nan, nan, nan, nan, 3, 4, 1, 2, 1, 1, 3, 3, nan, 3],
        [1, nan, 2, 1, 3, 3, 4, 3, nan, nan, nan, nan, nan, nan, nan],
        [nan, nan, 2, 1, 3, 4, 4, nan, 2, 1, 1, 3, 3, nan, 4],
    ]
    frame = from_matrix([list(col) for col in zip(*data, strict=True)])
    assert round(ag.alpha(frame, level="nominal").value or 0, 6) == 0.691358
    assert round(ag.alpha(frame, level="interval").value or 0, 6) == 0.810845


def test_alpha_string_labels_and_json_quotes() -> None:
    frame = long([("u1", "a", '"x"'), ("u1", "b", "x"), ("u2", "a", "x"), ("u2", "b", "y")])
    frame = pl.concat([frame, long([("u3", "a", "y"), ("u3", "b", " y ")])])
    assert ag.alpha(frame, level="nominal").value == pytest.approx(4 / 9)


def test_alpha_numeric_strings_equal_numbers() -> None:
    frame = long([(u, a, str(float(v)) if a == "a" else str(v)) for u, a, v in HALF])
    assert ag.alpha(frame, level="nominal").value == pytest.approx(4 / 9)


def test_alpha_not_enough_data_with_one_pairable_unit() -> None:
    result = ag.alpha(long([("u1", "a", 1), ("u1", "b", 2), ("u2", "a", 1)]), level="nominal")
    assert result.value is None
    assert result.note == "not enough data"
    assert result.n_units == 1
    assert "at least 2" in (result.reason or "")


def test_alpha_not_enough_data_without_variation() -> None:
    result = ag.alpha(long([("u1", "a", 3), ("u1", "b", 3), ("u2", "a", 3), ("u2", "b", 3)]))
    assert result.value is None
    assert result.note == "not enough data"
    assert "no variation" in (result.reason or "")


def test_alpha_to_dict_is_json_ready() -> None:
    data = ag.alpha(long(HALF)).to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["statistic"] == "alpha"
    assert data["level"] == "nominal"
    assert set(data) >= {"value", "n_units", "n_annotators", "n_values", "note", "reason"}


def test_alpha_rejects_non_numeric_values_for_ordinal() -> None:
    with pytest.raises(InputError, match=r"non-numeric value 'good' \(row 2\).*--level nominal"):
        ag.alpha(long([("u1", "a", "1"), ("u1", "b", "good")]), level="ordinal")


def test_alpha_rejects_duplicate_judgements() -> None:
    with pytest.raises(InputError, match="annotator 'a' has 2 values for unit 'u1'"):
        ag.alpha(long([("u1", "a", 1), ("u1", "a", 2), ("u1", "b", 1)]))


def test_alpha_rejects_empty_ids_and_unknown_level() -> None:
    with pytest.raises(InputError, match="column 'unit' is empty in 1 row"):
        ag.alpha(long([(None, "a", 1), ("u1", "b", 1)]))
    with pytest.raises(UsageError, match="unknown level"):
        ag.alpha(long(HALF), level="cardinal")  # type: ignore[arg-type]


def test_alpha_refuses_a_domain_too_large_for_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ag, "MAX_ALPHA_CELLS", 3 * 2**2 - 1)
    with pytest.raises(InputError, match="3 units with 2 distinct values needs too much memory"):
        ag.alpha(long(HALF))


def test_alpha_on_large_data_is_vectorised() -> None:
    rng = np.random.default_rng(1)
    n = 20_000
    frame = pl.DataFrame(
        {
            "unit": np.repeat(np.arange(n), 5).astype(str),
            "annotator": np.tile(np.arange(5), n).astype(str),
            "value": rng.integers(1, 6, size=5 * n),
        }
    )
    result = ag.alpha(frame, level="ordinal")
    assert result.n_units == n
    assert abs(result.value or 1.0) < 0.05


# ---------------------------------------------------------------- Fleiss


def test_fleiss_hand_computed() -> None:
    # counts [2,0], [1,1]: P_i = 1, 0 -> P_bar = 0.5; p = (3/4, 1/4) -> P_e = 10/16; kappa = -1/3
    result = ag.fleiss_kappa_counts([[2, 0], [1, 1]])
    assert result.value == pytest.approx(-1 / 3)
    assert result.details == {"p_bar": 0.5, "p_e": 0.625, "raters_per_unit": 2}
    frame = long([("u1", "a", "x"), ("u1", "b", "x"), ("u2", "a", "x"), ("u2", "b", "y")])
    assert ag.fleiss_kappa(frame).value == pytest.approx(-1 / 3)


def test_fleiss_requires_equal_raters() -> None:
    with pytest.raises(InputError, match="same number of ratings for every unit; units have between 2 and 3"):
        ag.fleiss_kappa(long([*HALF, ("u1", "c", 1)]))


def test_fleiss_not_enough_data() -> None:
    assert ag.fleiss_kappa_counts([[2, 0]]).note == "not enough data"
    assert ag.fleiss_kappa_counts([[2, 0], [2, 0]]).value is None


# ---------------------------------------------------------------- Cohen


def test_cohen_hand_computed() -> None:
    # p_o = 3/4; marginals (1/2, 1/2) and (1/4, 3/4) -> p_e = 1/2; kappa = 1/2
    result = ag.cohen_kappa_codes(np.array([1, 1, 2, 2]), np.array([1, 2, 2, 2]))
    assert result.value == pytest.approx(0.5)
    assert result.details == {"p_o": 0.75, "p_e": 0.5}
    assert (result.name, result.n_units, result.n_annotators) == ("cohen", 4, 2)


@pytest.mark.parametrize(("weights", "expected"), [(None, 0.5), ("linear", 2 / 3), ("quadratic", 0.8)])
def test_cohen_weighted_hand_computed(weights: ag.Weights | None, expected: float) -> None:
    # a = (1, 2, 3), b = (1, 3, 3): sum(w*O) = 1/3 (lin and quad); sum(w*E) = 1 (lin), 5/3 (quad)
    result = ag.cohen_kappa_codes(np.array([1, 2, 3]), np.array([1, 3, 3]), weights=weights)
    assert result.value == pytest.approx(expected)
    # like sklearn, weights use positions in the sorted labels, not the label values
    spaced = ag.cohen_kappa_codes(np.array([1, 2, 5]), np.array([1, 5, 5]), weights=weights)
    assert spaced.value == pytest.approx(expected)


def test_cohen_kappa_on_frame_uses_shared_units_only() -> None:
    frame = long([("u1", "a", 1), ("u1", "b", 1), ("u2", "a", 1), ("u2", "b", 2), ("u3", "a", 2)])
    frame = pl.concat([frame, long([("u3", "b", 2), ("u4", "a", 1), ("u5", "a", 1), ("u6", "b", 2)])])
    result = ag.cohen_kappa(frame)
    assert result.n_units == 3
    # the paired labels are (1,1), (1,2), (2,2): p_o = 2/3, p_e = 2/9 + 2/9 = 4/9 -> kappa = 2/5
    assert result.value == pytest.approx(0.4)


def test_cohen_needs_two_annotators() -> None:
    with pytest.raises(InputError, match="exactly 2 annotators; the data has 3"):
        ag.cohen_kappa(long([*HALF, ("u1", "c", 1)]))
    with pytest.raises(UsageError, match="needs ordered values"):
        ag.cohen_kappa(long(HALF), weights="linear", level="nominal")


def test_cohen_not_enough_data() -> None:
    assert ag.cohen_kappa_codes(np.array([1]), np.array([1])).note == "not enough data"
    constant = ag.cohen_kappa_codes(np.array([1, 1]), np.array([1, 1]))
    assert constant.value is None
    assert "undefined" in (constant.reason or "")


# ---------------------------------------------------------------- Kendall's W


def test_kendall_w_hand_computed_with_ties() -> None:
    # rater a scores (1, 1, 2) -> ranks (1.5, 1.5, 3); rater b ranks (1, 2, 3). R = (2.5, 3.5, 6),
    # S = 6.5, T = 2^3 - 2 = 6, W = 12 * 6.5 / (2^2 * (27 - 3) - 2 * 6) = 78 / 84.
    frame = long([("x", "a", 1), ("y", "a", 1), ("z", "a", 2), ("x", "b", 1), ("y", "b", 2), ("z", "b", 3)])
    result = ag.kendall_w(frame)
    assert result.value == pytest.approx(78 / 84)
    assert result.details["chi2"] == pytest.approx(2 * 2 * 78 / 84)
    assert result.details["df"] == 2
    assert result.details["p_value"] == pytest.approx(scipy_stats.chi2.sf(2 * 2 * 78 / 84, 2))
    assert (result.n_units, result.n_annotators) == (3, 2)


def test_kendall_w_perfect_and_reversed() -> None:
    same = long([(u, r, v) for r in "ab" for u, v in zip("xyz", (1, 2, 3), strict=True)])
    assert ag.kendall_w(same).value == pytest.approx(1.0)
    opposite = long([(u, "a", v) for u, v in zip("xyz", (1, 2, 3), strict=True)])
    opposite = pl.concat([opposite, long([(u, "b", v) for u, v in zip("xyz", (3, 2, 1), strict=True)])])
    assert ag.kendall_w(opposite).value == pytest.approx(0.0)


def test_kendall_w_requires_complete_rankings() -> None:
    frame = long([("x", "a", 1), ("y", "a", 2), ("x", "b", 1)])
    with pytest.raises(InputError, match="annotator 'b' ranked 1 of 2 units"):
        ag.kendall_w(frame)


def test_kendall_w_not_enough_data() -> None:
    one_rater = long([("x", "a", 1), ("y", "a", 2)])
    assert ag.kendall_w(one_rater).note == "not enough data"
    all_tied = long([("x", "a", 1), ("y", "a", 1), ("x", "b", 2), ("y", "b", 2)])
    assert ag.kendall_w(all_tied).value is None


# ---------------------------------------------------------------- compute and read_long


def test_compute_dispatches_and_checks_levels() -> None:
    assert ag.compute(long(HALF), statistic="alpha").value == pytest.approx(4 / 9)
    assert ag.compute(long(HALF), statistic="cohen-quadratic").name == "cohen-quadratic"
    assert ag.compute(long(HALF), statistic="cohen-quadratic").level == "ordinal"
    with pytest.raises(UsageError, match="Fleiss' kappa is for nominal data"):
        ag.compute(long(HALF), statistic="fleiss", level="ordinal")
    with pytest.raises(UsageError, match="needs --level ordinal"):
        ag.compute(long(HALF), statistic="kendall-w", level="nominal")
    with pytest.raises(UsageError, match="unknown statistic"):
        ag.compute(long(HALF), statistic="pearson")


def test_read_long_formats(tmp_path: Path) -> None:
    csv = ag.read_long(FIXTURES / "krippendorff_c.csv")
    assert csv.height == 42
    assert ag.alpha(csv, level="nominal").value == pytest.approx(0.743421052631579)
    jsonl = ag.read_long(FIXTURES / "labels.jsonl", unit_col="item", annotator_col="user", value_col="label")
    assert jsonl.columns == ["item", "user", "label"]
    parquet = tmp_path / "c.parquet"
    csv.with_columns(pl.col("value").cast(pl.Int64, strict=False)).write_parquet(parquet)
    assert ag.alpha(ag.read_long(parquet), level="interval").value == pytest.approx(0.8491071428571428)


def test_read_long_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="no such file"):
        ag.read_long(tmp_path / "missing.csv")
    with pytest.raises(UsageError, match=r"unknown file type '\.xlsx'"):
        ag.read_long(tmp_path / "data.xlsx")
    with pytest.raises(InputError, match="no rows"):
        ag.read_long(FIXTURES / "header_only.csv")
    with pytest.raises(InputError, match=r"missing column\(s\) rater"):
        ag.read_long(FIXTURES / "krippendorff_c.csv", annotator_col="rater")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(InputError):
        ag.read_long(empty)


# ---------------------------------------------------------------- campaign snapshots


def snapshot(
    rows: Sequence[tuple[str, str, int | None, str, str]], status: str = "submitted"
) -> pl.DataFrame:
    """Snapshot responses from (record_id, question, slot, value, annotator) rows."""
    return pl.DataFrame(
        {
            "record_id": [r[0] for r in rows],
            "prompt_id": ["p-" + r[0] for r in rows],
            "round": [1] * len(rows),
            "question": [r[1] for r in rows],
            "slot": pl.Series([r[2] for r in rows], dtype=pl.Int64),
            "value": [r[3] for r in rows],
            "annotator": [r[4] for r in rows],
            "status": [status] * len(rows),
            "updated_at": [datetime(2024, 5, 1, 12, i % 60) for i in range(len(rows))],
        }
    )


def ratings() -> pl.DataFrame:
    """rating_1: (4,4), (4,5), (5,5); rating_2: (5,5), (4,4), (4,5) over records r1..r3."""
    pairs = {"rating_1": [(4, 4), (4, 5), (5, 5)], "rating_2": [(5, 5), (4, 4), (4, 5)]}
    rows = [
        (f"r{i + 1}", q, None, str(v), who)
        for q, values in pairs.items()
        for i, pair in enumerate(values)
        for who, v in zip(("ann", "bob"), pair, strict=True)
    ]
    noise = [("r1", "rating_1", None, "1", "cat"), ("r2", "rating_2", None, "1", "cat")]
    return pl.concat([snapshot(rows), snapshot(noise, status="draft"), snapshot(noise, status="discarded")])


def test_rating_agreement_per_question_and_pooled() -> None:
    result = ag.rating_agreement(ratings())
    assert result["per_question"]["rating_1"].value == pytest.approx(4 / 9)
    assert result["per_question"]["rating_2"].value == pytest.approx(4 / 9)
    # pooled over 6 units: n4 = n5 = 6, four disagreeing pairs -> 1 - 11 * 4 / 72 = 7/18
    assert result["overall"].value == pytest.approx(7 / 18)
    assert result["overall"].n_units == 6
    assert result["overall"].n_annotators == 2


def test_submitted_responses_keeps_latest_and_unquotes() -> None:
    frame = snapshot([("r1", "label", None, '"good"', "ann"), ("r1", "label", None, '"bad"', "ann")])
    kept = ag.submitted_responses(frame)
    assert kept["value"].to_list() == ["bad"]
    with pytest.raises(InputError, match=r"missing column\(s\) status"):
        ag.submitted_responses(frame.drop("status"))


def votes(extra: list[tuple[str, str, int | None, str, str]] | None = None) -> pl.DataFrame:
    """label votes: r1 (good, good), r2 (good, bad), r3 (bad, bad)."""
    rows = [
        ("r1", "label", None, '"good"', "ann"),
        ("r1", "label", None, "good", "bob"),
        ("r2", "label", None, "good", "ann"),
        ("r2", "label", None, "bad", "bob"),
        ("r3", "label", None, "bad", "ann"),
        ("r3", "label", None, "bad", "bob"),
    ]
    return snapshot(rows + (extra or []))


def test_binary_agreement_alpha_and_fleiss() -> None:
    result = ag.binary_agreement(votes())
    assert result["overall"].value == pytest.approx(4 / 9)
    # P_i = (1, 0, 1) -> P_bar = 2/3; p = (1/2, 1/2) -> P_e = 1/2; kappa = 1/3
    assert result["fleiss"].value == pytest.approx(1 / 3)
    assert result["fleiss"].n_units == 3


def test_binary_fleiss_not_applicable_with_unequal_raters() -> None:
    result = ag.binary_agreement(votes([("r1", "label", None, "good", "cat")]))
    assert result["fleiss"].value is None
    assert result["fleiss"].note == "not applicable"
    assert "between 2 and 3" in (result["fleiss"].reason or "")
    assert result["fleiss"].n_annotators == 3
    assert result["overall"].value is not None
    lonely = ag.binary_agreement(snapshot([("r1", "label", None, "good", "ann")]))
    assert lonely["fleiss"].note == "not enough data"
    assert "no item has 2 or more" in (lonely["fleiss"].reason or "")


def rankings() -> pl.DataFrame:
    """r1: ann and bob agree (W = 1); r2: bob reverses ann (W = 0); cat's r1 ranking is incomplete."""
    order = {
        ("r1", "ann"): (1, 2, 3),
        ("r1", "bob"): (1, 2, 3),
        ("r2", "ann"): (1, 2, 3),
        ("r2", "bob"): (3, 2, 1),
    }
    rows = [
        (record, "ranking", slot, str(rank), who)
        for (record, who), ranks in order.items()
        for slot, rank in enumerate(ranks, start=1)
    ]
    return snapshot([*rows, ("r1", "ranking", 1, "2", "cat"), ("r1", "ranking", 2, "1", "cat")])


def test_kendall_w_by_record() -> None:
    per_record = ag.kendall_w_by_record(rankings())
    assert per_record["record_id"].to_list() == ["r1", "r2"]
    assert per_record["w"].to_list() == pytest.approx([1.0, 0.0])
    assert per_record["n_annotators"].to_list() == [2, 2]  # cat's incomplete ranking is left out
    assert per_record["n_slots"].to_list() == [3, 3]


def test_ranking_agreement() -> None:
    result = ag.ranking_agreement(rankings().filter(pl.col("annotator") != "cat"))
    assert result["kendall_w"].value == pytest.approx(0.5)
    assert result["kendall_w"].n_units == 2
    # ordinal alpha on (record, slot): o13 = o31 = 2, n1 = n2 = n3 = 4, d13 = 64, d12 = d23 = 16
    # -> 1 - 256 / (3072 / 11) = 1/12
    assert result["overall"].value == pytest.approx(1 / 12)
    assert result["overall"].n_units == 6


def test_pairwise_cohen_with_min_shared() -> None:
    first = [("u1", "a", 1), ("u2", "a", 1), ("u3", "a", 2), ("u4", "a", 2), ("u1", "b", 1)]
    frame = long([*first, ("u2", "b", 2), ("u3", "b", 2), ("u4", "b", 2), ("u1", "c", 1)])
    pairs = [p.to_dict() for p in ag.pairwise_cohen(frame, level="nominal", min_shared=2)]
    assert len(pairs) == 1
    assert (pairs[0]["annotator_a"], pairs[0]["annotator_b"]) == ("a", "b")
    assert pairs[0]["value"] == pytest.approx(0.5)
    assert pairs[0]["statistic"] == "cohen"
    ordinal = [p.to_dict() for p in ag.pairwise_cohen(frame, level="ordinal", min_shared=1)]
    assert [p["statistic"] for p in ordinal] == ["cohen-quadratic"] * 3
    assert ag.pairwise_cohen(frame, min_shared=5) == []


def test_annotator_agreement_numeric_flags_the_contrarian() -> None:
    up = [1, 2, 3, 4, 5]
    rows = [
        (f"u{i}", who, v + shift) for who, shift in (("a", 0), ("b", 0), ("c", 1)) for i, v in enumerate(up)
    ]
    rows += [(f"u{i}", "d", v) for i, v in enumerate(reversed(up))]
    result = {
        r["annotator"]: r
        for r in (a.to_dict() for a in ag.annotator_agreement(long(rows), level="interval", threshold=0.3))
    }
    assert result["a"]["value"] == pytest.approx(1.0)
    assert result["d"]["value"] == pytest.approx(-1.0)
    assert [result[k]["flagged"] for k in "abcd"] == [False, False, False, True]
    assert result["a"]["statistic"] == "spearman-vs-consensus"
    assert result["a"]["n_units"] == 5


def test_annotator_agreement_nominal() -> None:
    labels = ["g", "g", "b", "b", "g"]
    flipped = {"g": "b", "b": "g"}
    rows = [(f"u{i}", who, v) for who in "abc" for i, v in enumerate(labels)]
    rows += [(f"u{i}", "d", flipped[v]) for i, v in enumerate(labels)]
    result = {r["annotator"]: r for r in (a.to_dict() for a in ag.annotator_agreement(long(rows)))}
    assert result["a"]["value"] == pytest.approx(1.0)
    # d: p_o = 0, p_e = 0.4 * 0.6 + 0.6 * 0.4 = 0.48 -> kappa = -12/13
    assert result["d"]["value"] == pytest.approx(-12 / 13)
    assert result["d"]["flagged"] is True
    few = {r["annotator"]: r for r in (a.to_dict() for a in ag.annotator_agreement(long(rows), min_units=6))}
    assert few["a"]["note"] == "not enough data"
    assert few["a"]["flagged"] is False


def suggestions(values: list[str], agent: str) -> pl.DataFrame:
    """Judge suggestions for rating_1 on records r1..rN."""
    return pl.DataFrame(
        {
            "record_id": [f"r{i + 1}" for i in range(len(values))],
            "question": ["rating_1"] * len(values),
            "slot": pl.Series([None] * len(values), dtype=pl.Int64),
            "value": values,
            "agent": [agent] * len(values),
        }
    )


def test_judge_agreement_ordinal() -> None:
    humans = snapshot(
        [
            (f"r{i + 1}", "rating_1", None, str(v), who)
            for who in ("ann", "bob")
            for i, v in enumerate([1, 2, 4, 5])
        ]
    )
    judged = pl.concat(
        [suggestions(["1", "2", "4", "5"], "judge-a"), suggestions(["5", "4", "2", "1"], "judge-b")]
    )
    result = {r["agent"]: r for r in (j.to_dict() for j in ag.judge_agreement(humans, judged))}
    assert result["judge-a"]["alpha"]["value"] == pytest.approx(1.0)
    assert result["judge-a"]["spearman"]["value"] == pytest.approx(1.0)
    assert result["judge-a"]["kendall_tau"]["value"] == pytest.approx(1.0)
    assert result["judge-b"]["spearman"]["value"] == pytest.approx(-1.0)
    assert result["judge-b"]["alpha"]["n_units"] == 4


def test_judge_agreement_nominal_uses_majority() -> None:
    judged = pl.DataFrame(
        {
            "record_id": ["r1", "r2", "r3"],
            "question": ["label"] * 3,
            "slot": pl.Series([None] * 3, dtype=pl.Int64),
            "value": ['"good"', "good", "bad"],
            "agent": ["judge"] * 3,
        }
    )
    (result,) = [j.to_dict() for j in ag.judge_agreement(votes(), judged, level="nominal")]
    # r2 is a tie between humans, so only r1 and r3 have a majority: judge agrees on both
    assert result["alpha"]["n_units"] == 2
    assert result["alpha"]["value"] == pytest.approx(1.0)
    assert "spearman" not in result


def test_campaign_agreement_rating_report() -> None:
    judged = suggestions(["4", "4", "5"], "judge")
    report = ag.campaign_agreement(ratings(), "rating", judged, min_shared=2).to_dict()
    assert json.loads(json.dumps(report)) == report
    assert report["template"] == "rating"
    assert report["level"] == "ordinal"
    assert (report["n_records"], report["n_annotators"], report["n_responses"]) == (3, 2, 6)
    assert report["overall"]["value"] == pytest.approx(7 / 18)
    assert set(report["per_question"]) == {"rating_1", "rating_2"}
    assert report["fleiss"] is None
    assert report["kendall_w"] is None
    assert len(report["pairwise"]) == 1
    assert report["pairwise"][0]["statistic"] == "cohen-quadratic"
    assert [a["annotator"] for a in report["annotators"]] == ["ann", "bob"]
    assert report["judge"][0]["agent"] == "judge"


def test_campaign_agreement_binary_and_ranking() -> None:
    binary = ag.campaign_agreement(votes(), "binary").to_dict()
    assert binary["fleiss"]["value"] == pytest.approx(1 / 3)
    assert binary["level"] == "nominal"
    assert binary["judge"] == []
    ranking = ag.campaign_agreement(rankings(), "ranking").to_dict()
    assert ranking["kendall_w"]["value"] == pytest.approx(0.5)
    assert ranking["per_question"]["ranking"]["statistic"] == "alpha"


def test_campaign_agreement_empty_and_bad_template() -> None:
    empty = ratings().filter(pl.col("status") == "draft")
    report = ag.campaign_agreement(empty, "rating").to_dict()
    assert report["overall"]["value"] is None
    assert report["overall"]["note"] == "not enough data"
    assert report["pairwise"] == []
    with pytest.raises(UsageError, match="unknown template 'poll'"):
        ag.campaign_agreement(ratings(), "poll")


# ---------------------------------------------------------------- published reference values


def reference_files() -> list[Path]:
    """The published examples beside the repository, or a skip when the folder is absent."""
    if not REFERENCE.is_dir():
        pytest.skip(f"reference folder {REFERENCE} is absent (it sits beside the repository as shared/)")
    return sorted(REFERENCE.glob("*.json"))


def reference_to_long(doc: dict[str, Any]) -> pl.DataFrame:
    """Any reference data format -> unit/annotator/value rows."""
    if "ratings_units_x_raters" in doc:
        matrix = doc["ratings_units_x_raters"]
        return from_matrix(matrix, [str(r) for r in doc.get("raters") or range(len(matrix[0]))])
    if "contingency_table" in doc:
        labels = doc.get("labels") or list(range(len(doc["contingency_table"])))
        rows: list[tuple[Any, Any, Any]] = []
        for i, row in enumerate(doc["contingency_table"]):
            for j, count in enumerate(row):
                for _ in range(count):
                    unit = str(len(rows) // 2)
                    rows += [(unit, "A", labels[i]), (unit, "B", labels[j])]
        return long(rows)
    if "category_counts_units_x_categories" in doc:
        rows = []
        for i, counts in enumerate(doc["category_counts_units_x_categories"]):
            given = [c for c, n in enumerate(counts) for _ in range(n)]
            rows += [(str(i), f"rater{k}", category) for k, category in enumerate(given)]
        return long(rows)
    pytest.fail(f"unknown reference data format: {doc.get('data_format')}")


def reference_cases() -> list[tuple[str, str, str | None, str, float, int]]:
    """(file, CLI statistic, level, output key, published value, decimals) for every published result."""
    cases = []
    for path in reference_files():
        doc = json.loads(path.read_text())
        for result in doc["results"]:
            key = result["statistic"].split()[0].lower()
            level = (result.get("level_of_measurement") or "").split(" ")[0] or None
            weights = result.get("weights") or re.search(
                r"weights='?(linear|quadratic)", result.get("library", "")
            )
            if isinstance(weights, re.Match):
                weights = weights.group(1)
            statistic, field = {
                "krippendorff_alpha": ("alpha", "value"),
                "cohen_kappa": ("cohen" if not weights else f"cohen-{weights}", "value"),
                "fleiss_kappa": ("fleiss", "value"),
                "p_bar": ("fleiss", "p_bar"),
                "p_e_bar": ("fleiss", "p_e"),
                "kendall_w": ("kendall-w", "value"),
                "kendall_chi2": ("kendall-w", "chi2"),
                "p_value": ("kendall-w", "p_value"),
            }.get(key, ("?", key))
            if statistic == "?":
                pytest.fail(f"{path.name}: no mapping for published statistic {result['statistic']!r}")
            if statistic != "alpha":
                level = None
            cases.append(
                (path.name, statistic, level, field, result["published_value"], result["published_decimals"])
            )
    return cases


def test_reference_folder_has_examples() -> None:
    assert len(reference_files()) >= 4


@pytest.mark.parametrize("case", reference_cases() if REFERENCE.is_dir() else [], ids=str)
def test_reference_values(case: tuple[str, str, str | None, str, float, int]) -> None:
    name, statistic, level, field, published, decimals = case
    doc = json.loads((REFERENCE / name).read_text())
    result = ag.compute(reference_to_long(doc), statistic=statistic, level=level).to_dict()  # type: ignore[arg-type]
    assert round(result[field], decimals) == round(published, decimals)


def test_reference_cohen_intermediates() -> None:
    for path in reference_files():
        doc = json.loads(path.read_text())
        if "contingency_table" in doc and "p_o" in doc.get("published_intermediates", {}):
            result = ag.cohen_kappa(reference_to_long(doc))
            assert result.details["p_o"] == pytest.approx(doc["published_intermediates"]["p_o"])
            assert result.details["p_e"] == pytest.approx(doc["published_intermediates"]["p_e"])


# ---------------------------------------------------------------- properties


matrices = st.integers(min_value=2, max_value=6).flatmap(
    lambda raters: st.lists(
        st.lists(st.one_of(st.none(), st.integers(1, 5)), min_size=raters, max_size=raters),
        min_size=2,
        max_size=12,
    )
)


@settings(max_examples=60, deadline=None)
@given(matrices, st.sampled_from(["nominal", "ordinal", "interval", "ratio"]), st.randoms())
def test_alpha_matches_reliability_matrix_and_ignores_annotator_order(
    matrix: list[list[int | None]], level: ag.Level, rnd: Any
) -> None:
    frame = from_matrix(matrix)
    result = ag.alpha(frame, level=level)
    data = np.array([[np.nan if v is None else v for v in row] for row in matrix], dtype=float).T
    pairable = (~np.isnan(data)).sum(axis=0) >= 2
    try:
        with np.errstate(divide="ignore", invalid="ignore"):
            expected = float(
                krippendorff.alpha(reliability_data=data[:, pairable], level_of_measurement=level)
            )
    except ValueError:
        expected = float("nan")
    if result.value is None:
        assert (
            pairable.sum() < 2
            or not np.isfinite(expected)
            or np.unique(data[:, pairable][~np.isnan(data[:, pairable])]).size < 2
        )
    else:
        assert result.value == pytest.approx(expected)
    names = [f"r{j}" for j in range(len(matrix[0]))]
    shuffled = names[:]
    rnd.shuffle(shuffled)
    renamed = frame.with_columns(pl.col("annotator").replace(dict(zip(names, shuffled, strict=True))))
    renamed = renamed.sample(fraction=1.0, shuffle=True, seed=rnd.randint(0, 1000))
    assert ag.alpha(renamed, level=level).value == pytest.approx(result.value)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(1, 5), min_size=2, max_size=10).filter(lambda v: len(set(v)) >= 2),
    st.integers(min_value=2, max_value=5),
)
def test_perfect_agreement_is_one(truth: list[int], raters: int) -> None:
    frame = long([(str(i), f"r{j}", v) for i, v in enumerate(truth) for j in range(raters)])
    for level in ag.LEVELS:
        assert ag.alpha(frame, level=level).value == pytest.approx(1.0)  # type: ignore[arg-type]
    assert ag.fleiss_kappa(frame).value == pytest.approx(1.0)
    assert ag.kendall_w(frame).value == pytest.approx(1.0)
    if raters == 2:
        for statistic in ("cohen", "cohen-linear", "cohen-quadratic"):
            assert ag.compute(frame, statistic=statistic).value == pytest.approx(1.0)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(3, 7).flatmap(
        lambda n: st.lists(st.lists(st.integers(1, 4), min_size=n, max_size=n), min_size=2, max_size=5)
    )
)
def test_kendall_w_equals_friedman_chi2_over_m_n_minus_1(rows: list[list[int]]) -> None:
    frame = long([(f"o{i}", f"r{j}", v) for j, row in enumerate(rows) for i, v in enumerate(row)])
    result = ag.kendall_w(frame)
    m, n = len(rows), len(rows[0])
    if result.value is None:
        assert all(len(set(row)) == 1 for row in rows)
        return
    chi2, _ = scipy_stats.friedmanchisquare(*np.array(rows, dtype=float).T)
    assert result.value == pytest.approx(chi2 / (m * (n - 1)))
    assert result.details["chi2"] == pytest.approx(chi2)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 4)), min_size=2, max_size=20))
def test_cohen_is_symmetric(pairs: list[tuple[int, int]]) -> None:
    a, b = np.array([p[0] for p in pairs]), np.array([p[1] for p in pairs])
    for weights in (None, "linear", "quadratic"):
        forward = ag.cohen_kappa_codes(a, b, weights=weights)
        backward = ag.cohen_kappa_codes(b, a, weights=weights)
        assert (forward.value is None) == (backward.value is None)
        if forward.value is not None:
            assert forward.value == pytest.approx(backward.value)
            assert -1.0 - 1e-9 <= forward.value <= 1.0 + 1e-9
