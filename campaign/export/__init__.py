"""Exports for TRL: consensus -> DPO / ORPO / KTO splits -> a folder with a dataset card, or the Hub."""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from campaign.errors import UsageError
from campaign.export.build import ExportResult, FormatExport, build_export, config_hash
from campaign.export.card import card_agreement, kto_weights, render_card
from campaign.export.current import CampaignExport, export_campaign
from campaign.export.formats import FORMATS, to_format, validate_rows
from campaign.export.options import ExportOptions, resolve_formats
from campaign.export.splits import split_by_prompt
from campaign.export.writers import check_export_folder, export_id, push_to_hub, write_export
from campaign.snapshot import Snapshot

__all__ = [
    "FORMATS",
    "CampaignExport",
    "ExportOptions",
    "ExportResult",
    "FormatExport",
    "build_export",
    "card_agreement",
    "export_campaign",
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
    options: ExportOptions | None = None,
    *,
    agreement: Mapping[str, Any] | None = None,
    token: str | None = None,
    api: Any = None,
) -> ExportResult:
    """Build, write and (with `hub_repo`) push an export; `out=None` needs `hub_repo` and uses a temp dir.

    The card shows the snapshot's agreement unless `agreement` gives another report.
    """
    options = options or ExportOptions()
    hub_repo, jsonl = options.hub_repo, options.jsonl
    if out is None and hub_repo is None:
        msg = "Say where the export goes: --out DIR, --push-to-hub REPO, or both."
        raise UsageError(msg)
    if out is not None:
        # Before any work, so that a refusal costs nothing.
        wanted = export_id(
            snapshot.snapshot_id,
            config_hash(snapshot, options),
            jsonl=jsonl,
            repo_id=hub_repo,
            name=options.name,
            language=options.language,
            license=options.license,
        )
        check_export_folder(out, overwrite=options.overwrite, export_id=wanted)
    notes: tuple[str, ...] = ()
    if agreement is None:
        agreement, left_out = card_agreement(snapshot)
        notes = (left_out,) if left_out else ()
    result = replace(build_export(snapshot, options, agreement=agreement), notes=notes)
    if out is not None:
        result = write_export(result, out, overwrite=options.overwrite, jsonl=jsonl, repo_id=hub_repo)
        if hub_repo is not None:
            assert result.path is not None
            url = push_to_hub(result.path, hub_repo, private=options.private, token=token, api=api)
            result = replace(result, hub_url=url)
        return result
    assert hub_repo is not None
    with tempfile.TemporaryDirectory(prefix="campaign-export-") as tmp:
        written = write_export(result, Path(tmp) / "export", jsonl=jsonl, repo_id=hub_repo)
        assert written.path is not None
        url = push_to_hub(written.path, hub_repo, private=options.private, token=token, api=api)
    return replace(result, hub_url=url)
