"""Report assembly and its Markdown and self-contained HTML renderers."""

from __future__ import annotations

import json
import math
import re
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from test_progress import NOW, at, make_snapshot, new_campaign, rank, rate, rating_snapshot, rec, vote

from campaign.agreement import campaign_agreement
from campaign.errors import InputError
from campaign.progress import compute_progress
from campaign.report import Report, agreement_rows, build_report, render_html, render_markdown, text_bar
from campaign.snapshot import Snapshot, conform

CHROMIUM = Path("/usr/bin/chromium")
EVIL = "<script>alert('x')</script>"
VOID = {"meta", "br", "hr", "img", "input", "link", "area", "base", "col", "embed", "source", "track", "wbr"}
SVG_LEAVES = {"line", "polyline", "circle", "rect", "path"}


def evil_snapshot() -> Snapshot:
    """A small rating campaign whose usernames and dataset name try to inject markup."""
    records = rec("r1") + rec("r2")
    responses = (
        rate("r1", EVIL, [5, 1], at(9))
        + rate("r1", "bob|*pipe*", [1, 1], at(9))
        + rate("r2", EVIL, [3, 3], at(8))
        + rate("r2", "bob|*pipe*", [3, 4], at(8))
    )
    return make_snapshot(records, responses, dataset='<img src="https://evil.example/x.png">')


def test_build_report_assembles_the_status_json():
    snap = rating_snapshot(api_key="secret-key-123", api_url="http://127.0.0.1:6900", password="hunter2")
    report = build_report(snap, now=NOW).to_dict()
    assert report["schema_version"] == 1
    assert report["dataset"] == {
        "name": "haiku-dpo",
        "workspace": "community",
        "template": "rating",
        "min_submitted": 2,
    }
    assert report["snapshot"] == {"snapshot_id": "snap-7", "synced_at": "2024-05-10T12:00:00+00:00"}
    assert report["progress"] == compute_progress(snap, now=NOW).to_dict()
    assert report["agreement"] == campaign_agreement(snap.responses, "rating", snap.suggestions).to_dict()
    text = json.dumps(report)
    for secret in ("secret-key-123", "127.0.0.1", "hunter2"):
        assert secret not in text
    assert json.loads(text) == report


def test_template_comes_from_records_when_meta_lacks_it():
    snap = rating_snapshot(template=None)
    assert build_report(snap, now=NOW).dataset.template == "rating"
    with pytest.raises(InputError, match="template"):
        build_report(make_snapshot([], [], template=None), now=NOW)


def test_text_bar():
    assert text_bar(0.4) == "█" * 8 + "░" * 12
    assert text_bar(0.0, width=4) == "░░░░" and text_bar(1.5, width=4) == "████"


def test_markdown_carries_the_numbers():
    md = render_markdown(build_report(rating_snapshot(), now=NOW))
    assert md.startswith("## Annotation progress: community/haiku-dpo")
    assert "**2 of 5 records completed (40.0%)**, each needing 2 submitted responses." in md
    assert "`████████░░░░░░░░░░░░` 40.0%" in md
    assert "| Pending records | 3 |" in md
    assert "| Submitted responses | 6 (draft 1, discarded 1) |" in md
    assert "| Still needed | 5 submissions |" in md
    assert "| Velocity | 0.7 submissions/day over the last 7 days |" in md
    assert "| ETA | 2024-05-17 (in 7.0 days) |" in md
    assert "| Records with conflicting answers | 2 of 2 checked (rating\\_1: 1, rating\\_2: 1) |" in md
    assert "| 1 | alice | 3 | 50.0% | 0 | 1 | 2024-05-09 10:00 UTC | 4 |" in md
    assert "| 2 | bob | 2 | 33.3% | 1 | 0 | 2024-05-09 11:00 UTC | 3 |" in md
    assert "| 3 | carol | 1 | 16.7% | 0 | 0 | 2024-05-01 09:00 UTC | 1 |" in md
    assert "| Round | Records | Completed | Pending | Done | Conflicts |" in md
    assert "| 1 | 3 | 1 | 2 | 33.3% | 1 |" in md
    assert "| 2 | 2 | 1 | 1 | 50.0% | 1 |" in md
    assert "| Question | Statistic | Value | n\\_units |" not in md  # header cells are not escaped
    assert "| Question | Statistic | Value | n_units |" in md
    overall = build_report(rating_snapshot(), now=NOW).agreement.overall
    assert overall.value is not None
    assert f"| overall | Krippendorff's α (ordinal) | {overall.value:.3f} | {overall.n_units} |" in md
    assert "_Snapshot snap-7, synced 2024-05-10 12:00 UTC" in md


