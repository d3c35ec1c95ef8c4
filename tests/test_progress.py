"""Progress over literal snapshot frames: every count checked against hand-computed values."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import polars as pl
import pytest

from campaign.errors import InputError, UsageError
from campaign.progress import Progress, compute_progress
from campaign.snapshot import Snapshot, conform, empty_table

NOW = datetime(2024, 5, 10, 12, 0, tzinfo=UTC)


def at(day: int, hour: int = 10) -> datetime:
    return datetime(2024, 5, day, hour, 0, tzinfo=UTC)


def rec(
    rid: str, *, round: int = 1, status: str = "pending", template: str = "rating", slots: int = 2
) -> list[dict]:
    """Record rows, one per slot, in the records schema."""
    return [
        {
            "record_id": rid,
            "prompt_id": f"p-{rid}",
            "round": round,
            "template": template,
            "prompt": f"prompt {rid}",
            "slot": slot,
            "response": f"response {slot}",
            "model": f"model-{slot}",
            "status": status,
            "inserted_at": at(1, 0),
            "updated_at": at(1, 0),
        }
        for slot in range(1, slots + 1)
    ]


def resp(
    rid: str,
    annotator: str,
    question: str | None,
    slot: int | None,
    value: str | None,
    status: str,
    when: datetime,
) -> dict[str, Any]:
    return {
        "record_id": rid,
        "prompt_id": f"p-{rid}",
        "round": None,
        "question": question,
        "slot": slot,
        "value": value,
        "annotator": annotator,
        "status": status,
        "updated_at": when,
    }


def rate(
    rid: str, annotator: str, values: list[int], when: datetime, status: str = "submitted"
) -> list[dict]:
    """One rating response: one row per slot."""
    return [
        resp(rid, annotator, f"rating_{s}", s, str(v), status, when) for s, v in enumerate(values, start=1)
    ]


def rank(
    rid: str, annotator: str, values: list[int], when: datetime, status: str = "submitted"
) -> list[dict]:
    return [resp(rid, annotator, "ranking", s, str(v), status, when) for s, v in enumerate(values, start=1)]


def vote(rid: str, annotator: str, value: str, when: datetime, status: str = "submitted") -> list[dict]:
    return [resp(rid, annotator, "label", None, value, status, when)]


def make_snapshot(
    records: list[dict], responses: list[dict], syncs: list[dict] | None = None, **meta: Any
) -> Snapshot:
    """A Snapshot in the store's schemas; response rounds are filled from the records."""
    rounds = {r["record_id"]: r["round"] for r in records}
    responses = [{**r, "round": rounds.get(r["record_id"])} for r in responses]
    return Snapshot(
        records=conform(pl.DataFrame(records), "records") if records else empty_table("records"),
        responses=conform(pl.DataFrame(responses), "responses") if responses else empty_table("responses"),
        syncs=conform(pl.DataFrame(syncs), "syncs") if syncs else empty_table("syncs"),
        meta={
            "snapshot_id": "snap-7",
            "synced_at": "2024-05-10T12:00:00+00:00",
            "dataset": "haiku-dpo",
            "workspace": "community",
            "template": "rating",
            "min_submitted": 2,
            **meta,
        },
    )


def rating_snapshot(**meta: Any) -> Snapshot:
    """Five rating records over two rounds; see the hand-computed expectations in the tests."""
    records = rec("r1", status="completed") + rec("r2") + rec("r3") + rec("r4", round=2) + rec("r5", round=2)
    responses = (
        rate("r1", "alice", [5, 4], at(9, 10))
        + rate("r1", "bob", [4, 4], at(9, 11))
        + rate("r1", "carol", [2, 4], at(1, 9))  # outside the 7-day window
        + rate("r2", "alice", [3, 3], at(8, 10))
        + rate("r2", "bob", [1, 1], at(8, 12), status="draft")
        + [resp("r3", "alice", None, None, None, "discarded", at(7, 10))]  # discarded, no values
        + rate("r4", "alice", [1, 5], at(6, 10))
        + rate("r4", "bob", [2, 3], at(6, 11))
    )
    syncs = [
        {
            "sync_id": "s2",
            "synced_at": at(9, 0),
            "n_records": 5,
            "n_responses": 5,
            "completed": 1,
            "pending": 4,
        },
        {
            "sync_id": "s1",
            "synced_at": at(5, 0),
            "n_records": 5,
            "n_responses": 0,
            "completed": 0,
            "pending": 5,
        },
    ]
    return make_snapshot(records, responses, syncs, **meta)


