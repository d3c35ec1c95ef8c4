"""`campaign status`: sync the snapshot, then report progress and agreement."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape
from rich.table import Table

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, print_json, stderr, stdout

if TYPE_CHECKING:
    from collections.abc import Sequence

    from campaign.agreement import CampaignAgreement
    from campaign.progress import AnnotatorProgress, RoundProgress
    from campaign.report import Report
    from campaign.snapshot import SyncResult


@click.command()
@campaign_option
@click.option(
    "--json", "as_json", is_flag=True, help="Print the report as JSON (schema in campaign/progress.py)."
)
@click.option(
    "--markdown", is_flag=True, help="Print the report as Markdown, ready to post to the community."
)
@click.option(
    "--html",
    "html_path",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Also write a self-contained HTML report with charts to this file.",
)
@click.option("--no-sync", is_flag=True, help="Report from the last snapshot without contacting the server.")
@click.option(
    "--watch",
    type=click.FloatRange(min=1.0),
    metavar="SECONDS",
    help="Sync and report again every SECONDS until interrupted.",
)
def status(
    campaign_dir: Path,
    as_json: bool,
    markdown: bool,
    html_path: Path | None,
    no_sync: bool,
    watch: float | None,
) -> None:
    """Sync responses into the local snapshot, then report progress and agreement.

    Shows completion against min_submitted, per-annotator submitted/draft/discarded counts with last
    activity, velocity and ETA, conflicting records, and agreement per question (with the number of
    units behind every figure), including judge-versus-human agreement.

    \b
    Example:
        campaign status --campaign dutch-dpo
        campaign status --campaign dutch-dpo --markdown > report.md
        campaign status --campaign dutch-dpo --html report.html --json
    """
    if as_json and markdown:
        raise click.UsageError("Choose one of --json and --markdown.")
    if html_path is not None:
        _check_html(html_path)  # before the sync: a refused --html changes nothing
    while True:
        report, sync_result = _report(campaign_dir, sync=not no_sync, quiet=as_json or markdown)
        if html_path is not None:
            _write_html(html_path, report, campaign_dir)
            note(f"Wrote {html_path}")
        if as_json:
            sync = sync_result.to_dict() if sync_result is not None else None
            print_json({**report.to_dict(), "sync": sync})
        elif markdown:
            from campaign.report import render_markdown

            click.echo(render_markdown(report))
        else:
            _render(report)
        if watch is None:
            return
        time.sleep(watch)


def _report(campaign_dir: Path, *, sync: bool, quiet: bool) -> tuple[Report, SyncResult | None]:
    """The report of the campaign's snapshot, after syncing it when `sync` (with what the sync did)."""
    from campaign.campaign_file import load_campaign, seed_kind
    from campaign.report import build_report
    from campaign.snapshot import load_snapshot, sync_snapshot

    with user_errors(resume="The last complete snapshot is unchanged; run the same command again to sync."):
        campaign = load_campaign(campaign_dir)
        directory = campaign.directory
        result: SyncResult | None = None
        if sync:
            from campaign import client as argilla

            snapshot, result = sync_snapshot(
                argilla.connect(),
                directory,
                dataset_name=campaign.name,
                workspace=campaign.workspace,
                template=seed_kind(campaign),
            )
            if not quiet:
                note(
                    f"Synced ({result.mode}): {result.n_records} records, {result.n_responses} responses "
                    f"in {result.seconds:.1f}s."
                )
        else:
            snapshot = load_snapshot(directory)
        report = build_report(snapshot)
        if sync:
            from campaign.history import record_sync

            record_sync(directory, report, language=campaign.language)
    totals = report.progress.totals
    if totals.records == 0:
        note("The dataset has no records yet. Seed it with 'campaign seed SOURCE'.")
    elif totals.responses.total == 0:
        note("No responses yet. Share the dataset URL with annotators ('campaign annotators add').")
    return report, result


