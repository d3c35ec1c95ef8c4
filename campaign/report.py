"""The `campaign status` report: assembled from a snapshot, rendered as Markdown or one HTML file.

`build_report` returns a `Report`; its `to_dict()` is the JSON that `campaign status --json` prints::

    {
      "schema_version": 1,
      "dataset": {"name": str | None, "workspace": str | None, "template": str, "min_submitted": int},
      "snapshot": {"snapshot_id": str, "synced_at": str | None},
      "progress": <campaign.progress.Progress.to_dict()>,
      "agreement": <campaign.agreement.CampaignAgreement.to_dict()>,
    }

(`campaign status --json` adds "sync": what the sync it ran did, or None with --no-sync.)

Only these fields leave the snapshot meta, so no URL, key or password can reach a report, and
annotators appear by username. The renderers take a `Report` (`Report.from_dict` rebuilds one from
that JSON) and never touch the network: `render_html` writes inline CSS and inline SVG only, and
escapes every string that comes from data.
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeGuard

from campaign.agreement import NOT_ENOUGH_DATA, CampaignAgreement, Statistic, campaign_agreement
from campaign.errors import InputError
from campaign.progress import (
    AnnotatorProgress,
    DailyCount,
    Progress,
    RoundProgress,
    SyncPoint,
    compute_progress,
    resolve_min_submitted,
)
from campaign.snapshot import Snapshot

if TYPE_CHECKING:
    from campaign.history import HistoryEntry

SCHEMA_VERSION = 1
BAR_WIDTH = 20
MAX_LEADERBOARD = 25
MAX_CHART_ANNOTATORS = 20
_MD_SPECIAL = set("\\`*_[]<>|~#")


@dataclass(frozen=True)
class DatasetInfo:
    """The dataset a report describes, from the snapshot meta."""

    name: str | None
    workspace: str | None
    template: str
    min_submitted: int


@dataclass(frozen=True)
class SnapshotInfo:
    """The snapshot a report was computed from."""

    snapshot_id: str
    synced_at: str | None


@dataclass(frozen=True)
class Report:
    """The status report of a snapshot; `to_dict()` gives the JSON in the module docstring."""

    schema_version: int
    dataset: DatasetInfo
    snapshot: SnapshotInfo
    progress: Progress
    agreement: CampaignAgreement

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, in the documented schema."""
        return {
            "schema_version": self.schema_version,
            "dataset": asdict(self.dataset),
            "snapshot": asdict(self.snapshot),
            "progress": self.progress.to_dict(),
            "agreement": self.agreement.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """The Report whose `to_dict()` is `data`, such as `campaign status --json` output read back."""
        try:
            return cls(
                schema_version=data["schema_version"],
                dataset=DatasetInfo(**data["dataset"]),
                snapshot=SnapshotInfo(**data["snapshot"]),
                progress=Progress.from_dict(data["progress"]),
                agreement=CampaignAgreement.from_dict(data["agreement"]),
            )
        except (KeyError, TypeError, AttributeError) as e:
            msg = (
                f"Not a campaign status report ({type(e).__name__}: {e}). "
                "Pass the JSON that 'campaign status --json' prints."
            )
            raise InputError(msg) from None


def build_report(
    snapshot: Snapshot,
    *,
    now: datetime | None = None,
    window_days: int = 7,
    rating_threshold: float = 2.0,
    min_shared: int = 5,
    flag_below: float = 0.4,
) -> Report:
    """The status report of a snapshot: dataset, snapshot, progress and agreement."""
    template = resolve_template(snapshot)
    min_submitted = resolve_min_submitted(snapshot)
    progress = compute_progress(
        snapshot,
        now=now,
        window_days=window_days,
        min_submitted=min_submitted,
        rating_threshold=rating_threshold,
    )
    agreement = campaign_agreement(
        snapshot.responses,
        template,
        snapshot.suggestions,
        min_shared=min_shared,
        flag_below=flag_below,
    )
    meta = snapshot.meta
    synced_at = meta.get("synced_at")
    return Report(
        schema_version=SCHEMA_VERSION,
        dataset=DatasetInfo(
            name=_opt_str(meta.get("dataset") or meta.get("dataset_name")),
            workspace=_opt_str(meta.get("workspace")),
            template=template,
            min_submitted=min_submitted,
        ),
        snapshot=SnapshotInfo(
            snapshot_id=snapshot.snapshot_id,
            synced_at=synced_at.isoformat() if isinstance(synced_at, datetime) else _opt_str(synced_at),
        ),
        progress=progress,
        agreement=agreement,
    )


def resolve_template(snapshot: Snapshot) -> str:
    """The campaign's template: from the meta, else the one template every record names."""
    template = snapshot.meta.get("template")
    if template:
        return str(template)
    names = snapshot.records.get_column("template").drop_nulls().unique().sort().to_list()
    if len(names) == 1:
        return str(names[0])
    found = ", ".join(names) if names else "none"
    msg = (
        f"Cannot tell the campaign's template from the snapshot (templates in records: {found}). "
        "Run 'campaign status' to sync again."
    )
    raise InputError(msg)


def _opt_str(value: object) -> str | None:
    return None if value is None or value == "" else str(value)


# ---------------------------------------------------------------------------------------------------------
# Shared formatting


def _int(value: float | None) -> str:
    """An integer with thousands separators ('-' when missing)."""
    return f"{int(value):,}" if isinstance(value, int | float) and not isinstance(value, bool) else "-"


def _pct(share: float | None) -> str:
    return f"{100 * float(share):.1f}%" if isinstance(share, int | float) else "-"


def _float(value: float | None, digits: int = 1) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    return f"{value:,.{digits}f}"


def _when(value: str | None) -> str:
    """An ISO timestamp as 'YYYY-MM-DD HH:MM UTC' (or as given when it does not parse)."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment.tzinfo else moment.strftime("%Y-%m-%d %H:%M")


@dataclass(frozen=True)
class _Opening:
    """The title and headline figures that both renderers open with, formatted once."""

    title: str
    share: float  # of records completed
    percent: str
    completed: str
    records: str
    min_submitted: str
    pending: str
    remaining: str  # submissions still needed
    submitted: str
    draft: str
    discarded: str


def _opening(report: Report) -> _Opening:
    dataset, totals = report.dataset, report.progress.totals
    name = dataset.name or "campaign"
    return _Opening(
        title=f"{dataset.workspace}/{name}" if dataset.workspace else name,
        share=totals.completed_share,
        percent=_pct(totals.completed_share),
        completed=_int(totals.completed),
        records=_int(totals.records),
        min_submitted=_int(dataset.min_submitted),
        pending=_int(totals.pending),
        remaining=_int(totals.remaining_submissions),
        submitted=_int(totals.responses.submitted),
        draft=_int(totals.responses.draft),
        discarded=_int(totals.responses.discarded),
    )


def _all_done(progress: Progress) -> bool:
    """Every record of a non-empty campaign is complete."""
    totals = progress.totals
    return bool(totals.records) and not totals.remaining_submissions


def _span(days: float) -> str:
    """An observed span in words: minutes, hours or days."""
    if days < 1 / 24:
        minutes = max(1, round(days * 24 * 60))
        return f"{minutes} minute" if minutes == 1 else f"{minutes} minutes"
    if days < 1:
        return f"{days * 24:.1f} hours"
    if days == 1:
        return "1 day"
    return f"{days:.1f} days" if days % 1 else f"{days:.0f} days"


def velocity_text(progress: Progress) -> str:
    """The rate of submissions and the span it was measured over (see campaign.progress)."""
    velocity = progress.velocity
    since = f"the {_span(velocity.observed_days)} since the campaign opened"
    if not velocity.enough_observed:
        return f"{_int(velocity.submitted_in_window)} submissions in {since}"
    if velocity.observed_days < velocity.window_days:
        return f"{_float(velocity.per_day)} submissions/day over {since}"
    return f"{_float(velocity.per_day)} submissions/day over the last {velocity.window_days} days"


def eta_text(progress: Progress) -> str:
    """The ETA in words: a date, 'done', or why there is none."""
    velocity = progress.velocity
    if _all_done(progress):
        return "done"
    if velocity.eta_days is not None:
        return f"{velocity.eta_date} (in {_float(velocity.eta_days)} days)"
    if velocity.submitted_in_window:
        return (
            "not enough activity yet for an ETA "
            f"(it takes {_span(velocity.min_observed_days)} since the campaign opened)"
        )
    if velocity.observed_days >= velocity.window_days:
        return f"unknown (no submissions in the last {velocity.window_days} days)"
    return "unknown (no submissions yet)"


def _conflict_text(progress: Progress) -> str:
    conflicts = progress.conflicts
    text = f"{_int(conflicts.records)} of {_int(conflicts.checked)} checked"
    if conflicts.by_question:
        parts = ", ".join(f"{q}: {_int(n)}" for q, n in sorted(conflicts.by_question.items()))
        text += f" ({parts})"
    return text


def _round_cells(entry: RoundProgress) -> tuple[str, str, str, str, str]:
    """Round, records, completed, pending and the share done, as table cells."""
    done = entry.completed / entry.records if entry.records else 0.0
    return (
        str(entry.round) if entry.round is not None else "none",
        _int(entry.records),
        _int(entry.completed),
        _int(entry.pending),
        _pct(done),
    )


_LEADERBOARD_HEADER = (
    "#",
    "Annotator",
    "Submitted",
    "Share",
    "Draft",
    "Discarded",
    "Last active",
    "Active days",
)


def _leaderboard_cells(entry: AnnotatorProgress) -> list[str]:
    return [
        _int(entry.rank),
        entry.annotator,
        _int(entry.submitted),
        _pct(entry.share),
        _int(entry.draft),
        _int(entry.discarded),
        _when(entry.last_activity),
        _int(entry.active_days),
    ]


def _finite(value: float | None) -> TypeGuard[float]:
    return value is not None and math.isfinite(value)


def _stat_value(stat: Statistic) -> str:
    if _finite(stat.value):
        return f"{stat.value:.3f}"
    return stat.note or NOT_ENOUGH_DATA


def agreement_rows(agreement: CampaignAgreement) -> list[tuple[str, Statistic]]:
    """(scope, statistic) pairs to show: overall, each question, Fleiss, Kendall's W and the judges.

    "overall" is always the pooled Krippendorff's α, as in the JSON; Fleiss' κ and Kendall's W are shown
    under the question they measure, each beside its own name (`Statistic.label`).
    """
    rows: list[tuple[str, Statistic]] = []
    questions = list(agreement.per_question.items())
    # A template with a single question reports it twice (overall and per question); show it once.
    if not (len(questions) == 1 and questions[0][1] == agreement.overall):
        rows.append(("overall", agreement.overall))
    rows.extend(questions)
    scope = questions[0][0] if len(questions) == 1 else "all questions"
    rows.extend((scope, stat) for stat in (agreement.fleiss, agreement.kendall_w) if stat is not None)
    rows.extend((f"judge: {judge.agent}", judge.alpha) for judge in agreement.judge)
    return rows


def _flagged(agreement: CampaignAgreement) -> int:
    return sum(1 for entry in agreement.annotators if entry.flagged)


# ---------------------------------------------------------------------------------------------------------
# Markdown


def _md(text: object) -> str:
    """Text safe inside Markdown (and Markdown tables): special characters backslash-escaped."""
    flat = " ".join(str(text).split())
    return "".join(f"\\{ch}" if ch in _MD_SPECIAL else ch for ch in flat)


def text_bar(share: float, width: int = BAR_WIDTH) -> str:
    """A progress bar of block characters, e.g. '██████░░░░' for 0.6 at width 10."""
    share = min(1.0, max(0.0, float(share))) if math.isfinite(share) else 0.0
    filled = round(share * width)
    return "█" * filled + "░" * (width - filled)


def _md_table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str) -> list[str]:
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "|".join(":---" if a == "l" else "---:" for a in align) + "|")
    lines.extend("| " + " | ".join(row) + " |" for row in rows)
    return lines


def render_markdown(report: Report) -> str:
    """The report as Markdown to paste into Discord or a Hub discussion."""
    head = _opening(report)
    lines = [f"## Annotation progress: {_md(head.title)}", ""]
    lines.append(
        f"**{head.completed} of {head.records} records completed ({head.percent})**, "
        f"each needing {head.min_submitted} submitted responses."
    )
    lines += ["", f"`{text_bar(head.share)}` {head.percent}", ""]
    lines += _md_table(
        ["", ""],
        [
            ["Pending records", head.pending],
            ["Submitted responses", f"{head.submitted} (draft {head.draft}, discarded {head.discarded})"],
            ["Still needed", f"{head.remaining} submissions"],
            ["Velocity", _md(velocity_text(report.progress))],
            ["ETA", _md(eta_text(report.progress))],
            ["Records with conflicting answers", _md(_conflict_text(report.progress))],
        ],
        "lr",
    )
    lines += _md_rounds(report.progress.rounds)
    lines += _md_leaderboard(report.progress.annotators)
    lines += _md_agreement(report.agreement)
    snap = report.snapshot
    lines += [
        "",
        f"_Snapshot {_md(snap.snapshot_id or '-')}, synced {_md(_when(snap.synced_at))}; "
        "made with argilla-campaign._",
        "",
    ]
    return "\n".join(lines)


def _md_rounds(rounds: Sequence[RoundProgress]) -> list[str]:
    if len(rounds) <= 1:
        return []
    table = _md_table(
        ["Round", "Records", "Completed", "Pending", "Done", "Conflicts"],
        [[*map(_md, _round_cells(r)), _int(r.conflicts)] for r in rounds],
        "lrrrrr",
    )
    return ["", "### Rounds", "", *table]


def _md_leaderboard(annotators: Sequence[AnnotatorProgress]) -> list[str]:
    lines = ["", "### Leaderboard", ""]
    if not annotators:
        return [*lines, "No responses yet."]
    rows = [[_md(cell) for cell in _leaderboard_cells(a)] for a in annotators[:MAX_LEADERBOARD]]
    lines += _md_table(_LEADERBOARD_HEADER, rows, "rlrrrrlr")
    if len(annotators) > MAX_LEADERBOARD:
        lines += ["", f"…and {len(annotators) - MAX_LEADERBOARD} more annotators."]
    return lines


def _md_agreement(agreement: CampaignAgreement) -> list[str]:
    lines = ["", "### Agreement", ""]
    rows = agreement_rows(agreement)
    if not rows:
        return [*lines, "No agreement figures yet."]
    lines += _md_table(
        ["Question", "Statistic", "Value", "n_units"],
        [[_md(scope), _md(s.label), _md(_stat_value(s)), _int(s.n_units)] for scope, s in rows],
        "llrr",
    )
    flagged = _flagged(agreement)
    if flagged:
        threshold = agreement.annotators[0].threshold
        lines += ["", f"{flagged} annotator(s) agree with the others' consensus below {threshold}."]
    return lines


# ---------------------------------------------------------------------------------------------------------
# HTML


def _h(value: object) -> str:
    """A value as escaped HTML text or attribute content."""
    return html.escape(str(value), quote=True)


_CSS = """
:root { --fg:#1f2933; --muted:#616e7c; --line:#d9e2ec; --bg:#f5f7fa; --card:#fff;
  --done:#2f855a; --draft:#d69e2e; --discarded:#a0aec0; --bar:#3182ce; --neg:#c53030; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 24px; }
h1 { margin: 0 0 4px; font-size: 26px; word-break: break-word; }
h2 { margin: 0 0 12px; font-size: 18px; }
.sub { color: var(--muted); margin: 0 0 20px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin: 0 0 16px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(135px, 1fr)); gap: 12px;
  background: none; border: 0; padding: 0; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 12px 14px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 20px; font-weight: 600; white-space: nowrap; }
.card .d { color: var(--muted); font-size: 13px; }
.track { height: 18px; background: var(--line); border-radius: 9px; overflow: hidden; }
.fill { height: 100%; background: var(--done); }
table { border-collapse: collapse; width: 100%; margin-top: 12px; font-size: 14px; }
th, td { padding: 6px 8px; border-bottom: 1px solid var(--line); text-align: right; }
th:first-child, td:first-child, td.l, th.l { text-align: left; }
th { color: var(--muted); font-weight: 600; }
svg { display: block; width: 100%; height: auto; }
svg text { font: 12px system-ui, sans-serif; fill: var(--fg); }
svg .axis { stroke: var(--muted); stroke-width: 1; }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .muted { fill: var(--muted); }
.legend span { display: inline-block; margin-right: 14px; color: var(--muted); font-size: 13px; }
.legend i { display: inline-block; width: 10px; height: 10px; margin-right: 4px; border-radius: 2px; }
footer { color: var(--muted); font-size: 13px; text-align: center; }
"""


def _count_axis(value: float, *, n_ticks: int = 4) -> tuple[float, float]:
    """(top, step) of a count axis: a whole step of 1, 2 or 5 times a power of ten, top >= value."""
    rough = max(value, 1.0) / n_ticks
    power = 10 ** math.floor(math.log10(rough))
    step = next((m * power for m in (1, 2, 5, 10) if m * power >= rough), 10 * power)
    step = max(1.0, float(step))
    return step * math.ceil(max(value, 1.0) / step), step


def _axis_label(value: float) -> str:
    return f"{value:,.0f}"


def _parse_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


def _empty_chart(label: str, message: str, width: int = 720, height: int = 80) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{_h(label)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><text class="muted" x="{width / 2}" y="{height / 2}" '
        f'text-anchor="middle">{_h(message)}</text></svg>'
    )


def svg_progress_over_time(points: Sequence[SyncPoint], *, width: int = 720, height: int = 260) -> str:
    """Completed and total records at each sync, as an inline SVG line chart."""
    label = "Completed records at each sync"
    if not points:
        return _empty_chart(label, "No syncs recorded yet: progress over time appears after the first sync.")
    left, right, top, bottom = 56, 16, 16, 36
    plot_w, plot_h = width - left - right, height - top - bottom
    times = [_parse_time(p.synced_at) for p in points]
    if any(t is None for t in times) or len({t for t in times}) < 2:
        xs_raw = [float(i) for i in range(len(points))]
    else:
        xs_raw = [float(t) for t in times if t is not None]
    lo, hi = min(xs_raw), max(xs_raw)
    span = hi - lo
    xs = [left + (plot_w * (x - lo) / span if span else plot_w / 2) for x in xs_raw]
    completed = [float(p.completed) for p in points]
    totals = [float(p.completed + p.pending) for p in points]
    y_max, step = _count_axis(max([*completed, *totals]))

    def y(value: float) -> float:
        return top + plot_h * (1 - value / y_max)

    parts = [
        f'<svg class="chart" id="chart-progress" role="img" aria-label="{_h(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
    ]
    for i in range(round(y_max / step) + 1):
        value = step * i
        parts.append(
            f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(value):.1f}" y2="{y(value):.1f}"/>'
            f'<text class="muted" x="{left - 6}" y="{y(value) + 4:.1f}" text-anchor="end">'
            f"{_h(_axis_label(value))}</text>"
        )
    parts.append(f'<line class="axis" x1="{left}" x2="{width - right}" y1="{y(0)}" y2="{y(0)}"/>')
    for series, colour, dash in (
        (totals, "var(--muted)", ' stroke-dasharray="5 4"'),
        (completed, "var(--done)", ""),
    ):
        coords = " ".join(f"{x:.1f},{y(v):.1f}" for x, v in zip(xs, series, strict=True))
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2.5"{dash} points="{coords}"/>')
    for x, point, value in zip(xs, points, completed, strict=True):
        tip = f"{_when(point.synced_at)}: {_int(value)} completed, {_int(point.pending)} pending"
        parts.append(
            f'<circle cx="{x:.1f}" cy="{y(value):.1f}" r="3.5" fill="var(--done)"><title>{_h(tip)}</title></circle>'
        )
    first, last = _when(points[0].synced_at), _when(points[-1].synced_at)
    parts.append(f'<text class="muted" x="{left}" y="{height - 10}">{_h(first)}</text>')
    if len(points) > 1:
        parts.append(
            f'<text class="muted" x="{width - right}" y="{height - 10}" text-anchor="end">{_h(last)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def svg_daily(daily: Sequence[DailyCount], *, width: int = 720, height: int = 160) -> str:
    """Submitted responses per day in the velocity window, as an inline SVG column chart."""
    label = "Submitted responses per day"
    if not daily:
        return _empty_chart(label, "No days in the window.")
    left, right, top, bottom = 56, 16, 12, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [float(d.submitted) for d in daily]
    y_max, _step = _count_axis(max(values))
    slot = plot_w / len(daily)
    parts = [
        f'<svg class="chart" id="chart-daily" role="img" aria-label="{_h(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">',
        f'<text class="muted" x="{left - 6}" y="{top + 4}" text-anchor="end">{_h(_axis_label(y_max))}</text>',
        f'<line class="axis" x1="{left}" x2="{width - right}" y1="{top + plot_h}" y2="{top + plot_h}"/>',
    ]
    for i, (day, value) in enumerate(zip(daily, values, strict=True)):
        bar_h = plot_h * value / y_max
        x = left + i * slot + slot * 0.15
        parts.append(
            f'<rect x="{x:.1f}" y="{top + plot_h - bar_h:.1f}" width="{slot * 0.7:.1f}" height="{bar_h:.1f}" '
            f'fill="var(--bar)"><title>{_h(day.date)}: {_h(_int(value))}</title></rect>'
        )
        if len(daily) <= 14 or i in (0, len(daily) - 1):
            parts.append(
                f'<text class="muted" x="{x + slot * 0.35:.1f}" y="{height - 8}" text-anchor="middle">'
                f"{_h(day.date[5:])}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)


def svg_leaderboard(annotators: Sequence[AnnotatorProgress], *, width: int = 720) -> str:
    """Submitted, draft and discarded responses per annotator, as inline SVG stacked bars."""
    label = "Responses per annotator"
    shown = annotators[:MAX_CHART_ANNOTATORS]
    if not shown:
        return _empty_chart(label, "No responses yet.")
    row_h, top, left, right = 24, 8, 170, 70
    height = top * 2 + row_h * len(shown)
    plot_w = width - left - right
    totals = [a.submitted + a.draft + a.discarded for a in shown]
    x_max = float(max([*totals, 1]))
    parts = [
        f'<svg class="chart" id="chart-leaderboard" role="img" aria-label="{_h(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
    ]
    for i, annotator in enumerate(shown):
        y = top + i * row_h
        name = annotator.annotator
        short = name if len(name) <= 22 else name[:21] + "…"
        parts.append(
            f'<text x="{left - 8}" y="{y + row_h * 0.65:.1f}" text-anchor="end"><title>{_h(name)}</title>'
            f"{_h(short)}</text>"
        )
        x = float(left)
        for key, count, colour in (
            ("submitted", annotator.submitted, "var(--done)"),
            ("draft", annotator.draft, "var(--draft)"),
            ("discarded", annotator.discarded, "var(--discarded)"),
        ):
            if not count:
                continue
            bar_w = plot_w * count / x_max
            parts.append(
                f'<rect x="{x:.1f}" y="{y + 3}" width="{bar_w:.1f}" height="{row_h - 6}" fill="{colour}">'
                f"<title>{_h(name)}: {_h(_int(count))} {key}</title></rect>"
            )
            x += bar_w
        parts.append(
            f'<text class="muted" x="{x + 6:.1f}" y="{y + row_h * 0.65:.1f}">'
            f"{_h(_int(annotator.submitted))}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _text_width(text: str) -> float:
    """An upper bound of the width of `text` in 12px chart type (7 user units per character)."""
    return 7.0 * len(text)


def svg_agreement(rows: Sequence[tuple[str, Statistic]], *, width: int = 720) -> str:
    """One bar per agreement figure on a -1..1 scale, labelled with its value and n_units.

    The margins are sized from the longest label and caption, so that no text runs past the edges.
    """
    label = "Agreement per question"
    if not rows:
        return _empty_chart(label, "No agreement figures yet.")
    names, captions = [], []
    for scope, stat in rows:
        text = f"{scope} · {stat.label}"
        names.append((text, text if len(text) <= 38 else text[:37] + "…"))
        n_units = f"n_units={_int(stat.n_units)}"
        captions.append(f"{_stat_value(stat)} ({n_units})")
    row_h, top, pad = 26, 22, 8
    left = pad + max(_text_width(short) for _, short in names) + 8
    right = pad + max(_text_width(caption) for caption in captions) + 8
    height = top + row_h * len(rows) + 8
    plot_w = width - left - right
    finite = [s.value for _, s in rows if _finite(s.value)]
    lo = -1.0 if finite and min(finite) < 0 else 0.0

    def x(value: float) -> float:
        return left + plot_w * (value - lo) / (1.0 - lo)

    parts = [
        f'<svg class="chart" id="chart-agreement" role="img" aria-label="{_h(label)}" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
    ]
    for tick in (lo, (lo + 1) / 2, 1.0):
        parts.append(
            f'<line class="grid" x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top - 4}" y2="{height - 8}"/>'
            f'<text class="muted" x="{x(tick):.1f}" y="{top - 8}" text-anchor="middle">{tick:g}</text>'
        )
    for i, ((_, stat), (text, short), caption) in enumerate(zip(rows, names, captions, strict=True)):
        y = top + i * row_h
        parts.append(
            f'<text x="{left - 8:.1f}" y="{y + row_h * 0.65:.1f}" text-anchor="end"><title>{_h(text)}</title>'
            f"{_h(short)}</text>"
        )
        value = stat.value
        if _finite(value):
            start, end = sorted((x(max(lo, 0.0)), x(max(lo, min(1.0, value)))))
            colour = "var(--neg)" if value < 0 else "var(--bar)"
            parts.append(
                f'<rect x="{start:.1f}" y="{y + 4}" width="{max(end - start, 1.0):.1f}" height="{row_h - 8}" '
                f'fill="{colour}"><title>{_h(text)}: {_h(caption)}</title></rect>'
            )
        parts.append(
            f'<text class="muted" x="{width - right + 8:.1f}" y="{y + row_h * 0.65:.1f}">{_h(caption)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(header: Sequence[str], rows: Iterable[Sequence[object]], left: Sequence[int] = (0,)) -> str:
    """A table whose cells are escaped; columns in `left` are left-aligned."""
    head = "".join(
        f'<th class="l">{_h(h)}</th>' if i in left else f"<th>{_h(h)}</th>" for i, h in enumerate(header)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="l">{_h(c)}</td>' if i in left else f"<td>{_h(c)}</td>" for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _card(key: str, value: str, detail: str = "") -> str:
    extra = f'<div class="d">{_h(detail)}</div>' if detail else ""
    return f'<div class="card"><div class="k">{_h(key)}</div><div class="v">{_h(value)}</div>{extra}</div>'


def _eta_card(progress: Progress) -> str:
    velocity = progress.velocity
    if _all_done(progress):
        return _card("ETA", "done", "every record is complete")
    if velocity.eta_date is None:
        return _card("ETA", "not yet" if velocity.submitted_in_window else "unknown", eta_text(progress))
    return _card("ETA", velocity.eta_date, f"in {_float(velocity.eta_days)} days")


def _velocity_card(progress: Progress) -> str:
    velocity = progress.velocity
    value = (
        f"{_float(velocity.per_day)}/day"
        if velocity.enough_observed
        else f"{_int(velocity.submitted_in_window)} so far"
    )
    return _card("Velocity", value, velocity_text(progress))


def _html_cards(head: _Opening, progress: Progress) -> str:
    conflicts = progress.conflicts
    return "".join(
        [
            _card("Completed", head.completed, f"of {head.records} records · {head.percent}"),
            _card("Pending", head.pending, f"{head.remaining} submissions needed"),
            _card("Submitted", head.submitted, f"draft {head.draft} · discarded {head.discarded}"),
            _velocity_card(progress),
            _eta_card(progress),
            _card(
                "Conflicts",
                _int(conflicts.records),
                f"of {_int(conflicts.checked)} records with 2+ submitted",
            ),
        ]
    )


def _html_agreement(agreement: CampaignAgreement) -> str:
    rows = agreement_rows(agreement)
    table = _html_table(
        ["Question", "Statistic", "Value", "n_units", "Annotators"],
        [[scope, s.label, _stat_value(s), _int(s.n_units), _int(s.n_annotators)] for scope, s in rows],
        left=(0, 1),
    )
    flagged = _flagged(agreement)
    note = (
        f"<p>{_h(flagged)} annotator(s) agree with the others' consensus below "
        f"{_h(agreement.annotators[0].threshold)}.</p>"
        if flagged
        else ""
    )
    return f"<section><h2>Agreement</h2>{svg_agreement(rows)}{table}{note}</section>"


def _html_rounds(rounds: Sequence[RoundProgress]) -> str:
    if not rounds:
        return ""
    table = _html_table(
        ["Round", "Records", "Completed", "Pending", "Done", "Submitted", "Conflicts"],
        [[*_round_cells(r), _int(r.submitted), _int(r.conflicts)] for r in rounds],
    )
    return f"<section><h2>Rounds</h2>{table}</section>"


_LEGEND = (
    '<div class="legend"><span><i style="background:var(--done)"></i>submitted</span>'
    '<span><i style="background:var(--draft)"></i>draft</span>'
    '<span><i style="background:var(--discarded)"></i>discarded</span></div>'
)
_OVER_TIME_LEGEND = (
    '<div class="legend"><span><i style="background:var(--done)"></i>completed records</span>'
    '<span><i style="background:var(--muted)"></i>all records</span></div>'
)


def render_html(report: Report, *, history: Sequence[HistoryEntry] = ()) -> str:
    """The report as one self-contained HTML page: inline CSS and SVG charts, no network needed.

    With a progress history (campaign.history), "progress over time" and "submissions per day" are drawn
    from its lines, from the first sync on; without one, from the snapshot's syncs and velocity window.
    """
    from campaign.history import daily_submissions, progress_points

    over_time = progress_points(history) if history else report.progress.over_time
    daily = daily_submissions(history) if history else report.progress.velocity.daily
    head = _opening(report)
    progress, snap = report.progress, report.snapshot
    subtitle = " · ".join(
        (
            f"template {report.dataset.template or '-'}",
            f"{head.min_submitted} submitted responses per record",
            f"snapshot {snap.snapshot_id or '-'}",
            f"synced {_when(snap.synced_at)}",
        )
    )
    leaderboard = (
        _html_table(_LEADERBOARD_HEADER, [_leaderboard_cells(a) for a in progress.annotators], left=(1, 6))
        if progress.annotators
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>Campaign status: {_h(head.title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
<h1>{_h(head.title)}</h1>
<p class="sub">{_h(subtitle)}</p>
<section class="cards">{_html_cards(head, progress)}</section>
<section><h2>Completion</h2>
<div class="track" role="progressbar" aria-valuemin="0" aria-valuemax="100" aria-valuenow="{100 * head.share:.1f}">
<div class="fill" style="width:{100 * min(1.0, max(0.0, head.share)):.2f}%"></div></div>
<p>{_h(head.completed)} of {_h(head.records)} records have at least
{_h(head.min_submitted)} submitted responses ({_h(head.percent)}).</p>
</section>
<section><h2>Progress over time</h2>{_OVER_TIME_LEGEND}{svg_progress_over_time(over_time)}</section>
<section><h2>Submissions per day</h2>{svg_daily(daily)}</section>
<section><h2>Annotator leaderboard</h2>{_LEGEND}{svg_leaderboard(progress.annotators)}{leaderboard}</section>
{_html_agreement(report.agreement)}
{_html_rounds(progress.rounds)}
<footer>Made with argilla-campaign from snapshot {_h(snap.snapshot_id or "-")}.</footer>
</main>
</body>
</html>
"""