def test_totals_against_min_submitted():
    out = compute_progress(rating_snapshot(), now=NOW).to_dict()
    assert out["min_submitted"] == 2
    assert out["totals"] == {
        "records": 5,
        "completed": 2,  # r1 (3 submitted) and r4 (2)
        "pending": 3,
        "completed_share": 0.4,
        "remaining_submissions": 5,  # r2 needs 1, r3 and r5 need 2 each
        "responses": {"submitted": 6, "draft": 1, "discarded": 1, "total": 8},
        "argilla_status": {"completed": 1, "pending": 4},
    }


def test_min_submitted_override_and_meta():
    out = compute_progress(rating_snapshot(min_submitted=3), now=NOW).to_dict()
    assert (out["totals"]["completed"], out["totals"]["remaining_submissions"]) == (1, 0 + 2 + 3 + 1 + 3)
    out = compute_progress(rating_snapshot(), now=NOW, min_submitted=1).to_dict()
    assert (out["totals"]["completed"], out["totals"]["pending"]) == (3, 2)


def test_per_round():
    assert compute_progress(rating_snapshot(), now=NOW).to_dict()["rounds"] == [
        {
            "round": 1,
            "records": 3,
            "completed": 1,
            "pending": 2,
            "remaining_submissions": 3,
            "submitted": 4,
            "argilla_completed": 1,
            "conflicts": 1,
        },
        {
            "round": 2,
            "records": 2,
            "completed": 1,
            "pending": 1,
            "remaining_submissions": 2,
            "submitted": 2,
            "argilla_completed": 0,
            "conflicts": 1,
        },
    ]


def test_annotators_count_responses_not_value_rows():
    board = compute_progress(rating_snapshot(), now=NOW).to_dict()["annotators"]
    assert board == [
        {
            "rank": 1,
            "annotator": "alice",
            "submitted": 3,
            "draft": 0,
            "discarded": 1,
            "share": 0.5,
            "last_activity": "2024-05-09T10:00:00+00:00",
            "active_days": 4,
        },
        {
            "rank": 2,
            "annotator": "bob",
            "submitted": 2,
            "draft": 1,
            "discarded": 0,
            "share": pytest.approx(2 / 6),
            "last_activity": "2024-05-09T11:00:00+00:00",
            "active_days": 3,
        },
        {
            "rank": 3,
            "annotator": "carol",
            "submitted": 1,
            "draft": 0,
            "discarded": 0,
            "share": pytest.approx(1 / 6),
            "last_activity": "2024-05-01T09:00:00+00:00",
            "active_days": 1,
        },
    ]


def test_velocity_and_eta_with_fixed_now():
    velocity = compute_progress(rating_snapshot(), now=NOW).to_dict()["velocity"]
    assert velocity["window_days"] == 7
    assert velocity["submitted_in_window"] == 5  # carol's submission on May 1 is outside
    assert velocity["per_day"] == pytest.approx(5 / 7)
    assert velocity["remaining_submissions"] == 5
    assert velocity["eta_days"] == pytest.approx(7.0)
    assert velocity["eta_date"] == "2024-05-17"
    assert velocity["daily"] == [
        {"date": "2024-05-04", "submitted": 0},
        {"date": "2024-05-05", "submitted": 0},
        {"date": "2024-05-06", "submitted": 2},
        {"date": "2024-05-07", "submitted": 0},
        {"date": "2024-05-08", "submitted": 1},
        {"date": "2024-05-09", "submitted": 2},
        {"date": "2024-05-10", "submitted": 0},
    ]


def test_velocity_window_is_a_parameter():
    velocity = compute_progress(rating_snapshot(), now=NOW, window_days=2).to_dict()["velocity"]
    # (May 8 12:00, May 10 12:00]: alice and bob on r1 (May 9); alice on r2 at May 8 10:00 is out.
    assert velocity["submitted_in_window"] == 2
    assert velocity["per_day"] == 1.0
    assert velocity["eta_days"] == 5.0 and velocity["eta_date"] == "2024-05-15"
    assert [d["date"] for d in velocity["daily"]] == ["2024-05-09", "2024-05-10"]


