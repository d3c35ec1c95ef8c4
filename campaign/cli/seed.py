"""`campaign seed`: distilabel outputs (and other sources) into the campaign's dataset."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, print_json, stderr, stdout, warn

if TYPE_CHECKING:
    from campaign.seed import PlanPreview


def _parse_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in values:
        key, sep, column = item.partition("=")
        if not sep or not key.strip() or not column.strip():
            raise click.BadParameter(
                f"{item!r}: write it as field=column, e.g. prompt=question.", param_hint="--map"
            )
        mapping[key.strip()] = column.strip()
    return mapping


@click.command()
@campaign_option
@click.argument("sources", nargs=-1, required=True)
@click.option("--config", "config_name", help="Which config of a Distiset (or Hub dataset) to read.")
@click.option("--split", help="Which split to read (default: train, or the only one).")
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Map a field to a source column: prompt, responses (comma-separated columns), models, "
    "ratings, rationales, judge, language. Repeatable.",
)
@click.option(
    "--round", "round_", type=int, help="Annotation round written to metadata [default: campaign.yaml]."
)
@click.option("--source-name", help="Value of the 'source' metadata [default: derived from SOURCE].")
@click.option(
    "--no-shuffle", is_flag=True, help="Keep the source order of responses instead of shuffling slots."
)
@click.option(
    "--seed",
    "shuffle_seed",
    type=int,
    help="Seed of the slot shuffle and of --sample [default: campaign.yaml].",
)
@click.option("--strict", is_flag=True, help="Fail on the first row that would be skipped.")
@click.option(
    "--skip-identical",
    is_flag=True,
    help="Skip rows whose responses are identical (after whitespace normalisation) instead of warning.",
)
@click.option("--limit", type=click.IntRange(min=1), help="Seed at most N records.")
@click.option("--sample", type=click.IntRange(min=1), help="Seed a deterministic sample of N records.")
@click.option(
    "--max-chars",
    type=click.IntRange(min=1),
    default=100_000,
    show_default=True,
    help="Skip rows whose texts are longer than this.",
)
@click.option("--dry-run", is_flag=True, help="Show the first records and the summary; write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def seed(
    campaign_dir: Path,
    sources: tuple[str, ...],
    config_name: str | None,
    split: str | None,
    maps: tuple[str, ...],
    round_: int | None,
    source_name: str | None,
    no_shuffle: bool,
    shuffle_seed: int | None,
    strict: bool,
    skip_identical: bool,
    limit: int | None,
    sample: int | None,
    max_chars: int,
    dry_run: bool,
    as_json: bool,
) -> None:
    """Turn distilabel outputs into records of the campaign's dataset.

    SOURCE is a distilabel Distiset folder, a `datasets` save_to_disk folder, a parquet, jsonl or
    csv file, or a Hub dataset id (HF_TOKEN is honoured). Columns are mapped automatically
    (instruction/prompt, generations/response, generation_models, ratings) or with --map.
    Record ids are content hashes: running it again adds nothing twice, and an interrupted run
    resumes where it stopped. Judge ratings become suggestions.

    \b
    Example:
        campaign seed ./distiset --campaign dutch-dpo --dry-run
        campaign seed ./distiset --campaign dutch-dpo --round 2
        campaign seed data.jsonl --map prompt=question --map responses=answer_a,answer_b
    """
    from campaign.campaign_file import load_campaign, seed_kind
    from campaign.seed import (
        SeedOptions,
        check_dataset_fits,
        describe_plan,
        open_source,
        plan_records,
        write_plan,
    )

    mapping = _parse_map(maps)
    with user_errors(
        resume="Run the same command again to resume: records already on the server are skipped."
    ):
        campaign = load_campaign(campaign_dir)
        options = SeedOptions(
            template=seed_kind(campaign),
            responses=campaign.responses,
            round=campaign.round if round_ is None else round_,
            source_name=source_name,
            language=campaign.language,
            mapping=mapping,
            shuffle=not no_shuffle,
            seed=campaign.seed if shuffle_seed is None else shuffle_seed,
            strict=strict,
            skip_identical=skip_identical,
            max_chars=max_chars,
            limit=limit,
            sample=sample,
        )
        readers = [open_source(source, config=config_name, split=split) for source in sources]
        if dry_run:
            preview = describe_plan(readers, options)
            preview.report.require_records()
            _show_dry_run(preview, as_json)
            return
        from campaign import client as argilla

        client = argilla.connect()
        dataset = client.require_dataset(campaign.name, campaign.workspace)
        check_dataset_fits(client, str(dataset["id"]), readers, options)
        plan = plan_records(readers, options)
        with Progress(
            TextColumn("[bold]Seeding[/bold]"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("created {task.fields[created]}, present {task.fields[present]}"),
            TimeElapsedColumn(),
            console=stderr,
            transient=False,
            disable=as_json,
        ) as progress:
            task = progress.add_task("seed", total=None, created=0, present=0)
            totals = {"created": 0, "present": 0}

            def on_batch(created: int, present: int) -> None:
                totals["created"] += created
                totals["present"] += present
                progress.update(
                    task, advance=created + present, created=totals["created"], present=totals["present"]
                )

            outcome = write_plan(client, str(dataset["id"]), plan, on_batch=on_batch)
        outcome.report.require_records()
    summary = outcome.to_dict()
    summary["dataset"] = {
        "name": campaign.name,
        "workspace": campaign.workspace,
        "url": client.dataset_url(dataset["id"]),
    }
    if as_json:
        print_json(summary)
        return
    _show_report(summary["report"])
    stdout.print(
        f"Created {outcome.created} records, {outcome.already_present} already present, "
        f"{outcome.report.rows_skipped} rows skipped, in {outcome.seconds:.1f}s."
    )
    if outcome.completed:
        stdout.print(
            f"Added missing metadata or suggestions to {outcome.completed} of the records already present "
            "(their responses are unchanged)."
        )
    stdout.print(f"Annotators work at {summary['dataset']['url']}")


def _show_report(report: dict[str, Any]) -> None:
    if report["skipped"] or report["suggestion_skipped"]:
        table = Table(title="Skipped", title_justify="left")
        table.add_column("reason")
        table.add_column("what", justify="left")
        table.add_column("count", justify="right")
        for reason, count in report["skipped"].items():
            table.add_row(reason, "row", str(count))
        for reason, count in report["suggestion_skipped"].items():
            table.add_row(reason, "suggestion only", str(count))
        stderr.print(table)
        for example in [e for e in report["examples"] if e["kind"] != "warning"][:5]:
            note(
                f"  e.g. {example['source']} row {example['row']}: {example['reason']} ({example['detail']})"
            )
    for reason, count in report["warnings"].items():
        first = next(e for e in report["examples"] if e["kind"] == "warning" and e["reason"] == reason)
        warn(
            f"Warning: {count} row(s) seeded with {reason}, e.g. {first['source']} row {first['row']} "
            f"({first['detail']}). Seed with --skip-identical to leave such rows out."
        )


def _show_dry_run(preview: PlanPreview, as_json: bool) -> None:
    if as_json:
        print_json(
            {"records": [r.to_argilla_dict() for r in preview.records], "report": preview.report.to_dict()}
        )
        return
    for record in preview.records:
        table = Table(title=f"record {record.id}", title_justify="left", show_header=False)
        for name, value in record.fields.items():
            table.add_row(name, value if len(value) < 200 else value[:197] + "...")
        table.add_row("metadata", ", ".join(f"{k}={v}" for k, v in record.metadata.items()))
        table.add_row(
            "suggestions", ", ".join(f"{s.question}={s.value} ({s.agent})" for s in record.suggestions)
        )
        stdout.print(table)
    report = preview.report.to_dict()
    _show_report(report)
    stdout.print(
        f"Dry run: {report['records']} records from {report['rows_read']} rows, {report['rows_skipped']} rows "
        "skipped. Nothing was written."
    )
