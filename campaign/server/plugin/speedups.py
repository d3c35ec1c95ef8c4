"""Targeted speed-ups of argilla-server 2.8.0, applied in memory by the launcher.

No installed file is edited. Each patch names the upstream code it changes, and nothing is applied
to any argilla-server version other than the one the patches were written against.
`campaign server start --no-speedups` runs the stock code path (without these nor `fixes`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SUPPORTED_VERSION = "2.8.0"


@dataclass(frozen=True)
class Patch:
    """One speed-up: what it replaces upstream, and how to apply it."""

    name: str
    replaces: str
    apply: Callable[[], None]


def _cached_settings_validators() -> None:
    """Validate question and metadata settings with one TypeAdapter per type, built once.

    Upstream builds a new TypeAdapter (a full pydantic core schema) on every `parsed_settings` access,
    which happens for every record's suggestions, responses and metadata. The adapter and its input
    are the same, so the results (and validation errors) are identical.
    """
    from argilla_server.models import database
    from pydantic import TypeAdapter

    # The very objects upstream validates against, taken from the module that uses them.
    question_adapter: TypeAdapter[Any] = TypeAdapter(database.QuestionSettings)
    metadata_adapter: TypeAdapter[Any] = TypeAdapter(database.MetadataPropertySettings)
    check_source(
        database.Question, "parsed_settings", "TypeAdapter(QuestionSettings).validate_python(self.settings)"
    )
    check_source(
        database.MetadataProperty,
        "parsed_settings",
        "TypeAdapter(MetadataPropertySettings).validate_python(self.settings)",
    )
    database.Question.parsed_settings = property(lambda self: question_adapter.validate_python(self.settings))
    database.MetadataProperty.parsed_settings = property(
        lambda self: metadata_adapter.validate_python(self.settings)
    )


def _skip_unsubscribed_webhook_events() -> None:
    """Build a record event only when an enabled webhook subscribes to it.

    Upstream builds every record event (about 7 queries and a full schema dump per record) and only
    then finds that no webhook is enabled. The check for subscribers is the same query upstream runs.
    """
    import sys

    import argilla_server.bulk.records_bulk
    import argilla_server.contexts.distribution  # noqa: F401  binds notify_record_event by name
    from argilla_server.contexts import webhooks
    from argilla_server.webhooks.v1 import records

    original = records.notify_record_event
    check_source(records, "notify_record_event", "event = await build_record_event(db, record_event, record)")

    async def notify_record_event(db: Any, record_event: Any, record: Any) -> list[Any]:
        enabled = await webhooks.list_enabled_webhooks(db)
        if not any(str(record_event) in (webhook.events or []) for webhook in enabled):
            return []
        return await original(db, record_event, record)

    for module in list(sys.modules.values()):
        if getattr(module, "__name__", "").startswith("argilla_server"):
            for name, value in list(vars(module).items()):
                if value is original:
                    setattr(module, name, notify_record_event)


def check_source(owner: Any, name: str, expected: str) -> None:
    """Refuse to patch when the upstream code is not the code the patch replaces."""
    import inspect

    target = getattr(owner, name)
    if isinstance(target, property):
        target = target.fget
    source = inspect.getsource(target)
    if expected not in source:
        msg = f"argilla-server's {getattr(owner, '__name__', owner)}.{name} changed; the patch no longer applies."
        raise RuntimeError(msg)


PATCHES: list[Patch] = [
    Patch(
        name="cached-settings-validators",
        replaces="argilla_server.models.database.Question.parsed_settings and MetadataProperty.parsed_settings",
        apply=_cached_settings_validators,
    ),
    Patch(
        name="skip-unsubscribed-webhook-events",
        replaces="argilla_server.webhooks.v1.records.notify_record_event (and its imported aliases)",
        apply=_skip_unsubscribed_webhook_events,
    ),
]

_applied: list[str] = []


def apply_patches(patches: list[Patch]) -> list[str]:
    """Apply each patch once; refuse silently-wrong patching on another argilla-server version."""
    from argilla_server._version import __version__

    if __version__ != SUPPORTED_VERSION:
        msg = (
            f"campaign's server patches were written for argilla-server {SUPPORTED_VERSION}, "
            f"found {__version__}. Start with --no-speedups, or install argilla-server=={SUPPORTED_VERSION}."
        )
        raise RuntimeError(msg)
    for patch in patches:
        if patch.name not in _applied:
            patch.apply()
            _applied.append(patch.name)
    return [patch.name for patch in patches]


def apply() -> list[str]:
    """Apply every speed-up once (on argilla-server 2.8.0 only)."""
    return apply_patches(PATCHES)
