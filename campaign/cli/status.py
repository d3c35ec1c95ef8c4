"""`campaign status`: sync the snapshot, then report progress and agreement."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, print_json, stderr, stdout


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
    while True:
        report = _report(campaign_dir, sync=not no_sync, quiet=as_json or markdown)
        if html_path is not None:
            from campaign.report import render_html

            _write_text(html_path, render_html(report))
            note(f"Wrote {html_path}")
        if as_json:
            print_json(report)
        elif markdown:
            from campaign.report import render_markdown

            click.echo(render_markdown(report))
        else:
            _render(report)
        if watch is None:
            return
        time.sleep(watch)


def _report(campaign_dir: Path, *, sync: bool, quiet: bool) -> dict[str, Any]:
    from campaign.campaign_file import load_campaign, seed_kind
    from campaign.report import build_report
    from campaign.snapshot import load_snapshot, sync_snapshot

    with user_errors(resume="The last complete snapshot is unchanged; run the same command again to sync."):
        campaign = load_campaign(campaign_dir)
        directory = campaign.directory
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
        report["sync"] = result.to_dict() if sync else None
    if report["progress"]["totals"]["records"] == 0:
        note("The dataset has no records yet. Seed it with 'campaign seed SOURCE'.")
    elif report["progress"]["totals"]["responses"]["total"] == 0:
        note("No responses yet. Share the dataset URL with annotators ('campaign annotators add').")
    return report


def _write_text(path: Path, text: str) -> None:
    import os

    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _render(report: dict[str, Any]) -> None:
    progress = report["progress"]
    totals = progress["totals"]
    dataset = report["dataset"]
    share = totals["completed_share"]
    stdout.print(
        f"[bold]{dataset['name']}[/bold] ({dataset['template']}, min_submitted={dataset['min_submitted']})"
    )
    from campaign.report import text_bar

    stdout.print(
        f"{text_bar(share)} {totals['completed']}/{totals['records']} records completed ({share:.0%}), "
        f"{totals['remaining_submissions']} submissions to go"
    )
    if len(progress["rounds"]) > 1:
        rounds = Table(title="Rounds", title_justify="left")
        for column in ("round", "records", "completed", "pending", "conflicts"):
            rounds.add_column(column, justify="right")
        for r in progress["rounds"]:
            rounds.add_row(*(str(r[c]) for c in ("round", "records", "completed", "pending", "conflicts")))
        stdout.print(rounds)
    people = Table(title="Annotators", title_justify="left")
    for column in (
        "#",
        "annotator",
        "submitted",
        "draft",
        "discarded",
        "share",
        "last active (UTC)",
        "days",
    ):
        people.add_column(
            column, justify="left" if column == "annotator" else "right", no_wrap=column == "annotator"
        )
    for a in progress["annotators"]:
        people.add_row(
            str(a["rank"]),
            a["annotator"],
            str(a["submitted"]),
            str(a["draft"]),
            str(a["discarded"]),
            f"{a['share']:.0%}",
            (a["last_activity"] or "-")[5:16].replace("T", " "),
            str(a["active_days"]),
        )
    stdout.print(people)
    velocity = progress["velocity"]
    eta = (
        f"ETA {velocity['eta_date']} (in {velocity['eta_days']:.1f} days)"
        if velocity["eta_days"]
        else "no ETA yet"
    )
    stdout.print(
        f"Velocity: {velocity['per_day']:.1f} submissions/day over {velocity['window_days']} days; {eta}."
    )
    stdout.print(
        f"Conflicting records: {progress['conflicts']['records']} of {progress['conflicts']['checked']} "
        "with 2+ submissions."
    )
    from campaign.report import agreement_rows

    table = Table(title="Agreement", title_justify="left")
    for column in ("statistic", "value", "units", "annotators", "note"):
        table.add_column(column, justify="left" if column in ("statistic", "note") else "right")
    for label, stat in agreement_rows(report["agreement"]):
        value = stat.get("value")
        table.add_row(
            label,
            "-" if value is None else f"{value:.3f}",
            str(stat.get("n_units", "")),
            str(stat.get("n_annotators", "")),
            stat.get("reason") or stat.get("note") or "",
        )
    stdout.print(table)
    flagged = [a for a in report["agreement"].get("annotators") or [] if a.get("flagged")]
    if flagged:
        stderr.print(
            "[yellow]Below the agreement threshold:[/yellow] " + ", ".join(a["annotator"] for a in flagged)
        )