def test_a_new_campaign_gets_no_eta_until_a_day_is_observed():
    # Six votes in the ten minutes since seeding once read "ETA 2028-03-08 (in 459.7 days)".
    opened = NOW - timedelta(minutes=10)
    report = build_report(new_campaign(opened, [opened + timedelta(minutes=m) for m in range(1, 7)]), now=NOW)
    md = render_markdown(report)
    assert "| Velocity | 6 submissions in the 10 minutes since the campaign opened |" in md
    assert "| ETA | not enough activity yet for an ETA (it takes 1 day since the campaign opened) |" in md
    text = " ".join(_check_html(render_html(report)).text)
    assert "6 so far" in text and "not enough activity yet for an ETA" in text
    assert "2028" not in md and "days)" not in md.split("| ETA |")[1].splitlines()[0]


def test_velocity_over_the_days_since_the_campaign_opened():
    opened = NOW - timedelta(days=2)
    snap = new_campaign(opened, [opened + timedelta(hours=4 * h) for h in range(10)], n_records=60)
    md = render_markdown(build_report(snap, now=NOW))
    assert "| Velocity | 5.0 submissions/day over the 2 days since the campaign opened |" in md
    assert "| ETA | 2024-06-01 (in 22.0 days) |" in md


def test_markdown_escapes_usernames():
    md = render_markdown(build_report(evil_snapshot(), now=NOW))
    assert re.search(r"(?<!\\)[<>]", md) is None  # every angle bracket is escaped
    assert "\\<script\\>" in md and "\\<img src=" in md
    assert "bob\\|\\*pipe\\*" in md
    # every leaderboard row still has 8 cells: escaped pipes do not split them
    rows = [line for line in md.splitlines() if "pipe" in line and line.startswith("| ")]
    assert rows and all(line.replace("\\|", "").count("|") == 9 for line in rows)


def test_empty_report_renders():
    report = build_report(Snapshot(meta={"min_submitted": 2, "template": "binary"}), now=NOW)
    assert report.progress.velocity.eta_date is None
    md = render_markdown(report)
    assert "**0 of 0 records completed (0.0%)**" in md
    # no records: nothing was observed, so no week without submissions either
    assert "| ETA | unknown (no submissions yet) |" in md
    assert "No responses yet." in md
    html = render_html(report)
    assert "No syncs recorded yet" in html and "No responses yet." in html
    _check_html(html)


def _with_judges(snap: Snapshot, rows: list[dict[str, Any]]) -> Snapshot:
    suggestions = conform(pl.DataFrame(rows), "suggestions")
    return Snapshot(
        records=snap.records,
        responses=snap.responses,
        syncs=snap.syncs,
        suggestions=suggestions,
        meta=snap.meta,
    )


def _suggestion(rid: str, question: str, slot: int | None, value: object, agent: str) -> dict[str, Any]:
    return {
        "record_id": rid,
        "question": question,
        "slot": slot,
        "value": str(value),
        "score": None,
        "agent": agent,
    }


