"""The progress history of a campaign: one NDJSON line per sync, kept in `<campaign>/.campaign/history.ndjson`.

Every `campaign status` that syncs appends one line (a `HistoryEntry`), unless the file already holds a line
for the same snapshot (an unchanged sync adds nothing). Lines carry aggregates and usernames' count only,
never record texts, URLs or keys. One line, as written::

    {"timestamp": str,                  # when the snapshot was synced (ISO 8601, UTC)
     "dataset": str | None, "workspace": str | None, "language": str | None,
     "snapshot_id": str,                # the content id of the snapshot: the key that prevents duplicates
     "records": int, "completed": int, "pending": int, "remaining_submissions": int,
     "submissions": {"submitted": int, "draft": int, "discarded": int},
     "annotators_active": int,          # annotators with at least one response
     "agreement": {"statistic": str, "label": str, "value": float | None, "n_units": int}}

The "progress over time" and "submissions per day" charts read it, so they have points from the first
sync on, whatever snapshots are still on disk. The published history on the Hub holds the lines of every
campaign of a community, keyed by (workspace, dataset, snapshot_id).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from campaign.errors import InputError
from campaign.progress import DailyCount, SyncPoint

if TYPE_CHECKING:
    from campaign.report import Report

HISTORY_FILENAME = "history.ndjson"
HISTORY_SUBDIR = ".campaign"


@dataclass(frozen=True)
class Submissions:
    """Responses per latest status at one sync."""

    submitted: int
    draft: int
    discarded: int


@dataclass(frozen=True)
class Headline:
    """The one agreement figure a history line keeps: the pooled overall statistic."""

    statistic: str
    label: str
    value: float | None
    n_units: int


@dataclass(frozen=True)
class HistoryEntry:
    """One line of the history: a campaign's progress at one snapshot."""

    timestamp: str
    dataset: str | None
    workspace: str | None
    language: str | None
    snapshot_id: str
    records: int
    completed: int
    pending: int
    remaining_submissions: int
    submissions: Submissions
    annotators_active: int
    agreement: Headline

    @property
    def key(self) -> tuple[str | None, str | None, str]:
        """What makes a line unique in any history: the campaign and its snapshot."""
        return (self.workspace, self.dataset, self.snapshot_id)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the documented line format."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HistoryEntry:
        """The entry whose `to_dict()` is `data`."""
        return cls(
            **{
                **data,
                "submissions": Submissions(**data["submissions"]),
                "agreement": Headline(**data["agreement"]),
            }
        )


def entry_from_report(report: Report, *, language: str | None = None) -> HistoryEntry:
    """The history line of a report: its snapshot's time and id, and the headline figures."""
    totals = report.progress.totals
    overall = report.agreement.overall
    value = overall.value
    return HistoryEntry(
        timestamp=report.snapshot.synced_at or report.progress.as_of or datetime.now(UTC).isoformat(),
        dataset=report.dataset.name,
        workspace=report.dataset.workspace,
        language=language,
        snapshot_id=report.snapshot.snapshot_id,
        records=totals.records,
        completed=totals.completed,
        pending=totals.pending,
        remaining_submissions=totals.remaining_submissions,
        submissions=Submissions(
            submitted=totals.responses.submitted,
            draft=totals.responses.draft,
            discarded=totals.responses.discarded,
        ),
        annotators_active=len(report.progress.annotators),
        agreement=Headline(
            statistic=overall.name,
            label=overall.label,
            value=value if value is None or value == value else None,  # NaN is not JSON
            n_units=overall.n_units,
        ),
    )


def history_path(campaign_dir: Path | str) -> Path:
    """Where a campaign's history lives."""
    return Path(campaign_dir) / HISTORY_SUBDIR / HISTORY_FILENAME


def record_sync(
    campaign_dir: Path | str, report: Report, *, language: str | None = None
) -> list[HistoryEntry]:
    """Append the report's line to the campaign's history, unless a line of its snapshot is there."""
    return append_history(history_path(campaign_dir), [entry_from_report(report, language=language)])


