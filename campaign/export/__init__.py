"""Exports for TRL: consensus -> DPO / ORPO / KTO splits -> a folder with a dataset card, or the Hub."""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from campaign.consensus.policy import ConsensusPolicy
from campaign.errors import UsageError
from campaign.export.build import ExportResult, FormatExport, build_export, resolve_formats
from campaign.export.card import kto_weights, render_card
from campaign.export.formats import FORMATS, AnnotatorMode, to_format, validate_rows
from campaign.export.splits import split_by_prompt
from campaign.export.writers import push_to_hub, write_export
from campaign.snapshot import Snapshot

__all__ = [
    "FORMATS",
    "ExportResult",
    "FormatExport",
    "build_export",
    "export_snapshot",
    "kto_weights",
    "push_to_hub",
    "render_card",
    "resolve_formats",
    "split_by_prompt",
    "to_format",
    "validate_rows",
    "write_export",
]


def export_snapshot(
    snapshot: Snapshot,
    out: Path | str | None,
    *,
    formats: str | Iterable[str] = "all",
    policy: ConsensusPolicy | None = None,
    rounds: Sequence[int] | None = None,
    chat: bool = False,
    system_prompt: str | None = None,
    test_size: float = 0.1,
    seed: int = 0,
    annotators: AnnotatorMode = "omit",
    jsonl: bool = False,
    overwrite: bool = False,
    name: str | None = None,
    language: str | None = None,
    license: str = "other",
    agreement: Mapping[str, Any] | None = None,
    hub_repo: str | None = None,
    private: bool = True,
    token: str | None = None,
    api: Any = None,
) -> ExportResult:
    """Build, write and (with `hub_repo`) push an export; `out=None` needs `hub_repo` and uses a temp dir."""
    if out is None and hub_repo is None:
        msg = "Say where the export goes: --out DIR, --push-to-hub REPO, or both."
        raise UsageError(msg)
    result = build_export(
        snapshot,
        formats=formats,
        policy=policy,
        rounds=rounds,
        chat=chat,
        system_prompt=system_prompt,
        test_size=test_size,
        seed=seed,
        annotators=annotators,
        name=name,
        language=language,
        license=license,
        agreement=agreement,
    )
    if out is not None:
        result = write_export(result, out, overwrite=overwrite, jsonl=jsonl, repo_id=hub_repo)
        if hub_repo is not None:
            assert result.path is not None
            url = push_to_hub(result.path, hub_repo, private=private, token=token, api=api)
            result = replace(result, hub_url=url)
        return result
    assert hub_repo is not None
    with tempfile.TemporaryDirectory(prefix="campaign-export-") as tmp:
        written = write_export(result, Path(tmp) / "export", jsonl=jsonl, repo_id=hub_repo)
        assert written.path is not None
        url = push_to_hub(written.path, hub_repo, private=private, token=token, api=api)
    return replace(result, hub_url=url)