def _round_trip_snapshots() -> dict[str, Snapshot]:
    """Snapshots whose reports hold every kind of agreement entry (judges, Fleiss, Kendall's W, pairs)."""
    rating = _with_judges(
        rating_snapshot(),
        [_suggestion(r, f"rating_{s}", s, s + 2, "judge") for r in ("r1", "r2", "r4") for s in (1, 2)],
    )
    ranked = [row for i in range(1, 4) for row in rec(f"k{i}", template="ranking", slots=3)]
    rankings = [
        row
        for i in range(1, 4)
        for a, order in (("ann", [1, 2, 3]), ("bob", [1, 3, 2]), ("cy", [2, 1, 3]))
        for row in rank(f"k{i}", a, order, at(9))
    ]
    binary = [row for i in range(1, 7) for row in rec(f"b{i}", template="binary", slots=1)]
    votes = [
        row
        for i in range(1, 7)
        for a in ("ann", "bob")
        for row in vote(f"b{i}", a, "good" if i % 3 else "bad", at(8))
    ]
    return {
        "rating with a judge": rating,
        "ranking": make_snapshot(ranked, rankings, template="ranking"),
        "binary with a judge": _with_judges(
            make_snapshot(binary, votes, template="binary"),
            [_suggestion(f"b{i}", "label", None, "good", "judge") for i in range(1, 7)],
        ),
        "empty": Snapshot(meta={"min_submitted": 2, "template": "binary"}),
    }


@pytest.mark.parametrize("name", list(_round_trip_snapshots()))
def test_renderers_accept_the_json_round_trip(name: str):
    report = build_report(_round_trip_snapshots()[name], now=NOW, min_shared=2)
    # what `campaign status --json` prints, "sync" key included
    printed = json.dumps({**report.to_dict(), "sync": None}, indent=2)
    again = Report.from_dict(json.loads(printed))
    assert again == report
    assert again.to_dict() == report.to_dict()
    assert render_markdown(again) == render_markdown(report)
    assert render_html(again) == render_html(report)


def test_every_agreement_figure_names_its_statistic():
    # Binary once showed "overall -0.333" (Fleiss' kappa) beside a JSON "overall" that is alpha.
    snapshots = _round_trip_snapshots()
    binary = build_report(snapshots["binary with a judge"], now=NOW, min_shared=2)
    data = binary.to_dict()["agreement"]
    assert data["overall"]["statistic"] == "alpha"
    assert data["overall"]["label"] == "Krippendorff's α (nominal)"
    assert data["fleiss"]["label"] == "Fleiss' κ"
    assert all("label" in entry for entry in data["pairwise"] + data["annotators"])
    md = render_markdown(binary)
    assert f"| label | Fleiss' κ | {binary.agreement.fleiss.value:.3f} |" in md
    assert "| label | Krippendorff's α (nominal) |" in md
    assert "| overall | Fleiss" not in md
    html = render_html(binary)
    assert "label · Fleiss&#x27; κ" in html and '<td class="l">Fleiss&#x27; κ</td>' in html
    ranking = build_report(snapshots["ranking"], now=NOW, min_shared=2)
    assert ranking.to_dict()["agreement"]["overall"]["statistic"] == "alpha"
    assert ranking.to_dict()["agreement"]["kendall_w"]["label"] == "Kendall's W (mean)"
    md = render_markdown(ranking)
    assert "| ranking | Kendall's W (mean) |" in md and "| ranking | Krippendorff's α (ordinal) |" in md
    # every row of every agreement table says which statistic it is
    for report in (binary, ranking, build_report(rating_snapshot(), now=NOW)):
        rows = [
            line for line in render_markdown(report).split("### Agreement")[1].splitlines() if "|" in line
        ]
        assert rows[2:] and all(cell_count(row) == 4 and row.split("|")[2].strip() for row in rows[2:])
        assert all(row.split("|")[1].strip() != "overall" or "α" in row for row in rows[2:])


def cell_count(row: str) -> int:
    return row.replace("\\|", "").count("|") - 1


def test_from_dict_refuses_other_json():
    with pytest.raises(InputError, match="Not a campaign status report"):
        Report.from_dict({"schema_version": 1, "dataset": {"name": "x"}})