def test_no_recent_submissions_gives_no_eta():
    velocity = compute_progress(rating_snapshot(), now=NOW + timedelta(days=30)).to_dict()["velocity"]
    assert velocity["per_day"] == 0 and velocity["eta_days"] is None and velocity["eta_date"] is None


def new_campaign(opened: datetime, submissions: list[datetime], n_records: int = 200) -> Snapshot:
    """A binary campaign whose records were inserted at `opened`, with one vote per submission time."""
    records = [{**row, "inserted_at": opened} for i in range(n_records) for row in rec(f"b{i}", slots=1)]
    votes = [row for i, when in enumerate(submissions) for row in vote(f"b{i}", "alice", "good", when)]
    return make_snapshot(records, votes, template="binary")


def test_velocity_of_a_new_campaign_counts_only_the_minutes_it_existed():
    # Six votes in the ten minutes since seeding: the old fixed 7-day window said 0.9/day, ETA in 459 days.
    opened = NOW - timedelta(minutes=10)
    snap = new_campaign(opened, [opened + timedelta(minutes=m) for m in (1, 2, 3, 5, 8, 9)])
    velocity = compute_progress(snap, now=NOW).to_dict()["velocity"]
    assert velocity["submitted_in_window"] == 6
    assert velocity["observed_from"] == "2024-05-10T11:50:00+00:00"
    assert velocity["observed_days"] == pytest.approx(10 / (24 * 60))
    assert velocity["min_observed_days"] == 1.0
    assert velocity["per_day"] == 6.0  # under a day observed: counted per one day, never extrapolated
    assert velocity["eta_days"] is None and velocity["eta_date"] is None


def test_velocity_after_two_days_uses_two_days_not_the_window():
    opened = NOW - timedelta(days=2)
    snap = new_campaign(opened, [opened + timedelta(hours=4 * h) for h in range(10)], n_records=60)
    velocity = compute_progress(snap, now=NOW).to_dict()["velocity"]
    assert velocity["observed_days"] == 2.0 and velocity["observed_from"] == "2024-05-08T12:00:00+00:00"
    assert velocity["per_day"] == 5.0  # 10 submissions over 2 days, not over 7
    assert velocity["remaining_submissions"] == 60 * 2 - 10
    assert velocity["eta_days"] == 22.0 and velocity["eta_date"] == "2024-06-01"


def test_velocity_span_is_capped_at_the_window():
    velocity = compute_progress(rating_snapshot(), now=NOW).to_dict()["velocity"]
    # records were inserted on May 1, more than 7 days before NOW
    assert velocity["observed_from"] == "2024-05-03T12:00:00+00:00" and velocity["observed_days"] == 7.0


def test_velocity_opens_at_the_first_response_when_records_have_no_time():
    opened = NOW - timedelta(hours=30)
    snap = new_campaign(opened, [opened, opened + timedelta(hours=6), NOW - timedelta(hours=1)], n_records=3)
    snap = Snapshot(
        records=snap.records.with_columns(inserted_at=None),
        responses=snap.responses,
        meta=snap.meta,
    )
    velocity = compute_progress(snap, now=NOW).to_dict()["velocity"]
    assert velocity["observed_days"] == 1.25 and velocity["submitted_in_window"] == 3
    assert velocity["per_day"] == pytest.approx(3 / 1.25)
    assert velocity["eta_days"] == pytest.approx(3 / (3 / 1.25))


def test_now_defaults_to_synced_at_and_naive_is_utc():
    snap = rating_snapshot()
    assert compute_progress(snap).to_dict()["as_of"] == "2024-05-10T12:00:00+00:00"
    assert (
        compute_progress(snap).to_dict() == compute_progress(snap, now=datetime(2024, 5, 10, 12, 0)).to_dict()
    )


def test_rating_conflicts_and_threshold():
    conflicts = compute_progress(rating_snapshot(), now=NOW).to_dict()["conflicts"]
    assert conflicts == {
        "records": 2,
        "by_question": {"rating_1": 1, "rating_2": 1},  # r1: 5 vs 2; r4: 5 vs 3
        "record_ids": ["r1", "r4"],
        "checked": 2,
        "rating_threshold": 2.0,
    }
    assert compute_progress(rating_snapshot(), now=NOW, rating_threshold=3).to_dict()["conflicts"][
        "record_ids"
    ] == ["r1"]
    assert (
        compute_progress(rating_snapshot(), now=NOW, rating_threshold=4).to_dict()["conflicts"]["records"]
        == 0
    )