def _is_html_report(path: Path) -> bool:
    """Whether `path` holds an HTML report that `status --html` wrote (by its title)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as handle:
            head = handle.read(4096)
    except OSError:
        return False
    return head.startswith("<!DOCTYPE html>") and "<title>Campaign status: " in head


def _check_html(path: Path) -> Path:
    """The --html file, once it is new, empty, or an earlier report (never campaign.yaml or another file)."""
    from campaign.destinations import check_file

    with user_errors():
        return check_file(
            path, what="an HTML report of 'campaign status'", ours=_is_html_report, option="--html"
        )


def _write_html(path: Path, report: Report, campaign_dir: Path) -> None:
    """Write the HTML report (its charts from the campaign's history) atomically, then clean up beside it."""
    from campaign.campaign_file import load_campaign
    from campaign.destinations import cannot_write, remove_leftovers, write_file
    from campaign.history import history_path, read_history
    from campaign.report import render_html

    target = _check_html(path)
    with user_errors():
        history = read_history(history_path(load_campaign(campaign_dir).directory))
        try:
            write_file(target, render_html(report, history=history))
        except OSError as exc:
            raise cannot_write(target, exc, option="--html") from None
    remove_leftovers(target)


def _render(report: Report) -> None:
    """The report as rich tables and lines on the terminal; names are shown as typed, never as markup."""
    from campaign.report import eta_text, text_bar, velocity_text

    progress, dataset = report.progress, report.dataset
    totals = progress.totals
    share = totals.completed_share
    name = escape(str(dataset.name))
    stdout.print(f"[bold]{name}[/bold] ({dataset.template}, min_submitted={dataset.min_submitted})")
    stdout.print(
        f"{text_bar(share)} {totals.completed}/{totals.records} records completed ({share:.0%}), "
        f"{totals.remaining_submissions} submissions to go"
    )
    if len(progress.rounds) > 1:
        stdout.print(_rounds_table(progress.rounds))
    if progress.annotators:
        stdout.print(_annotators_table(progress.annotators))
    else:
        # The snapshot knows annotators only by their responses: an empty table would say nothing.
        stdout.print("Annotators: no responses yet.")
    stdout.print(f"Velocity: {velocity_text(progress)}; ETA: {eta_text(progress)}.", markup=False)
    stdout.print(
        f"Conflicting records: {progress.conflicts.records} of {progress.conflicts.checked} "
        "with 2+ submissions."
    )
    stdout.print(_agreement_table(report.agreement))
    flagged = [escape(a.annotator) for a in report.agreement.annotators if a.flagged]
    if flagged:
        stderr.print("[yellow]Below the agreement threshold:[/yellow] " + ", ".join(flagged))


def _rounds_table(rounds: Sequence[RoundProgress]) -> Table:
    table = Table(title="Rounds", title_justify="left")
    for column in ("round", "records", "completed", "pending", "conflicts"):
        table.add_column(column, justify="right")
    for r in rounds:
        table.add_row(*(str(v) for v in (r.round, r.records, r.completed, r.pending, r.conflicts)))
    return table


def _annotators_table(annotators: Sequence[AnnotatorProgress]) -> Table:
    table = Table(title="Annotators", title_justify="left")
    for column in ("#", "annotator", "submitted", "draft", "discarded", "share", "last active (UTC)", "days"):
        table.add_column(
            column, justify="left" if column == "annotator" else "right", no_wrap=column == "annotator"
        )
    for a in annotators:
        table.add_row(
            str(a.rank),
            escape(a.annotator),
            str(a.submitted),
            str(a.draft),
            str(a.discarded),
            f"{a.share:.0%}",
            (a.last_activity or "-")[5:16].replace("T", " "),
            str(a.active_days),
        )
    return table


def _agreement_table(agreement: CampaignAgreement) -> Table:
    from campaign.report import agreement_rows

    table = Table(title="Agreement", title_justify="left")
    for column in ("question", "statistic", "value", "units", "annotators", "note"):
        table.add_column(column, justify="left" if column in ("question", "statistic", "note") else "right")
    for scope, stat in agreement_rows(agreement):
        table.add_row(
            escape(scope),
            escape(stat.label),
            "-" if stat.value is None else f"{stat.value:.3f}",
            str(stat.n_units),
            str(stat.n_annotators),
            escape(stat.reason or stat.note or ""),
        )
    return table
