"""The `campaign` command. Subcommands live one group per module and load only when used."""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from typing import Any

import click

from campaign import __version__
from campaign.cli._common import debug_enabled, error_message

# name -> "module:attribute". A plain registry: built-in groups register the way a plugin would.
COMMANDS: dict[str, str] = {
    "server": "campaign.cli.server:server",
    "init": "campaign.cli.setup:init",
    "create": "campaign.cli.setup:create",
    "annotators": "campaign.cli.annotators:annotators",
    "config": "campaign.cli.setup:config",
    "seed": "campaign.cli.seed:seed",
    "status": "campaign.cli.status:status",
    "agreement": "campaign.cli.agreement:agreement",
    "export": "campaign.cli.export:export",
    "demo": "campaign.cli.demo:demo",
    "backup": "campaign.cli.backup:backup",
    "restore": "campaign.cli.backup:restore",
    "deploy": "campaign.cli.deploy:deploy",
}


def _available() -> dict[str, str]:
    """Registered commands whose module exists in this install."""
    found = {}
    for name, target in COMMANDS.items():
        module = target.split(":")[0]
        if importlib.util.find_spec(module) is not None:
            found[name] = target
    return found


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand runs."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _available().get(cmd_name)
        if target is None:
            return None
        module_name, attr = target.split(":")
        command = getattr(importlib.import_module(module_name), attr)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="campaign")
def cli() -> None:
    """Run community annotation campaigns for preference data on Argilla.

    \b
    A campaign goes: init -> create -> seed -> (annotators annotate) -> status -> export.
    The local Argilla server ('campaign server start') is the default target;
    set ARGILLA_API_URL and ARGILLA_API_KEY to use another one.

    \b
    Example:
        campaign server start
        campaign init my-campaign --template rating --responses 2
        campaign create --campaign my-campaign
    """


def main(argv: list[str] | None = None) -> Any:
    """Console entry point: run the CLI and turn library errors into one-line messages."""
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    try:
        return cli.main(args=argv, prog_name="campaign", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
    except Exception as exc:
        if debug_enabled():
            raise
        message, exit_code = error_message(exc)
        click.secho(f"Error: {message}", fg="red", err=True)
        sys.exit(exit_code)
