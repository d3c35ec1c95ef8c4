"""`campaign init`, `campaign create` and `campaign config`: set a campaign up."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click
from rich.table import Table

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, plain, print_json, stdout


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--template",
    "-t",
    required=True,
    metavar="rating|ranking|binary|PATH",
    help="Task template, or the path to your own template YAML file.",
)
@click.option("--responses", "-n", type=int, help="Responses per prompt (2-8; binary takes 1).")
@click.option("--language", help="Language code of the campaign, e.g. nl.")
@click.option("--min-submitted", type=int, help="Annotators needed per record (default: 2).")
@click.option("--name", help="Dataset name (default: the directory name).")
@click.option("--workspace", help="Workspace name (default: derived from the dataset name).")
@click.option("--force", is_flag=True, help="Overwrite an existing campaign.yaml and guidelines.md.")
def init(
    directory: Path,
    template: str,
    responses: int | None,
    language: str | None,
    min_submitted: int | None,
    name: str | None,
    workspace: str | None,
    force: bool,
) -> None:
    """Write campaign.yaml and guidelines.md for a new campaign into DIRECTORY.

    \b
    Example:
        campaign init dutch-dpo --template rating --responses 2 --language nl
        campaign init haiku-kto --template binary --min-submitted 3
    """
    from campaign.campaign_file import init_campaign

    with user_errors():
        result = init_campaign(
            directory,
            template=template,
            responses=responses,
            language=language,
            min_submitted=min_submitted,
            name=name,
            workspace=workspace,
            force=force,
        )
    note(f"Wrote {result.campaign_path} and {result.guidelines_path}.")
    note(
        f"Next: edit them, then run 'campaign create --campaign {directory}' "
        f"to create dataset '{result.campaign.name}' in workspace '{result.campaign.workspace}'."
    )


@click.command()
@campaign_option
@click.option("--dry-run", is_flag=True, help="Show the settings that would be created; contact no server.")
@click.option("--json", "as_json", is_flag=True, help="Write JSON to stdout.")
def create(campaign_dir: Path, dry_run: bool, as_json: bool) -> None:
    """Create the workspace and the dataset of campaign.yaml on the Argilla server.

    Running it again changes nothing. If the dataset exists with other settings,
    it prints the differences and exits with status 1.

    \b
    Example:
        campaign create --campaign dutch-dpo --dry-run
        campaign create --campaign dutch-dpo
    """
    from campaign.campaign_file import load_campaign
    from campaign.templates import settings_summary

    with user_errors():
        campaign = load_campaign(campaign_dir)
        settings = campaign.build_settings()
        summary = settings_summary(settings)
    if dry_run:
        if as_json:
            print_json(
                {
                    "campaign": str(campaign.path),
                    "workspace": campaign.workspace,
                    "dataset": campaign.name,
                    "settings": summary,
                }
            )
        else:
            note(
                f"Dry run, nothing sent. Dataset '{campaign.name}' "
                f"in workspace '{campaign.workspace}' would get:"
            )
            render_summary(summary)
        return

    from campaign.templates import ensure_dataset

    with user_errors():
        result = ensure_dataset(name=campaign.name, workspace=campaign.workspace, settings=settings)
    if as_json:
        print_json(dataclasses.asdict(result))
    where = f"dataset '{campaign.name}' in workspace '{campaign.workspace}'"
    if result.differences:
        if not as_json:
            note(f"The server's {where} differs from {campaign.path}:")
            for line in result.differences:
                note(f"  - {line}")
        message = (
            f"Refusing to change the existing {where}. Make campaign.yaml match the server, "
            "or use a new dataset name."
        )
        raise click.ClickException(message)
    if as_json:
        return
    if result.created:
        if result.workspace_created:
            note(f"Created workspace '{campaign.workspace}'.")
        note(f"Created {where}: {result.url}")
    else:
        note(f"The {where} is already up to date: {result.url}")


def render_summary(summary: dict[str, Any]) -> None:
    """Show a settings summary as rich tables."""
    fields = Table(title="Fields", title_justify="left")
    for column in ("name", "title", "type", "markdown", "required"):
        fields.add_column(column)
    for f in summary["fields"]:
        fields.add_row(
            plain(f["name"]), plain(f["title"]), f["type"], _yes(f["use_markdown"]), _yes(f["required"])
        )
    questions = Table(title="Questions", title_justify="left")
    for column in ("name", "type", "title", "options", "required"):
        questions.add_column(column)
    for q in summary["questions"]:
        options = q["options"]
        shown = (
            ", ".join(f"{k}={v}" for k, v in options.items()) if isinstance(options, dict) else str(options)
        )
        questions.add_row(plain(q["name"]), q["type"], plain(q["title"]), plain(shown), _yes(q["required"]))
    metadata = Table(title="Metadata", title_justify="left")
    for column in ("name", "type", "title", "visible to annotators"):
        metadata.add_column(column)
    for m in summary["metadata"]:
        metadata.add_row(plain(m["name"]), m["type"], plain(m["title"]), _yes(m["visible_for_annotators"]))
    for table in (fields, questions, metadata):
        stdout.print(table)
    distribution = summary["distribution"]
    guidelines = summary["guidelines"]
    stdout.print(
        f"Distribution: {distribution['strategy']}, min_submitted={distribution['min_submitted']}\n"
        f"Guidelines: {guidelines['chars']} characters, sha256 {guidelines['sha256'][:12]}",
        highlight=False,
    )


def _yes(value: Any) -> str:
    return "yes" if value else "no"


@click.group()
def config() -> None:
    """Inspect the effective configuration.

    \b
    Example:
        campaign config show --campaign dutch-dpo
    """


@config.command()
@campaign_option
@click.option("--json", "as_json", is_flag=True, help="Write JSON to stdout.")
def show(campaign_dir: Path, as_json: bool) -> None:
    """Show the server connection and the campaign, each value with where it came from.

    Secrets are redacted.

    \b
    Example:
        campaign config show
        campaign config show --campaign dutch-dpo --json
    """
    from campaign.campaign_file import load_campaign
    from campaign.config import resolve_connection
    from campaign.errors import NotFound

    with user_errors():
        connection = resolve_connection().as_report()
        try:
            campaign: dict[str, Any] | None = load_campaign(campaign_dir).as_dict()
            missing = None
        except NotFound as exc:
            # A missing campaign is normal before 'campaign init'; the connection is still worth showing.
            campaign, missing = None, str(exc)
    if as_json:
        print_json({"connection": connection, "campaign": campaign})
        return
    table = Table(title="Connection", title_justify="left")
    for column in ("setting", "value", "source"):
        table.add_column(column)
    for name, item in connection.items():
        table.add_row(name, plain(item["value"]), plain(item["source"]))
    stdout.print(table)
    if campaign is None:
        note(missing or "No campaign.")
        return
    values = Table(title=plain(f"Campaign ({campaign['path']})"), title_justify="left")
    values.add_column("key")
    values.add_column("value")
    for key, value in campaign.items():
        if key != "path":
            values.add_row(key, plain(value))
    stdout.print(values)