def test_binary_conflicts():
    records = rec("b1", template="binary", slots=1) + rec("b2", template="binary", slots=1)
    records += rec("b3", template="binary", slots=1)
    responses = (
        vote("b1", "alice", "good", at(9))
        + vote("b1", "bob", "good", at(9))
        + vote("b2", "alice", "good", at(9))
        + vote("b2", "bob", "bad", at(9))
        + vote("b3", "alice", '"bad"', at(9))  # JSON-quoted values are the same label
        + vote("b3", "bob", "bad", at(9))
        + vote("b3", "carol", "good", at(9), status="draft")  # drafts never conflict
    )
    out = compute_progress(make_snapshot(records, responses, template="binary"), now=NOW).to_dict()
    assert out["conflicts"]["records"] == 1
    assert out["conflicts"]["by_question"] == {"label": 1}
    assert out["conflicts"]["record_ids"] == ["b2"]
    assert out["totals"]["completed"] == 3
    assert out["totals"]["responses"] == {"submitted": 6, "draft": 1, "discarded": 0, "total": 7}


def test_ranking_conflicts_compare_top_choices():
    records = [row for rid in ("k1", "k2", "k3", "k4") for row in rec(rid, template="ranking", slots=3)]
    responses = (
        rank("k1", "alice", [1, 2, 3], at(9))
        + rank("k1", "bob", [1, 3, 2], at(9))  # same top, different order below: no conflict
        + rank("k2", "alice", [1, 2, 3], at(9))
        + rank("k2", "bob", [2, 1, 3], at(9))  # different top: conflict
        + rank("k3", "alice", [1, 1, 2], at(9))
        + rank("k3", "bob", [1, 2, 3], at(9))  # tied top {1, 2} vs {1}: conflict
        + rank("k4", "alice", [1, 1, 2], at(9))
        + rank("k4", "bob", [1, 1, 3], at(9))  # same tied top: no conflict
    )
    out = compute_progress(make_snapshot(records, responses, template="ranking"), now=NOW).to_dict()
    assert out["conflicts"]["record_ids"] == ["k2", "k3"]
    assert out["conflicts"]["by_question"] == {"ranking": 2}
    assert out["conflicts"]["checked"] == 4
    assert out["totals"]["responses"]["submitted"] == 8


def test_over_time_from_syncs_oldest_first():
    assert compute_progress(rating_snapshot(), now=NOW).to_dict()["over_time"] == [
        {
            "sync_id": "s1",
            "synced_at": "2024-05-05T00:00:00+00:00",
            "n_records": 5,
            "n_responses": 0,
            "completed": 0,
            "pending": 5,
        },
        {
            "sync_id": "s2",
            "synced_at": "2024-05-09T00:00:00+00:00",
            "n_records": 5,
            "n_responses": 5,
            "completed": 1,
            "pending": 4,
        },
    ]


def test_empty_snapshot_gives_zeros_and_none():
    out = compute_progress(Snapshot(meta={"min_submitted": 2}), now=NOW).to_dict()
    assert out["totals"] == {
        "records": 0,
        "completed": 0,
        "pending": 0,
        "completed_share": 0.0,
        "remaining_submissions": 0,
        "responses": {"submitted": 0, "draft": 0, "discarded": 0, "total": 0},
        "argilla_status": {"completed": 0, "pending": 0},
    }
    assert out["rounds"] == [] and out["annotators"] == [] and out["over_time"] == []
    assert out["velocity"]["per_day"] == 0 and out["velocity"]["submitted_in_window"] == 0
    assert out["velocity"]["eta_days"] is None and out["velocity"]["eta_date"] is None
    assert all(day["submitted"] == 0 for day in out["velocity"]["daily"])
    assert out["conflicts"]["records"] == 0 and out["conflicts"]["record_ids"] == []
    json.dumps(out)


