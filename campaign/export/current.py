"""Export what the server holds now: sync the campaign's snapshot, then export it.

`campaign export` syncs first by default, so that an export right after annotation reflects the
server; `sync=False` exports the stored snapshot as it is (offline and reproducible).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from campaign.errors import UsageError
from campaign.export.build import ExportResult
from campaign.export.options import ExportOptions

if TYPE_CHECKING:
    from campaign.campaign_file import CampaignFile
    from campaign.client import ArgillaClient
    from campaign.snapshot import SyncResult


@dataclass(frozen=True)
class CampaignExport:
    """An export, the snapshot it was made from, and the sync that brought it (None without a sync)."""

    result: ExportResult
    snapshot_id: str
    synced_at: datetime | None
    sync: SyncResult | None

    def age_seconds(self, now: datetime | None = None) -> float | None:
        """How old the snapshot is at `now` (default: the current time); None when its sync time is unknown."""
        if self.synced_at is None:
            return None
        return max(0.0, ((now or datetime.now(UTC)) - self.synced_at).total_seconds())


def export_campaign(
    directory: Path,
    campaign: CampaignFile | None,
    out: Path | str | None,
    options: ExportOptions,
    *,
    sync: bool = True,
    client: ArgillaClient | None = None,
) -> CampaignExport:
    """Sync the campaign's snapshot with the server (unless `sync` is False), then export it.

    `campaign` is the directory's campaign.yaml (None without one); a sync needs it to name the dataset.
    """
    from campaign.export import export_snapshot
    from campaign.snapshot import load_snapshot, sync_snapshot

    result: SyncResult | None = None
    if sync:
        if campaign is None:
            msg = (
                f"{directory} has no campaign.yaml, so there is no dataset to sync the snapshot from. "
                "Pass --no-sync to export the snapshot stored there as it is."
            )
            raise UsageError(msg)
        from campaign.campaign_file import seed_kind

        if client is None:
            from campaign.client import connect

            client = connect()
        snapshot, result = sync_snapshot(
            client,
            campaign.directory,
            dataset_name=campaign.name,
            workspace=campaign.workspace,
            template=seed_kind(campaign),
        )
    else:
        snapshot = load_snapshot(directory)
    exported = export_snapshot(snapshot, out, options)
    return CampaignExport(
        result=exported,
        snapshot_id=snapshot.snapshot_id,
        synced_at=_synced_at(snapshot.meta.get("synced_at")),
        sync=result,
    )


def _synced_at(value: object) -> datetime | None:
    """The snapshot's sync time in UTC, from its meta (a datetime or an ISO string)."""
    if isinstance(value, str) and value:
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
