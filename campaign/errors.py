"""Errors the library raises. Each message says what failed, where, and what to do next.

This module imports nothing from the project: every other module may import it.
"""

from __future__ import annotations


class CampaignError(Exception):
    """Root of every error that is shown to the user as a one-line message."""

    exit_code = 1


class UsageError(CampaignError, ValueError):
    """The user asked for something that cannot work as given (bad option, bad file)."""

    exit_code = 2


class ConfigError(CampaignError, ValueError):
    """A configuration file or environment variable is missing or invalid."""


class ServerError(CampaignError):
    """The local Argilla server could not be started, stopped or reached."""


class ConnectionFailed(ServerError):
    """The Argilla server did not answer."""


class AuthenticationFailed(CampaignError):
    """The server rejected the API key or password."""


class NotFound(CampaignError, LookupError):
    """A workspace, dataset, user or file does not exist."""


class Conflict(CampaignError):
    """What exists on the server differs from what the campaign asks for."""


class InputError(CampaignError, ValueError):
    """An input file (seed source, agreement file, annotators file) is malformed."""


class NotEnoughData(CampaignError, ValueError):
    """A statistic or policy has too little data to give a meaningful answer."""


class DestinationError(CampaignError, OSError):
    """A file or folder cannot be written where asked (a file on the way, no permission, no space)."""


class HubError(CampaignError):
    """The Hugging Face Hub could not be reached, or refused a request (token, permission, name)."""
