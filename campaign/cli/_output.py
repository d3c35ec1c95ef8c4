"""Shared rendering for commands: data to stdout, messages to stderr."""

from __future__ import annotations

import json
import sys
from typing import Any

import click
from rich.console import Console
from rich.text import Text

# Tables keep their shape when piped to a file or a chat post, where rich would assume 80 columns.
stdout = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 120)
stderr = Console(stderr=True, soft_wrap=True)


def print_json(data: Any) -> None:
    """Write one JSON document to stdout."""
    click.echo(json.dumps(data, indent=2, sort_keys=False, default=str))


def plain(value: object) -> Text:
    """A table cell shown as typed: user text never reaches rich as markup."""
    return Text("" if value is None else str(value))


def note(message: str) -> None:
    """A progress or status message, on stderr so that stdout stays data.

    Messages carry user text (names, paths, prompts), so they are printed as typed, never read as markup.
    """
    stderr.print(message, markup=False, highlight=False)


def warn(message: str) -> None:
    """A warning on stderr, in yellow, printed as typed like `note`."""
    stderr.print(message, style="yellow", markup=False, highlight=False)