class _Checker(HTMLParser):
    """Collects tags and attributes and checks that non-void elements nest and close."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.errors: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs.extend((tag, name, value) for name, value in attrs)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}> with open {self.stack[-3:]}")
            return
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _check_html(html: str, *, url_text: bool = False) -> _Checker:
    """Parse, check nesting, and refuse anything that could load a resource (URLs as text allowed on request)."""
    checker = _Checker()
    checker.feed(html)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert checker.tags[:1] == ["html"] and html.startswith("<!DOCTYPE html>")
    for forbidden in ("script", "link", "img", "iframe", "object", "embed"):
        assert forbidden not in checker.tags
    for _tag, name, value in checker.attrs:
        if name in ("src", "href", "xlink:href", "action", "srcset"):
            pytest.fail(f"external reference {name}={value!r}")
        assert not name.startswith("on")
    if not url_text:
        assert "http://" not in html and "https://" not in html
    assert "url(" not in html and "@import" not in html
    return checker


def test_html_is_self_contained_and_well_formed():
    html = render_html(build_report(rating_snapshot(), now=NOW))
    checker = _check_html(html)
    assert checker.tags.count("svg") == 4
    ids = {value for _tag, name, value in checker.attrs if name == "id"}
    assert {"chart-progress", "chart-daily", "chart-leaderboard", "chart-agreement"} <= ids
    text = " ".join(checker.text)
    assert "of 5 records · 40.0%" in text and "2024-05-17" in text and "in 7.0 days" in text
    assert "alice" in text and "n_units" in text
    # the progress chart has a point per sync
    assert checker.tags.count("circle") == 2


def test_html_escapes_every_string_from_data():
    html = render_html(build_report(evil_snapshot(), now=NOW))
    checker = _check_html(html, url_text=True)  # the dataset name holds a URL, shown as text
    assert "<script>" not in html and "<img" not in html
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert EVIL in " ".join(checker.text)  # shown as text, not run


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium")
def test_html_renders_in_headless_chromium(tmp_path: Path):
    sync_api = pytest.importorskip("playwright.sync_api")
    path = tmp_path / "report.html"
    path.write_text(render_html(build_report(rating_snapshot(), now=NOW)), encoding="utf-8")
    requests: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.on("request", lambda request: requests.append(request.url))
            page.goto(path.as_uri())
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            texts_fit = page.evaluate(_TEXTS_FIT_JS)
            counts: dict[str, Any] = page.evaluate(
                "() => ({svg: document.querySelectorAll('svg').length,"
                " rect: document.querySelectorAll('svg rect').length,"
                " polyline: document.querySelectorAll('svg polyline').length,"
                " width: document.querySelector('#chart-leaderboard').getBoundingClientRect().width})"
            )
        finally:
            browser.close()
    png = tmp_path / "report.png"
    assert png.exists() and png.stat().st_size > 20_000
    assert counts["svg"] == 4 and counts["rect"] > 0 and counts["polyline"] == 2 and counts["width"] > 100
    assert all(url.startswith(("file:", "data:")) for url in requests), requests
    assert texts_fit == []


# Every <text> of every chart, as laid out, lies inside its SVG's viewBox: nothing is clipped at an edge.
_TEXTS_FIT_JS = """() => [...document.querySelectorAll('svg')].flatMap(svg => {
  const box = svg.viewBox.baseVal;
  return [...svg.querySelectorAll('text')].map(t => [t, t.getBBox()])
    .filter(([t, b]) => b.x < box.x - 0.5 || b.x + b.width > box.x + box.width + 0.5)
    .map(([t, b]) => `${svg.id}: ${t.textContent} spans ${b.x.toFixed(1)}..${(b.x + b.width).toFixed(1)}`);
})"""


def _agreement_notes_snapshot() -> Snapshot:
    """A binary campaign whose Fleiss' kappa is 'not applicable' and whose judge has too little data."""
    records = [row for i in range(1, 5) for row in rec(f"b{i}", template="binary", slots=1)]
    votes = [row for i in range(1, 5) for a in ("ann", "bob") for row in vote(f"b{i}", a, "good", at(8))]
    votes += vote("b1", "cy", "bad", at(8))
    snap = make_snapshot(records, votes, template="binary", dataset="agreement-notes")
    return _with_judges(snap, [_suggestion("b1", "label", None, "good", "a-judge-with-a-long-name")])


