"""Shared rendering for commands: data to stdout, messages to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console

# Tables keep their shape when piped to a file or a chat post, where rich would assume 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
stderr = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def note(message: str) -> None:
    """A progress or status message, on stderr so that stdout stays data."""
    stderr.print(message, highlight=False)
