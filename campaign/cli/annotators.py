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
        campaign annotators reset-password alice --out passwords.csv
    """


@annotators.command()
@campaign_option
@click.argument("file", required=False, type=click.Path(path_type=Path, dir_okay=False))
@click.option("--username", "usernames", multiple=True, help="An annotator to add (repeatable).")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Add new passwords to this CSV file (mode 0600) instead of printing them; rows already in it are kept.",
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
    Passwords of new accounts are shown once, or added to --out (checked before any account is
    created; an existing passwords file keeps its rows). API keys are never shown.

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
        results = add_annotators(argilla.connect(), campaign.workspace, specs, passwords_file=out)
    new_passwords = [(r.username, r.password) for r in results if r.password is not None]
    if out is not None and new_passwords:
        note(f"Wrote {len(new_passwords)} new password(s) to {out} (mode 0600).")
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


@annotators.command("reset-password")
@campaign_option
@click.argument("username")
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Add the new password to this CSV file (mode 0600) instead of printing it.",
)
def reset_password(campaign_dir: Path, username: str, out: Path | None) -> None:
    """Give USERNAME, a member of the campaign's workspace, a new random password.

    For a password that was lost (not saved, or shown once and gone). The old password stops
    working. The new one is shown once, or written to --out (checked before the reset; an
    existing passwords file keeps its other rows).

    \b
    Example:
        campaign annotators reset-password alice
        campaign annotators reset-password alice --out passwords.csv
    """
    from campaign import client as argilla
    from campaign.annotators import check_passwords_file, reset_password, save_passwords
    from campaign.campaign_file import load_campaign

    with user_errors():
        campaign = load_campaign(campaign_dir)
        target = check_passwords_file(out) if out is not None else None
        password = reset_password(argilla.connect(), campaign.workspace, username)
        if target is not None:
            save_passwords(target, [(username, password)])
    if target is not None:
        note(f"Wrote the new password of {username} to {out} (mode 0600).")
        return
    click.echo(password)
    note(f"The new password of {username} is shown once. Share it privately.")