@pytest.mark.browser
@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's /usr/bin/chromium")
@pytest.mark.parametrize("name", ["notes", "empty"])
def test_chart_texts_stay_inside_the_charts_in_chromium(tmp_path: Path, name: str):
    """'not enough data (n_units=…)' once ran past the agreement chart's right edge."""
    sync_api = pytest.importorskip("playwright.sync_api")
    snap = (
        _agreement_notes_snapshot()
        if name == "notes"
        else Snapshot(meta={"min_submitted": 2, "template": "binary"})
    )
    report = build_report(snap, now=NOW)
    assert any(not math.isfinite(s.value or math.nan) for _, s in agreement_rows(report.agreement))
    path = tmp_path / "report.html"
    path.write_text(render_html(report), encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(path.as_uri())
            page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
            outside = page.evaluate(_TEXTS_FIT_JS)
            n_texts = page.evaluate("() => document.querySelectorAll('#chart-agreement text').length")
        finally:
            browser.close()
    assert n_texts > 3
    assert outside == []


def test_rich_status_shows_names_as_typed(tmp_path: Path):
    """Square brackets in a dataset or annotator name are text, not rich markup."""
    from click.testing import CliRunner

    from campaign.cli import cli
    from campaign.snapshot import save_snapshot

    mallory = "[red]mallory[/red]"
    records = [row for i in range(1, 7) for row in rec(f"r{i}")]
    responses = [
        row
        for i in range(1, 7)
        for annotator, values in (
            ("alice", [i % 5 + 1, 1]),
            ("bob", [i % 5 + 1, 1]),
            (mallory, [5 - i % 5, 5]),
        )
        for row in rate(f"r{i}", annotator, values, at(9))
    ]
    directory = tmp_path / "brackets"
    runner = CliRunner(mix_stderr=False)
    assert runner.invoke(cli, ["init", str(directory), "--template", "rating"]).exit_code == 0
    save_snapshot(directory, make_snapshot(records, responses, dataset="[bold]team[/bold] data"))
    result = runner.invoke(cli, ["status", "--campaign", str(directory), "--no-sync"])
    assert result.exit_code == 0, result.output
    assert "[bold]team[/bold] data (rating, min_submitted=2)" in result.stdout
    assert mallory in result.stdout
    assert f"Below the agreement threshold: {mallory}" in result.stderr


def _status_of(tmp_path: Path, snapshot: Snapshot, template: str) -> Any:
    """`campaign status --no-sync` of a new campaign folder holding `snapshot`."""
    from click.testing import CliRunner

    from campaign.cli import cli
    from campaign.snapshot import save_snapshot

    directory = tmp_path / template
    runner = CliRunner(mix_stderr=False)
    assert runner.invoke(cli, ["init", str(directory), "--template", template]).exit_code == 0
    save_snapshot(directory, snapshot)
    result = runner.invoke(cli, ["status", "--campaign", str(directory), "--no-sync"])
    assert result.exit_code == 0, result.output
    return result


def test_rich_status_names_every_agreement_statistic(tmp_path: Path):
    snap = _round_trip_snapshots()["binary with a judge"]
    out = _status_of(tmp_path, snap, "binary").stdout
    table = out.split("Agreement")[1]
    assert "question" in table and "statistic" in table
    fleiss = build_report(snap).agreement.fleiss
    assert fleiss is not None and fleiss.value is not None
    fleiss_line = next(line for line in table.splitlines() if "Fleiss' κ" in line)
    assert f"{fleiss.value:.3f}" in fleiss_line and "overall" not in fleiss_line
    assert "Krippendorff's α (nominal)" in table


def test_rich_status_before_any_response_says_so(tmp_path: Path):
    opened = NOW - timedelta(minutes=10)
    result = _status_of(tmp_path, new_campaign(opened, [], n_records=3), "binary")
    assert "Annotators: no responses yet." in result.stdout
    assert "rank" not in result.stdout and "last active" not in result.stdout
    assert "ETA: unknown (no submissions yet)." in result.stdout


def test_html_before_any_response_has_no_empty_leaderboard():
    html = render_html(build_report(new_campaign(NOW - timedelta(minutes=10), [], n_records=3), now=NOW))
    assert "No responses yet." in html and "Last active</th>" not in html
