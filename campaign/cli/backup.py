"""`campaign backup` and `campaign restore`: keep the campaign's work in more than one place."""

from __future__ import annotations

from pathlib import Path

import click

from campaign.cli._common import CAMPAIGN_OPTION_HELP, user_errors
from campaign.cli._output import note, print_json


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--campaign", "campaign_dir", type=click.Path(path_type=Path), help=CAMPAIGN_OPTION_HELP)
@click.option("--dataset", help="Dataset to back up, instead of the campaign's (needs --workspace).")
@click.option("--workspace", help="Workspace of --dataset.")
@click.option("--overwrite", is_flag=True, help="Replace an earlier backup in DIRECTORY.")
@click.option("--json", "as_json", is_flag=True, help="Write the backup's counts as JSON to stdout.")
def backup(
    directory: Path,
    campaign_dir: Path | None,
    dataset: str | None,
    workspace: str | None,
    overwrite: bool,
    as_json: bool,
) -> None:
    """Save a dataset's settings, records, suggestions, every response and its users to DIRECTORY.

    Drafts and discarded responses are kept, with their statuses, users (by username) and
    timestamps. API keys and passwords are never saved. The backup appears in DIRECTORY only
    once it is complete. Restore it on any server with 'campaign restore DIRECTORY'.

    \b
    Example:
        campaign backup backups/dutch-dpo-2025-06-01 --campaign dutch-dpo
        campaign backup backups/haiku --dataset haiku-kto --workspace haiku
    """
    from campaign import client as argilla
    from campaign.backup import backup_dataset

    with user_errors():
        name, ws = _target(campaign_dir, dataset, workspace)
        result = backup_dataset(argilla.connect(), directory, dataset=name, workspace=ws, overwrite=overwrite)
    counts = result.counts
    if as_json:
        print_json({"directory": str(result.directory), "dataset": name, "workspace": ws, "counts": counts})
        return
    by_status = ", ".join(f"{n} {status}" for status, n in counts["responses_by_status"].items()) or "none"
    note(
        f"Backed up dataset '{name}' (workspace '{ws}') to {result.directory}: {counts['records']} records, "
        f"{counts['responses']} responses ({by_status}), {counts['suggestions']} suggestions, "
        f"{_count(counts['users'], 'user')}."
    )
    note(f"Copy it somewhere else too. Restore with 'campaign restore {result.directory}'.")


@click.command()
@click.argument("directory", type=click.Path(path_type=Path, file_okay=False))
@click.option("--dataset", help="Name for the restored dataset (default: the backed-up name).")
@click.option(
    "--workspace", help="Workspace to restore into (default: the backed-up one; created if missing)."
)
@click.option(
    "--out",
    type=click.Path(path_type=Path, dir_okay=False),
    help="Write passwords of newly created users to this file (0600; default: DIRECTORY/"
    "restored-users-passwords.json).",
)
@click.option(
    "--yes",
    is_flag=True,
    help="Merge into an existing dataset with other records (replaces users' responses).",
)
@click.option("--json", "as_json", is_flag=True, help="Write the result as JSON to stdout (no passwords).")
def restore(
    directory: Path, dataset: str | None, workspace: str | None, out: Path | None, yes: bool, as_json: bool
) -> None:
    """Recreate a backed-up dataset, with its records, suggestions and every user's responses.

    Missing users are created with random passwords, written to a 0600 file. Responses keep their
    users and statuses. Running it again finishes an interrupted restore without duplicates
    (records are matched by external id). It refuses to write into an existing dataset with other
    settings, or with records that did not come from this backup unless --yes is given.

    \b
    Example:
        campaign restore backups/dutch-dpo-2025-06-01
        campaign restore backups/dutch-dpo-2025-06-01 --dataset dutch-dpo-copy --workspace test
    """
    from campaign import client as argilla
    from campaign.backup import restore_dataset

    with user_errors():
        result = restore_dataset(
            argilla.connect(), directory, dataset=dataset, workspace=workspace, passwords_file=out, force=yes
        )
    if as_json:
        print_json(
            {
                "dataset": result.dataset,
                "workspace": result.workspace,
                "dataset_id": result.dataset_id,
                "url": result.url,
                "dataset_created": result.dataset_created,
                "records": result.records,
                "responses": result.responses,
                "users_created": result.users_created,
                "passwords_file": str(result.passwords_file) if result.passwords_file else None,
            }
        )
        return
    action = "Restored" if result.dataset_created else "Updated"
    note(
        f"{action} dataset '{result.dataset}' in workspace '{result.workspace}': {result.records} records, "
        f"{result.responses} responses. {result.url}"
    )
    if result.users_created:
        note(
            f"Created {_count(len(result.users_created), 'user')} ({', '.join(result.users_created)}); their new "
            f"passwords are in {result.passwords_file}. Send each person theirs."
        )
    for line in result.notes:
        note(line)


def _target(campaign_dir: Path | None, dataset: str | None, workspace: str | None) -> tuple[str, str]:
    """The dataset and workspace to back up: explicit options, else the campaign's."""
    from campaign.errors import UsageError

    if dataset is not None:
        if campaign_dir is not None:
            raise UsageError("Give either --campaign or --dataset with --workspace, not both.")
        if workspace is None:
            raise UsageError("--dataset needs --workspace.")
        return dataset, workspace
    from campaign.campaign_file import load_campaign

    campaign = load_campaign(campaign_dir or Path("."))
    return campaign.name, workspace or campaign.workspace


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
