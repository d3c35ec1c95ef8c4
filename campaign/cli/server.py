"""`campaign server`: the local Argilla that campaigns run on by default."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.markup import escape

from campaign.cli._common import user_errors
from campaign.cli._output import note, print_json, stdout

if TYPE_CHECKING:
    from campaign.server.control.local_server import ServerOptions

home_option = click.option(
    "--home",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="CAMPAIGN_HOME",
    help="Data dir of the local server [default: $CAMPAIGN_HOME or ~/.local/share/argilla-campaign].",
)


@click.group()
def server() -> None:
    """Run a local, real Argilla server (SQLite, bundled Redis, web UI) on 127.0.0.1.

    \b
    Example:
        campaign server start
        campaign server status --json
        campaign server stop
    """


@server.command()
@home_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to bind.")
@click.option("--port", default=6900, show_default=True, type=click.IntRange(1, 65535), help="HTTP port.")
@click.option(
    "--database-url",
    default=None,
    help="PostgreSQL URL (postgresql+asyncpg://user:pass@host/db) instead of the default SQLite file.",
)
@click.option("--redis-url", default=None, help="Use an existing Redis instead of starting the bundled one.")
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1, 16),
    help="HTTP worker processes (each ~300 MB); more can serve many annotators on more cores.",
)
@click.option(
    "--no-speedups", is_flag=True, help="Run argilla-server's stock code path (benchmarks, triage)."
)
@click.option(
    "--timeout", default=90.0, show_default=True, help="Seconds to wait until the server is healthy."
)
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@click.option(
    "--foreground",
    is_flag=True,
    help="Run in the foreground for a container: children log to stdout, SIGTERM stops them, "
    "a child's death exits 1. Reads OWNER_API_KEY/OWNER_PASSWORD and a Space's OAuth settings.",
)
def start(
    home: Path | None,
    host: str,
    port: int,
    database_url: str | None,
    redis_url: str | None,
    workers: int,
    no_speedups: bool,
    timeout: float,
    as_json: bool,
    foreground: bool,
) -> None:
    """Start the local server and wait until it is healthy.

    If it is already running with these options, this prints its URL and succeeds; with other options
    it says which differ and exits 1 (stop it first).

    The first start creates the database and an owner account with a random password and API key,
    stored in a credentials file (mode 0600) that every other command finds on its own.

    \b
    Example:
        campaign server start --port 6900
        campaign server start --database-url postgresql+asyncpg://argilla:secret@localhost/argilla
        campaign server start --foreground --host 0.0.0.0 --port 7860
    """
    from campaign.server.control.local_server import LocalServer, ServerOptions

    local = LocalServer(home)
    note(f"Starting the local Argilla server in {local.home} ...")
    options = ServerOptions(
        host=host,
        port=port,
        database_url=database_url,
        redis_url=redis_url,
        speedups=not no_speedups,
        workers=workers,
    )
    if foreground:
        _run_foreground(home, options, timeout=timeout)
    status = local.start(options, timeout=timeout)
    if as_json:
        print_json(status.to_dict())
        return
    if status.already_running:
        stdout.print(f"[green]Argilla is already running[/green] at {escape(status.url or '-')}")
        return
    stdout.print(f"[green]Argilla is running[/green] at {status.url}")
    stdout.print(f"  Log in as the owner with the username and password in {status.credentials_file}")
    stdout.print("  Next: campaign init my-campaign --template rating")


def _run_foreground(home: Path | None, options: ServerOptions, *, timeout: float) -> None:
    import logging
    import sys

    from campaign.server.control.db_backup import schedule_from_env
    from campaign.server.control.foreground import run_foreground
    from campaign.server.control.local_server import LocalServer

    logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(asctime)s campaign: %(message)s")
    backups = schedule_from_env(LocalServer(home).home, os.environ, database_url=options.database_url)
    raise click.exceptions.Exit(run_foreground(home, options, backups=backups, timeout=timeout))


@server.command()
@home_option
def stop(home: Path | None) -> None:
    """Stop the processes that 'campaign server start' started.

    \b
    Example:
        campaign server stop
    """
    from campaign.server.control.local_server import LocalServer

    stopped = LocalServer(home).stop()
    note("Stopped " + ", ".join(f"{name} (pid {pid})" for name, pid in stopped.items()) + ".")


@server.command()
@home_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON: url, healthy, home, credentials_file, pids, versions.",
)
def status(home: Path | None, as_json: bool) -> None:
    """Show whether the local server runs and answers.

    Exits with 1 when it is not healthy, so scripts can wait on it.

    \b
    Example:
        campaign server status --json
    """
    from campaign.server.control.local_server import LocalServer

    report = LocalServer(home).status()
    if as_json:
        print_json(report.to_dict())
    else:
        state = "[green]healthy[/green]" if report.healthy else "[red]not running[/red]"
        stdout.print(f"Local server: {state}")
        stdout.print(f"  url:          {report.url or '-'}")
        stdout.print(f"  home:         {report.home}")
        stdout.print(f"  credentials:  {report.credentials_file}")
        stdout.print(f"  database:     {report.database}")
        stdout.print("  processes:    " + ", ".join(f"{n}={p or '-'}" for n, p in report.pids.items()))
        stdout.print("  versions:     " + ", ".join(f"{n} {v}" for n, v in report.versions.items()))
        if report.last_backup_at is not None or report.last_backup_error:
            stdout.print(f"  last backup:  {_backup_line(report.last_backup, report.last_backup_at)}")
        if report.last_backup_error:
            stdout.print(f"  backup error: {escape(report.last_backup_error)}")
    if not report.healthy:
        raise click.exceptions.Exit(1)


def _backup_line(name: str | None, at: float | None) -> str:
    import time

    if at is None or name is None:
        return "none yet"
    age = max(0, int(time.time() - at))
    ago = f"{age}s" if age < 120 else f"{age // 60} min" if age < 7200 else f"{age // 3600} h"
    return f"{ago} ago ({escape(name)})"


@server.command()
@home_option
@click.argument("process", type=click.Choice(["server", "worker", "redis"]), default="server")
@click.option("-n", "--lines", default=50, show_default=True, help="How many lines to show.")
def logs(home: Path | None, process: str, lines: int) -> None:
    """Print the last lines of a process's log.

    \b
    Example:
        campaign server logs worker -n 100
    """
    from campaign.server.control.local_server import LocalServer

    click.echo(LocalServer(home).logs(process, lines=lines))


@server.command("restore-db")
@home_option
@click.argument("name", required=False)
@click.option("--list", "list_only", is_flag=True, help="List the copies in the store, newest first.")
@click.option("--yes", is_flag=True, help="Replace the database without asking.")
def restore_db(home: Path | None, name: str | None, list_only: bool, yes: bool) -> None:
    """Replace the stopped server's database with a copy from the backup store.

    The store is CAMPAIGN_BACKUP_REPO (a Hub dataset repo, with HF_TOKEN) or CAMPAIGN_BACKUP_DIR, as in
    the Space. NAME picks an older copy; without it, the newest good one. The replaced database is kept
    next to it, and the search index is rebuilt at the next start.

    \b
    Example:
        CAMPAIGN_BACKUP_REPO=my-org/dutch-dpo-annotate-db campaign server restore-db --list
        CAMPAIGN_BACKUP_REPO=my-org/dutch-dpo-annotate-db campaign server restore-db argilla-20250301T120000.sqlite.gz
    """
    from campaign.deploy.store import store_from_env
    from campaign.errors import ConfigError, ServerError
    from campaign.server.control.db_backup import list_copies, restore_into
    from campaign.server.control.local_server import LocalServer

    with user_errors():
        store = store_from_env(os.environ)
        if store is None:
            msg = "No backup store: set CAMPAIGN_BACKUP_REPO (and HF_TOKEN) or CAMPAIGN_BACKUP_DIR."
            raise ConfigError(msg)
        if list_only:
            for copy in list_copies(store):
                click.echo(copy)
            return
        local = LocalServer(home)
        if local.pids().get("server"):
            msg = f"The server of {local.home} is running. Stop it first with 'campaign server stop'."
            raise ServerError(msg)
        if not yes:
            click.confirm(
                f"Replace the database in {local.home} with a copy from {store.describe()}?", abort=True
            )
        restored = restore_into(local.home, store, name)
    note(f"Restored {restored}. Start the server with 'campaign server start'.")
