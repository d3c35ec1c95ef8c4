"""Shared rendering for commands: data to stdout, messages to stderr."""

from __future__ import annotations

import json
from typing import Any

import click
from rich.console import Console

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def note(message: str) -> None:
    """A progress or status message, on stderr so that stdout stays data."""
    stderr.print(message, highlight=False)
