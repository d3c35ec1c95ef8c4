"""What every command shares: the `--campaign` option and the one translation of errors into exit codes.

Exit codes: 0 ok, 1 a known failure, 2 a usage error (130 when interrupted). `CAMPAIGN_DEBUG=1`
re-raises library errors with their traceback instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from campaign.errors import CampaignError, ServerError

CAMPAIGN_OPTION_HELP = "Campaign directory (or its campaign.yaml)."


def campaign_option(func: Any) -> Any:
    """The shared `--campaign DIR` option."""
    return click.option(
        "--campaign",
        "campaign_dir",
        default=".",
        show_default=True,
        type=click.Path(path_type=Path),
        help=CAMPAIGN_OPTION_HELP,
    )(func)


def debug_enabled() -> bool:
    """Whether CAMPAIGN_DEBUG asks for tracebacks."""
    return os.environ.get("CAMPAIGN_DEBUG", "") not in ("", "0", "false")


def error_message(exc: Exception, *, resume: str | None = None) -> tuple[str, int]:
    """The one-line message and the exit code that an error is shown with.

    `resume` is added to server and network failures of commands that are safe to run again.
    Known secrets are scrubbed from every message, whatever raised it.
    """
    from campaign.config import scrub

    if isinstance(exc, CampaignError):
        message = f"{exc} {resume}" if resume and isinstance(exc, ServerError) else str(exc)
        return scrub(message), exc.exit_code
    # Anything else is a bug: one line unless debugging.
    text = f"unexpected {type(exc).__name__}: {exc}. Re-run with CAMPAIGN_DEBUG=1 for the traceback."
    return scrub(text), 1


@contextmanager
def user_errors(*, resume: str | None = None) -> Iterator[None]:
    """Show library errors raised inside the block as one-line click errors with their exit code."""
    try:
        yield
    except CampaignError as exc:
        if debug_enabled():
            raise
        message, exit_code = error_message(exc, resume=resume)
        error = click.ClickException(message)
        error.exit_code = exit_code
        raise error from None