def parse_history(text: str, *, where: str) -> list[HistoryEntry]:
    """The entries of history text; an unfinished last line (a write cut short) is ignored."""
    lines = text.split("\n")
    complete = lines[:-1]  # text after the last newline was never finished
    entries = []
    for number, line in enumerate(complete, start=1):
        if not line.strip():
            continue
        try:
            entries.append(HistoryEntry.from_dict(json.loads(line)))
        except (ValueError, TypeError, KeyError) as exc:
            msg = (
                f"{where}:{number} is not a history line ({type(exc).__name__}: {exc}). "
                "Delete that line; the other lines are kept."
            )
            raise InputError(msg) from None
    return entries


def read_history(path: Path) -> list[HistoryEntry]:
    """The entries of a history file, oldest first as written ([] when there is none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"Cannot read the progress history {path}: {exc}."
        raise InputError(msg) from None
    return parse_history(text, where=str(path))


def format_lines(entries: Iterable[HistoryEntry]) -> str:
    """Entries as NDJSON text, one line each."""
    return "".join(json.dumps(e.to_dict(), ensure_ascii=False, sort_keys=False) + "\n" for e in entries)


def new_entries(existing: Iterable[HistoryEntry], candidates: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    """The candidates whose key no existing line (nor an earlier candidate) has."""
    seen = {entry.key for entry in existing}
    fresh = []
    for entry in candidates:
        if entry.key not in seen:
            seen.add(entry.key)
            fresh.append(entry)
    return fresh


def append_history(path: Path, entries: Sequence[HistoryEntry]) -> list[HistoryEntry]:
    """Append the entries the file lacks (by key) and return them.

    Appends hold an exclusive lock and write all new lines with one `write` on an O_APPEND descriptor, so
    concurrent runs never interleave or duplicate lines; a line cut short by a crash is dropped first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        with open(fd, "rb", closefd=False) as handle:
            data = handle.read()
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) != len(data):
            os.ftruncate(fd, len(complete))
        fresh = new_entries(parse_history(complete.decode("utf-8"), where=str(path)), entries)
        if fresh:
            os.write(fd, format_lines(fresh).encode("utf-8"))
            os.fsync(fd)
        return fresh
    finally:
        os.close(fd)  # releases the lock


def progress_points(entries: Sequence[HistoryEntry]) -> list[SyncPoint]:
    """The history as points of the "progress over time" chart, oldest first."""
    ordered = sorted(entries, key=lambda e: e.timestamp)
    return [
        SyncPoint(
            sync_id=e.snapshot_id,
            synced_at=e.timestamp,
            n_records=e.records,
            n_responses=e.submissions.submitted + e.submissions.draft + e.submissions.discarded,
            completed=e.completed,
            pending=e.pending,
        )
        for e in ordered
    ]


def daily_submissions(entries: Sequence[HistoryEntry]) -> list[DailyCount]:
    """Submitted responses added per UTC day, from the first line's day to the last's (days between as 0).

    A day's count is its last line's submitted total minus the previous day's (0 before the first line),
    never below 0: responses turned back into drafts lower the total but undo no day's work.
    """
    last_of_day: dict[str, int] = {}
    for entry in sorted(entries, key=lambda e: e.timestamp):
        last_of_day[_day(entry.timestamp)] = entry.submissions.submitted
    if not last_of_day:
        return []
    first, last = min(last_of_day), max(last_of_day)
    day, end = datetime.fromisoformat(first).date(), datetime.fromisoformat(last).date()
    counts, previous = [], 0
    while day <= end:
        key = day.isoformat()
        total = last_of_day.get(key, previous)
        counts.append(DailyCount(date=key, submitted=max(0, total - previous)))
        previous = total
        day += timedelta(days=1)
    return counts


def _day(timestamp: str) -> str:
    """The UTC date of an ISO timestamp."""
    moment = datetime.fromisoformat(timestamp)
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC)
    return moment.date().isoformat()
