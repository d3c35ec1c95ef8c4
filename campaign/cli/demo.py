"""`campaign demo`: the whole loop in one command, on a bundled sample."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from campaign.cli._common import user_errors
from campaign.cli._output import note, print_json, stdout

if TYPE_CHECKING:
    from campaign.demo import DemoResult


@click.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(path_type=Path, file_okay=False),
    default=Path("campaign-demo"),
    show_default=True,
    help="Folder of the demo campaign; running the demo again reuses it.",
)
@click.option(
    "--with-sample-responses",
    is_flag=True,
    help="Have the demo annotators post simulated (seeded random) answers through the API.",
)
@click.option(
    "--annotators",
    type=click.IntRange(1, 20),
    default=3,
    show_default=True,
    help="How many demo annotator accounts to create.",
)
@click.option(
    "--seed", type=int, default=0, show_default=True, help="Seed of the simulated answers (reproducible)."
)
@click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="CAMPAIGN_HOME",
    help="Data dir of the local server [default: $CAMPAIGN_HOME or ~/.local/share/argilla-campaign].",
)
@click.option(
    "--port",
    type=click.IntRange(1, 65535),
    default=6900,
    show_default=True,
    help="Port of the local server, if the demo starts it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON (never with passwords).")
def demo(
    directory: Path,
    with_sample_responses: bool,
    annotators: int,
    seed: int,
    home: Path | None,
    port: int,
    as_json: bool,
) -> None:
    """Run a whole campaign on a bundled sample: server, dataset, seed, annotators.

    Starts the local Argilla if it is not running (or uses ARGILLA_API_URL and ARGILLA_API_KEY),
    creates a rating campaign in --dir, seeds it with about 40 hand-written prompts with three
    model answers and judge ratings, and creates demo annotators whose logins go to
    DIR/demo-logins.csv (mode 0600). --with-sample-responses makes those annotators post
    simulated answers, so that 'campaign status' and 'campaign export' have something to show.
    Running it again adds nothing twice.

    \b
    Example:
        campaign demo
        campaign demo --dir ./my-demo --with-sample-responses --seed 1
        campaign demo --json
    """
    from campaign.demo import DemoOptions, run_demo

    with user_errors():
        options = DemoOptions(
            directory=directory,
            annotators=annotators,
            with_sample_responses=with_sample_responses,
            seed=seed,
            home=home,
            port=port,
        )
        result = run_demo(options, on_step=note)
    if as_json:
        print_json(result.to_dict())
        return
    _render(result)


def _render(result: DemoResult) -> None:
    server = result.server
    if server.external:
        where = "from ARGILLA_API_URL"
    else:
        where = "started now" if server.started else "already running"
    dataset = result.dataset
    seeded = result.seed
    records = seeded["created"] + seeded["already_present"]
    stdout.print("[bold green]The demo campaign is ready.[/bold green]")
    stdout.print(f"  Argilla:    {server.url} ({where})", highlight=False)
    stdout.print(
        f"  Dataset:    '{dataset['name']}' in workspace '{dataset['workspace']}', {records} records "
        f"({seeded['created']} new, {seeded['skipped']} sample rows skipped on purpose)",
        highlight=False,
    )
    stdout.print(f"  Annotate:   {dataset['url']}", highlight=False)
    names = ", ".join(a["username"] for a in result.annotators)
    stdout.print(f"  Logins:     {result.logins_file} (mode 0600) for {names}", highlight=False)
    if server.credentials_file:
        stdout.print(f"  Owner:      login in {server.credentials_file}", highlight=False)
    simulation = result.simulation
    if simulation is not None:
        stdout.print(
            f"  [yellow]Simulated answers[/yellow] (seeded random, not real annotations): posted "
            f"{simulation.submitted} submitted, {simulation.draft} drafts, {simulation.discarded} discarded; "
            f"{simulation.already_answered} were there from an earlier run.",
            highlight=False,
        )
    stdout.print("Next steps:")
    for step in result.next_steps:
        stdout.print(f"  {step}", highlight=False)
