"""`campaign annotators`: the volunteers' accounts in the campaign's workspace."""

from __future__ import annotations

from pathlib import Path

import click
from rich.table import Table

from campaign.cli._common import campaign_option, user_errors
from campaign.cli._output import note, print_json, stdout


@click.group()
def annotators() -> None:
    """Create annotator accounts and manage their workspace membership.

    \b
    Example:
        campaign annotators add volunteers.csv --out passwords.csv
        campaign annotators list --json
        campaign annotators remove alice --yes
    """


@annotators.command()
@campaign_option
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--username", "usernames", multiple=True, help="An annotator to add (repeatable).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write new passwords to this CSV file (mode 0600) instead of printing them.",
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the results as JSON (passwords only without --out)."
)
def add(
    campaign_dir: Path, file: Path | None, usernames: tuple[str, ...], out: Path | None, as_json: bool
) -> None:
    """Create annotators with random passwords and add them to the campaign's workspace.

    FILE is a CSV with a header row (username, and optionally first_name, last_name, role,
    password) or a YAML list of usernames or mappings. Re-adding someone changes nothing.
    Passwords of new accounts are shown once, or written to --out; API keys are never shown.

    \b
    Example:
        campaign annotators add volunteers.csv --out passwords.csv
        campaign annotators add --username alice --username bob
    """
    from campaign import client as argilla
    from campaign.annotators import add_annotators, read_annotators, spec_for_username
    from campaign.campaign_file import load_campaign

    if file is None and not usernames:
        raise click.UsageError("Give an annotators FILE or at least one --username.")
    with user_errors():
        campaign = load_campaign(campaign_dir)
        specs = read_annotators(file) if file is not None else []
        known = {s.username for s in specs}
        for name in usernames:
            if name in known:
                raise click.UsageError(f"Username {name!r} is given twice.")
            specs.append(spec_for_username(name))
            known.add(name)
        results = add_annotators(argilla.connect(), campaign.workspace, specs)
    new_passwords = [(r.username, r.password) for r in results if r.password is not None]
    if out is not None and new_passwords:
        _write_passwords(out, new_passwords)
    if as_json:
        print_json(
            [r.public() | ({"password": r.password} if r.password and out is None else {}) for r in results]
        )
        return
    table = Table(title=f"Annotators in workspace '{campaign.workspace}'", title_justify="left")
    for column in ("username", "role", "action", "password"):
        table.add_column(column)
    for r in results:
        shown = "" if not r.password else (f"(in {out})" if out else r.password)
        table.add_row(r.username, r.role, r.action, shown)
    stdout.print(table)
    if new_passwords and out is None:
        note("These passwords are shown once. Share each privately; annotators log in at the server's URL.")


def _write_passwords(path: Path, rows: list[tuple[str, str]]) -> None:
    import csv
    import io

    from campaign.config import write_private_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["username", "password"])
    writer.writerows(rows)
    write_private_text(path, buffer.getvalue())
    note(f"Wrote {len(rows)} new password(s) to {path} (mode 0600).")


@annotators.command("list")
@campaign_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(campaign_dir: Path, as_json: bool) -> None:
    """List the workspace's members with role, workspaces and submitted responses so far.

    \b
    Example:
        campaign annotators list --campaign dutch-dpo --json
    """
    from campaign import client as argilla
    from campaign.annotators import list_annotators
    from campaign.campaign_file import load_campaign

    with user_errors():
        campaign = load_campaign(campaign_dir)
        rows = list_annotators(argilla.connect(), campaign.workspace, campaign.name)
    if as_json:
        print_json(rows)
        return
    table = Table(title=f"Workspace '{campaign.workspace}'", title_justify="left")
    for column in ("username", "role", "workspaces", "submitted"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["username"], row["role"], ", ".join(row["workspaces"]), str(row["submitted"]))
    stdout.print(table)


@annotators.command()
@campaign_option
@click.argument("username")
@click.option("--yes", is_flag=True, help="Confirm the removal.")
def remove(campaign_dir: Path, username: str, yes: bool) -> None:
    """Take USERNAME's membership of the campaign's workspace away. Responses are kept.

    \b
    Example:
        campaign annotators remove alice --yes
    """
    from campaign import client as argilla
    from campaign.annotators import remove_annotator
    from campaign.campaign_file import load_campaign

    if not yes:
        raise click.UsageError(f"Removing {username!r} from the workspace needs --yes.")
    with user_errors():
        campaign = load_campaign(campaign_dir)
        remove_annotator(argilla.connect(), campaign.workspace, username)
    note(f"Removed {username} from workspace '{campaign.workspace}'. Their responses are kept.")
