"""`campaign export`: consensus exports for TRL (DPO, ORPO, KTO) to a folder or the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, print_json, stderr, warn
from campaign.errors import UsageError

METHODS = ("mean", "median", "borda", "mean_rank", "majority", "unanimous")


@click.command()
@campaign_option
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dpo", "orpo", "kto", "all"]),
    default="all",
    show_default=True,
    help="Training format; 'all' writes one config per format.",
)
@click.option(
    "--out", type=click.Path(path_type=Path, file_okay=False), help="Folder to write the export to."
)
@click.option(
    "--round",
    "round_numbers",
    type=click.IntRange(min=1),
    multiple=True,
    help="Export only this round (repeatable); rounds start at 1.",
)
@click.option("--rounds", type=click.Choice(["all"]), help="Export every round (the default).")
@click.option("--chat", is_flag=True, help="Conversational format: lists of {role, content} messages.")
@click.option("--system-prompt", help="System message to put before each prompt (needs --chat).")
@click.option(
    "--test-size", type=float, default=0.1, show_default=True, help="Share of prompts in the test split."
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the prompt-hash split.")
@click.option("--jsonl", is_flag=True, help="Write jsonl files beside the parquet files.")
@click.option("--min-margin", type=float, help="Minimum score margin between chosen and rejected.")
@click.option("--method", type=click.Choice(METHODS), help="Consensus method of the campaign's template.")
@click.option(
    "--judge-fallback/--no-judge-fallback",
    default=None,
    help="Use judge suggestions for records without enough human responses.",
)
@click.option(
    "--annotators",
    type=click.Choice(["omit", "anonymised", "usernames"]),
    default="omit",
    show_default=True,
    help="Add an 'annotators' column: left out, pseudonyms, or usernames.",
)
@click.option("--push-to-hub", "hub_repo", metavar="REPO", help="Also push to this Hub dataset repo.")
@click.option("--public", is_flag=True, help="Make the Hub repo public (it is private by default).")
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace an earlier, different export in --out (the same export again needs no flag: it is left unchanged).",
)
@click.option(
    "--sync/--no-sync",
    default=True,
    show_default=True,
    help="Sync the snapshot with the server first; --no-sync exports the stored snapshot as it is.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def export(
    campaign_dir: Path,
    fmt: str,
    out: Path | None,
    round_numbers: tuple[int, ...],
    rounds: str | None,
    chat: bool,
    system_prompt: str | None,
    test_size: float,
    seed: int,
    jsonl: bool,
    min_margin: float | None,
    method: str | None,
    judge_fallback: bool | None,
    annotators: str,
    hub_repo: str | None,
    public: bool,
    overwrite: bool,
    sync: bool,
    as_json: bool,
) -> None:
    """Export consensus preference data for TRL from the campaign's responses.

    Syncs the local snapshot with the server first (--no-sync exports the stored
    snapshot as it is, offline and reproducible) and says which snapshot it
    exported and how old it is. Applies the consensus policy (the 'consensus:'
    section of campaign.yaml, then these flags), and writes
    <format>/train.parquet and test.parquet, README.md and manifest.json.

    \b
    Example:
        campaign export --campaign dutch-dpo --format dpo --out exports/dpo-r1 --round 1
        campaign export --campaign dutch-dpo --no-sync --format dpo --out exports/dpo-again
        campaign export --campaign haiku-kto --format all --chat --out exports/all
        campaign export --campaign dutch-dpo --format dpo --push-to-hub me/dutch-dpo
    """
    from campaign.campaign_file import load_campaign_in
    from campaign.export import ExportOptions, export_campaign

    if campaign_dir.is_file():
        campaign_dir = campaign_dir.parent
    with user_errors(resume="Run the same command again, or pass --no-sync to export the stored snapshot."):
        if round_numbers and rounds:
            msg = "Use either --round N (repeatable) or --rounds all, not both."
            raise UsageError(msg)
        campaign = load_campaign_in(campaign_dir)
        options = ExportOptions.for_campaign(
            campaign,
            method=method,
            min_margin=min_margin,
            judge_fallback=judge_fallback,
            formats=fmt,
            rounds=round_numbers or None,
            chat=chat,
            system_prompt=system_prompt,
            test_size=test_size,
            seed=seed,
            annotators=annotators,
            jsonl=jsonl,
            overwrite=overwrite,
            hub_repo=hub_repo,
            private=not public,
        )
        exported = export_campaign(campaign_dir, campaign, out, options, sync=sync)
    result = exported.result
    for line in result.notes:
        warn(line)
    age = exported.age_seconds()
    summary = {
        **result.summary(),
        # added beside the existing keys: when the exported snapshot was synced, and what the sync did
        "synced_at": exported.synced_at.isoformat() if exported.synced_at else None,
        "snapshot_age_seconds": round(age, 1) if age is not None else None,
        "sync": exported.sync.to_dict() if exported.sync is not None else None,
    }
    if exported.sync is not None:
        done = exported.sync
        note(
            f"Synced ({done.mode}): {done.n_records} records, {done.n_responses} responses in {done.seconds:.1f}s."
        )
    note(_snapshot_line(exported.snapshot_id, summary["synced_at"], age, synced=exported.sync is not None))
    if result.unchanged:
        note(f"{result.path} already holds this export (same snapshot and options): unchanged.")
    if as_json:
        print_json(summary)
        return
    _render(summary)
    click.echo(result.path or result.hub_url)


def _render(summary: dict[str, Any]) -> None:
    """Kept and dropped counts per format, on stderr."""
    from rich.table import Table

    table = Table(title=f"Export of snapshot {summary['snapshot_id'] or '-'}", title_justify="left")
    for column in ("format", "kept", "train", "test", "dropped (reason: count)"):
        # Reason names are folded onto more lines when narrow, never cut to "…".
        table.add_column(
            column,
            justify="right" if column in ("train", "test") else "left",
            overflow="fold" if column.startswith("dropped") else "ellipsis",
        )
    rows = [(name, spec, "") for name, spec in summary["formats"].items()]
    rows += [(name, spec, " (skipped: nothing kept)") for name, spec in summary["skipped"].items()]
    for name, spec, flag in rows:
        splits = spec.get("splits", {})
        dropped = "\n".join(f"{reason}: {n}" for reason, n in spec["dropped"].items()) or "-"
        table.add_row(
            name + flag,
            f"{spec['kept']}/{spec['total']} {spec['unit']}",
            str(splits.get("train", 0)),
            str(splits.get("test", 0)),
            dropped,
        )
    stderr.print(table)
    rounds = ", ".join(str(r) for r in summary["rounds"]) or "-"
    note(f"Rounds: {rounds}. Config hash: {summary['config_hash']}.")
    if summary.get("hub_url"):
        note(f"Pushed to {summary['hub_url']}")


def _snapshot_line(snapshot_id: str, synced_at: str | None, age: float | None, *, synced: bool) -> str:
    """Which snapshot was exported and how old it is, e.g. 'Exported snapshot 1a2b, synced just now.'"""
    when = "at an unknown time" if synced_at is None or age is None else f"{synced_at} ({_age(age)})"
    stored = "" if synced else " (--no-sync: the stored snapshot, the server was not asked)"
    return f"Exported snapshot {snapshot_id or '-'}, synced {when}{stored}."


def _age(seconds: float) -> str:
    """An age in the largest whole unit: 'just now', '5 minutes ago', '3 days ago'."""
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            n = int(seconds // size)
            return f"{n} {unit}{'s' if n > 1 else ''} ago"
    return "just now"
