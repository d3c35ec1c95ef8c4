"""`campaign deploy`: run the campaign's server on a Hugging Face Space that volunteers sign in to."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, stdout


@click.group()
def deploy() -> None:
    """Put the campaign's server where volunteers can reach it.

    \b
    Example:
        campaign deploy space my-org/dutch-dpo-annotate --dry-run
        campaign deploy space my-org/dutch-dpo-annotate --org-only my-org
    """


@deploy.command()
@click.argument("repo_id")
@campaign_option
@click.option(
    "--folder",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to write the Space folder [default: space/ in the campaign directory].",
)
@click.option("--dry-run", is_flag=True, help="Write the Space folder and print what would be created.")
@click.option(
    "--hardware", default=None, help="Space hardware, e.g. cpu-upgrade [default: the Hub's, cpu-basic]."
)
@click.option("--private", is_flag=True, help="Make the Space private (volunteers then need access to it).")
@click.option("--org-only", "org_only", default=None, metavar="ORG", help="Only members of ORG may sign in.")
@click.option("--timeout", default=900.0, show_default=True, help="Seconds to wait until the Space answers.")
def space(
    repo_id: str,
    campaign_dir: Path,
    folder: Path | None,
    dry_run: bool,
    hardware: str | None,
    private: bool,
    org_only: str | None,
    timeout: float,
) -> None:
    """Deploy the campaign's server to the Hugging Face Space REPO_ID, with HF sign-in.

    Creates the Space (Docker, this argilla-campaign version) and a private dataset repo REPO_ID-db for
    copies of its database, sets the owner's key and password and your token as Space secrets, uploads,
    and waits until it answers. Afterwards 'campaign create', 'seed', 'status' and 'export' use the Space.
    Needs a Hugging Face token with write access ('hf auth login' or HF_TOKEN).

    \b
    Example:
        campaign deploy space my-org/dutch-dpo-annotate --dry-run
        campaign deploy space my-org/dutch-dpo-annotate --hardware cpu-upgrade --org-only my-org
    """
    from campaign.campaign_file import load_campaign_in
    from campaign.deploy.space import SpaceOptions, check_repo_id, deploy, plan

    with user_errors():
        check_repo_id(repo_id)
        found = load_campaign_in(campaign_dir)
        options = SpaceOptions(
            repo_id=repo_id,
            workspace=found.workspace if found else "argilla",
            title=found.name if found else None,
            hardware=hardware,
            private=private,
            org_only=org_only,
        )
        target = folder or campaign_dir / "space"
        if dry_run:
            for line in plan(options, target).lines():
                click.echo(line)
            return
        result = deploy(options, target, timeout=timeout, progress=note)
    stdout.print(f"[green]The Space answers[/green] at {result.url}")
    note(f"Volunteers sign in with Hugging Face at https://huggingface.co/spaces/{result.repo_id}")
    note(f"Campaign commands now use it (recorded in {result.record}); 'campaign deploy forget' undoes that.")


@deploy.command()
def forget() -> None:
    """Stop using the deployed Space: campaign commands go back to the local server.

    \b
    Example:
        campaign deploy forget
    """
    from campaign.deploy.space import forget as forget_space

    repo_id = forget_space()
    note(f"Forgot the Space {repo_id}." if repo_id else "No Space was recorded.")
