"""The progress history: one line per snapshot, appended atomically, read by the charts."""

from __future__ import annotations

import json
from pathlib import Path

from campaign.history import (
    Headline,
    HistoryEntry,
    Submissions,
    append_history,
    daily_submissions,
    progress_points,
    read_history,
)
from campaign.progress import DailyCount
from campaign.report import render_html
from tests.test_report import evil_snapshot


def _entry(snapshot_id: str, timestamp: str, submitted: int, completed: int = 0) -> HistoryEntry:
    return HistoryEntry(
        timestamp=timestamp,
        dataset="nl-dpo",
        workspace="nl",
        language="nl",
        snapshot_id=snapshot_id,
        records=10,
        completed=completed,
        pending=10 - completed,
        remaining_submissions=20 - submitted,
        submissions=Submissions(submitted=submitted, draft=1, discarded=0),
        annotators_active=2,
        agreement=Headline(statistic="alpha", label="Krippendorff's α (ordinal)", value=0.5, n_units=3),
    )


def test_append_adds_one_line_per_snapshot(tmp_path: Path) -> None:
    path = tmp_path / ".campaign" / "history.ndjson"
    first = _entry("s1", "2026-05-01T10:00:00+00:00", 2)
    assert append_history(path, [first]) == [first]
    assert append_history(path, [first]) == []  # an unchanged sync adds nothing
    second = _entry("s2", "2026-05-02T10:00:00+00:00", 5, completed=1)
    assert append_history(path, [second, second]) == [second]
    assert read_history(path) == [first, second]
    lines = path.read_text().splitlines()
    assert [json.loads(line)["snapshot_id"] for line in lines] == ["s1", "s2"]


def test_a_line_cut_short_is_dropped_before_the_next_append(tmp_path: Path) -> None:
    path = tmp_path / "history.ndjson"
    first = _entry("s1", "2026-05-01T10:00:00+00:00", 2)
    append_history(path, [first])
    with path.open("a") as handle:
        handle.write('{"timestamp": "2026-05-0')  # a crash in the middle of a write
    assert read_history(path) == [first]
    second = _entry("s2", "2026-05-02T10:00:00+00:00", 4)
    append_history(path, [second])
    assert read_history(path) == [first, second]
    assert path.read_text().count("\n") == 2


def test_a_damaged_line_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "history.ndjson"
    path.write_text("not json\n")
    try:
        read_history(path)
    except Exception as exc:
        assert f"{path}:1" in str(exc)
    else:
        raise AssertionError("a damaged line was accepted")


def test_daily_submissions_from_the_first_day_on() -> None:
    entries = [
        _entry("s1", "2026-05-01T09:00:00+00:00", 3),
        _entry("s2", "2026-05-01T20:00:00+00:00", 5),
        _entry("s3", "2026-05-03T08:00:00+00:00", 9),
        _entry("s4", "2026-05-04T08:00:00+00:00", 8),  # a response turned back into a draft
    ]
    assert daily_submissions(entries) == [
        DailyCount("2026-05-01", 5),
        DailyCount("2026-05-02", 0),
        DailyCount("2026-05-03", 4),
        DailyCount("2026-05-04", 0),
    ]
    points = progress_points(list(reversed(entries)))
    assert [p.synced_at[:10] for p in points] == ["2026-05-01", "2026-05-01", "2026-05-03", "2026-05-04"]


def test_html_charts_read_the_history() -> None:
    from campaign.report import build_report

    report = build_report(evil_snapshot())
    entries = [
        _entry("s1", "2026-04-01T09:00:00+00:00", 3, completed=1),
        _entry("s2", "2026-04-20T09:00:00+00:00", 7, completed=4),
    ]
    page = render_html(report, history=entries)
    # The first day of the history is a point and a column, though no snapshot of it is on disk.
    assert "2026-04-01 09:00 UTC: 1 completed" in page
    assert "2026-04-01: 3" in page
    assert "2026-04-20: 4" in page