def test_records_without_responses():
    snap = make_snapshot(rec("r1") + rec("r2", round=2), [])
    out = compute_progress(snap, now=NOW).to_dict()
    assert (out["totals"]["records"], out["totals"]["pending"], out["totals"]["remaining_submissions"]) == (
        2,
        2,
        4,
    )
    assert [r["round"] for r in out["rounds"]] == [1, 2]
    assert out["velocity"]["eta_days"] is None


def test_records_known_only_from_responses_are_counted():
    snap = make_snapshot(
        rec("r1"), rate("ghost", "alice", [3, 3], at(9)) + rate("ghost", "bob", [3, 3], at(9))
    )
    totals = compute_progress(snap, now=NOW).to_dict()["totals"]
    assert (totals["records"], totals["completed"]) == (2, 1)


def test_output_is_json_serialisable():
    out = compute_progress(rating_snapshot(), now=NOW).to_dict()
    assert json.loads(json.dumps(out)) == out


def test_from_dict_rebuilds_the_progress():
    progress = compute_progress(rating_snapshot(), now=NOW)
    assert Progress.from_dict(json.loads(json.dumps(progress.to_dict()))) == progress


def test_bad_arguments():
    with pytest.raises(InputError, match="min_submitted"):
        compute_progress(rating_snapshot(min_submitted=None), now=NOW).to_dict()
    with pytest.raises(InputError, match="positive integer"):
        compute_progress(rating_snapshot(min_submitted=0), now=NOW).to_dict()
    with pytest.raises(UsageError, match="window_days"):
        compute_progress(rating_snapshot(), now=NOW, window_days=0).to_dict()
    with pytest.raises(UsageError, match="rating_threshold"):
        compute_progress(rating_snapshot(), now=NOW, rating_threshold=0).to_dict()


def big_snapshot(n_records: int = 20_000, annotators: int = 3, slots: int = 2) -> Snapshot:
    """A rating campaign of n records x annotators x slots value rows, built with polars."""
    ids = pl.int_range(0, n_records, eager=True)
    records = (
        pl.DataFrame({"i": ids})
        .join(pl.DataFrame({"slot": list(range(1, slots + 1))}), how="cross")
        .select(
            record_id=pl.format("r{}", "i"),
            prompt_id=pl.format("p{}", "i"),
            round=pl.col("i") % 3 + 1,
            template=pl.lit("rating"),
            prompt=pl.lit("prompt"),
            slot="slot",
            response=pl.lit("response"),
            model=pl.lit("model"),
            status=pl.lit("pending"),
            inserted_at=pl.lit(at(1)),
            updated_at=pl.lit(at(1)),
        )
    )
    responses = (
        pl.DataFrame({"i": ids})
        .join(pl.DataFrame({"a": list(range(annotators))}), how="cross")
        .join(pl.DataFrame({"slot": list(range(1, slots + 1))}), how="cross")
        .select(
            record_id=pl.format("r{}", "i"),
            prompt_id=pl.format("p{}", "i"),
            round=pl.col("i") % 3 + 1,
            question=pl.format("rating_{}", "slot"),
            slot="slot",
            value=((pl.col("i") * 7 + pl.col("a") * 3 + pl.col("slot")) % 5 + 1).cast(pl.String),
            annotator=pl.format("annotator-{}", "a"),
            status=pl.when((pl.col("i") + pl.col("a")) % 4 == 0)
            .then(pl.lit("draft"))
            .otherwise(pl.lit("submitted")),
            updated_at=pl.lit(at(1)) + pl.duration(minutes=pl.col("i") + pl.col("a")),
        )
    )
    return Snapshot(
        records=conform(records, "records"),
        responses=conform(responses, "responses"),
        meta={"min_submitted": 2, "template": "rating", "synced_at": "2024-05-20T00:00:00+00:00"},
    )


def test_counts_at_20k_records_by_3_annotators():
    # Speed is measured by benchmarks/status.py, not here; this checks the counts at scale.
    snap = big_snapshot()
    out = compute_progress(snap).to_dict()
    assert out["totals"]["records"] == 20_000
    # (i + a) % 4 == 0 is a draft: exactly one of any 4 consecutive (i + a) values.
    drafts = sum(1 for i in range(20_000) for a in range(3) if (i + a) % 4 == 0)
    assert out["totals"]["responses"]["draft"] == drafts
    assert out["totals"]["responses"]["submitted"] == 60_000 - drafts
