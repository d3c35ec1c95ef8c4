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
    "--round", "round_numbers", type=int, multiple=True, help="Export only this round (repeatable)."
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
@click.option("--overwrite", is_flag=True, help="Replace a non-empty --out folder.")
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
    as_json: bool,
) -> None:
    """Export consensus preference data for TRL from the local snapshot.

    Reads the snapshot that 'campaign status' syncs, applies the consensus policy
    (the 'consensus:' section of campaign.yaml, then these flags), and writes
    <format>/train.parquet and test.parquet, README.md and manifest.json.

    \b
    Example:
        campaign status --campaign dutch-dpo
        campaign export --campaign dutch-dpo --format dpo --out exports/dpo-r1 --round 1
        campaign export --campaign haiku-kto --format all --chat --out exports/all
        campaign export --campaign dutch-dpo --format dpo --push-to-hub me/dutch-dpo
    """
    from campaign.campaign_file import load_campaign_in
    from campaign.export import ExportOptions, export_snapshot
    from campaign.snapshot import load_snapshot

    if campaign_dir.is_file():
        campaign_dir = campaign_dir.parent
    with user_errors():
        if round_numbers and rounds:
            msg = "Use either --round N (repeatable) or --rounds all, not both."
            raise UsageError(msg)
        options = ExportOptions.for_campaign(
            load_campaign_in(campaign_dir),
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
        result = export_snapshot(load_snapshot(campaign_dir), out, options)
    for line in result.notes:
        warn(line)
    summary = result.summary()
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
        table.add_column(column, justify="right" if column in ("train", "test") else "left")
    rows = [(name, spec, "") for name, spec in summary["formats"].items()]
    rows += [(name, spec, " (skipped: nothing kept)") for name, spec in summary["skipped"].items()]
    for name, spec, flag in rows:
        splits = spec.get("splits", {})
        dropped = ", ".join(f"{reason}: {n}" for reason, n in spec["dropped"].items()) or "-"
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
