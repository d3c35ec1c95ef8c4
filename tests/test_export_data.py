"""Builders of literal snapshot frames shared by the consensus and export tests (no tests here)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import polars as pl

from campaign.snapshot import Snapshot, conform, empty_table

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(
    rid: str,
    responses: Sequence[str],
    *,
    template: str = "rating",
    prompt: str | None = None,
    prompt_id: str | None = None,
    round: int = 1,
    models: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """Record rows, one per slot."""
    models = models or [f"model-{i}" for i in range(1, len(responses) + 1)]
    return [
        {
            "record_id": rid,
            "prompt_id": prompt_id or f"p-{rid}",
            "round": round,
            "template": template,
            "prompt": prompt if prompt is not None else f"Prompt of {rid}",
            "slot": slot,
            "response": text,
            "model": model,
            "status": "completed",
            "inserted_at": T0,
            "updated_at": T0,
        }
        for slot, (text, model) in enumerate(zip(responses, models, strict=True), start=1)
    ]


def ratings(
    rid: str, annotator: str, values: Sequence[int | None], *, status: str = "submitted"
) -> list[dict]:
    """Response rows of one annotator rating each slot (None leaves a slot unrated)."""
    return [
        _response(rid, f"rating_{slot}", slot, str(v), annotator, status)
        for slot, v in enumerate(values, start=1)
        if v is not None
    ]


def ranks(rid: str, annotator: str, values: Sequence[int], *, status: str = "submitted") -> list[dict]:
    """Response rows of one annotator ranking the slots (rank per slot, 1 = best)."""
    return [
        _response(rid, "ranking", slot, str(v), annotator, status) for slot, v in enumerate(values, start=1)
    ]


def label(rid: str, annotator: str, value: str, *, status: str = "submitted") -> list[dict]:
    """One binary vote."""
    return [_response(rid, "label", None, value, annotator, status)]


def _response(rid: str, question: str, slot: int | None, value: str, annotator: str, status: str) -> dict:
    return {
        "record_id": rid,
        "question": question,
        "slot": slot,
        "value": value,
        "annotator": annotator,
        "status": status,
        "updated_at": T0,
    }


def suggestion(rid: str, question: str, slot: int | None, value: str, agent: str = "judge-model") -> dict:
    """One judge suggestion."""
    return {
        "record_id": rid,
        "question": question,
        "slot": slot,
        "value": value,
        "score": None,
        "agent": agent,
    }


def frames(
    record_rows: Iterable[dict], response_rows: Iterable[dict], suggestion_rows: Iterable[dict] = ()
) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """records, responses (prompt_id, round taken from the records) and suggestions, in snapshot schema."""
    recs = list(record_rows)
    records = conform(pl.DataFrame(recs), "records") if recs else empty_table("records")
    keys = {r["record_id"]: (r["prompt_id"], r["round"]) for r in recs}
    resp = [
        {**r, "prompt_id": keys[r["record_id"]][0], "round": keys[r["record_id"]][1]} for r in response_rows
    ]
    responses = conform(pl.DataFrame(resp), "responses") if resp else empty_table("responses")
    sugg = list(suggestion_rows)
    suggestions = conform(pl.DataFrame(sugg), "suggestions") if sugg else empty_table("suggestions")
    return records, responses, suggestions


def snapshot(
    record_rows: Iterable[dict],
    response_rows: Iterable[dict],
    suggestion_rows: Iterable[dict] = (),
    **meta: Any,
) -> Snapshot:
    """A Snapshot of literal rows, with meta defaults (snapshot_id, template, min_submitted)."""
    records, responses, suggestions = frames(record_rows, response_rows, suggestion_rows)
    meta = {
        "snapshot_id": "snap-1",
        "synced_at": "2024-05-02T00:00:00+00:00",
        "dataset": "demo",
        "dataset_id": "00000000-0000-0000-0000-000000000001",
        "template": "rating",
        "min_submitted": 2,
        **meta,
    }
    return Snapshot(records=records, responses=responses, suggestions=suggestions, meta=meta)


def rating_campaign(n: int = 30, *, rounds: int = 2) -> Snapshot:
    """A rating campaign of n records, two annotators, a mix of clear pairs, ties and small margins."""
    recs: list[dict] = []
    resp: list[dict] = []
    for i in range(n):
        rid = f"r{i:03d}"
        recs += record(rid, [f"answer A to {i}", f"answer B to {i}"], round=1 + i % rounds)
        a, b = 1 + i % 5, 1 + (i * 3) % 5
        resp += ratings(rid, "alice", [a, b]) + ratings(rid, "bob", [a, min(5, b + i % 2)])
    return snapshot(recs, resp)
