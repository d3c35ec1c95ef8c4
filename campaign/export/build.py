"""From a snapshot to validated, split TRL frames: the pure part of an export (no files written)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from campaign.consensus import Consolidation, consolidate
from campaign.errors import NotEnoughData, UsageError
from campaign.export.card import kto_weights
from campaign.export.formats import pseudonym, to_format
from campaign.export.options import ExportOptions
from campaign.export.splits import split_by_prompt, test_prompts
from campaign.snapshot import Snapshot


@dataclass(frozen=True)
class FormatExport:
    """One format's consensus accounting and its train/test frames."""

    name: str
    consolidation: Consolidation
    splits: dict[str, pl.DataFrame]

    @property
    def rows(self) -> int:
        """Examples across splits."""
        return sum(frame.height for frame in self.splits.values())

    def summary(self) -> dict[str, Any]:
        """Counts (kept, dropped by reason, rows per split), KTO class balance and mean agreement."""
        out = self.consolidation.as_dict()
        out["splits"] = {split: frame.height for split, frame in self.splits.items()}
        agreement = self.consolidation.frame.get_column("agreement").drop_nulls()
        out["mean_agreement"] = round(float(agreement.mean()), 6) if agreement.len() else None  # type: ignore[arg-type]
        if self.name == "kto":
            labels = self.consolidation.frame.get_column("label")
            desirable = int(labels.sum())
            undesirable = labels.len() - desirable
            out["balance"] = {
                "desirable": desirable,
                "undesirable": undesirable,
                "suggested_weights": kto_weights(desirable, undesirable),
            }
        return out


@dataclass(frozen=True)
class ExportResult:
    """Everything an export produced: frames per format, what was skipped, and how it was made."""

    formats: dict[str, FormatExport]
    skipped: dict[str, Consolidation]
    snapshot_meta: dict[str, Any]
    policy: dict[str, Any]
    options: dict[str, Any]
    rounds: list[int]
    config_hash: str
    info: dict[str, Any] = field(default_factory=dict)
    path: str | None = None
    hub_url: str | None = None
    # True when `path` already held this very export (same snapshot and options) and was left as it was.
    unchanged: bool = False
    # Things the caller should tell the user, e.g. why the card has no agreement.
    notes: tuple[str, ...] = ()

    def summary(self) -> dict[str, Any]:
        """Plain data for --json and logs."""
        return {
            "path": self.path,
            "hub_url": self.hub_url,
            "unchanged": self.unchanged,
            "snapshot_id": self.snapshot_meta.get("snapshot_id"),
            "config_hash": self.config_hash,
            "rounds": self.rounds,
            "formats": {name: fmt.summary() for name, fmt in self.formats.items()},
            "skipped": {name: c.as_dict() for name, c in self.skipped.items()},
        }


def _rounds(records: pl.DataFrame, rounds: Sequence[int] | None) -> list[int]:
    available = sorted(r for r in records.get_column("round").unique().to_list() if r is not None)
    if rounds is None:
        return available
    missing = sorted(set(rounds) - set(available))
    if missing:
        have = ", ".join(str(r) for r in available) or "none"
        msg = f"Round(s) {', '.join(str(r) for r in missing)} not in the snapshot (rounds: {have})."
        raise UsageError(msg)
    return sorted(set(rounds))


def _recorded(options: ExportOptions, covered: list[int]) -> dict[str, Any]:
    """What the manifest records of the options and the config hash covers."""
    return {
        "formats": list(options.formats),
        "rounds": "all" if options.rounds is None else covered,
        "chat": options.chat,
        "system_prompt": options.system_prompt,
        "test_size": options.test_size,
        "seed": options.seed,
        "annotators": options.annotators,
    }


def _config_hash(options: ExportOptions, recorded: Mapping[str, Any]) -> str:
    policy = options.policy.model_dump(mode="json")
    return hashlib.sha256(
        json.dumps({"policy": policy, "options": recorded}, sort_keys=True).encode()
    ).hexdigest()[:16]


def config_hash(snapshot: Snapshot, options: ExportOptions) -> str:
    """The config hash `build_export` gives these options on this snapshot, without building anything."""
    return _config_hash(options, _recorded(options, _rounds(snapshot.records, options.rounds)))


def _salt(meta: Mapping[str, Any]) -> str:
    return str(meta.get("dataset_id") or meta.get("dataset") or meta.get("dataset_name") or "")


def build_export(
    snapshot: Snapshot,
    options: ExportOptions | None = None,
    *,
    agreement: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Consensus, TRL columns, validation and train/test split for each format; nothing touches disk."""
    options = options or ExportOptions()
    policy, rounds, annotators = options.policy, options.rounds, options.annotators
    chat, system_prompt, test_size, seed = (
        options.chat,
        options.system_prompt,
        options.test_size,
        options.seed,
    )
    names = list(options.formats)
    covered = _rounds(snapshot.records, rounds)
    min_submitted = snapshot.meta.get("min_submitted")
    consensus_args: dict[str, Any] = {
        "policy": policy,
        "min_submitted": int(min_submitted) if min_submitted else None,
        "rounds": None if rounds is None else covered,
    }
    salt = _salt(snapshot.meta)
    # KTO takes unpaired examples; DPO and ORPO take the same pairs.
    kind = {fmt: "unpaired" if fmt == "kto" else "pairs" for fmt in names}
    # One pass over the votes serves both the pairs (dpo, orpo) and the unpaired examples (kto); the
    # lists of annotators are only built when the export carries them.
    cache = consolidate(
        snapshot.records,
        snapshot.responses,
        snapshot.suggestions,
        kinds=kind.values(),
        annotators=annotators != "omit",
        **consensus_args,
    )
    consolidations = {fmt: cache[kind[fmt]] for fmt in names}
    skipped = {fmt: c for fmt, c in consolidations.items() if c.rows == 0}
    with ThreadPoolExecutor(max_workers=1) as pool:
        # The TRL columns are made and checked (polars, which releases the GIL) while this thread hashes
        # the prompts (Python, which holds it).
        formatted = {
            fmt: pool.submit(
                to_format,
                c.frame,
                fmt,
                chat=chat,
                system_prompt=system_prompt,
                annotators=annotators,
                salt=salt,
            )
            for fmt, c in consolidations.items()
            if fmt not in skipped
        }
        # Each exported prompt is hashed once, whichever formats it lands in.
        prompt_ids = pl.concat([c.frame.get_column("prompt_id") for c in cache.values()]).unique()
        test_ids = test_prompts(prompt_ids, test_size=test_size, seed=seed)
        built = {
            fmt: FormatExport(
                fmt,
                consolidations[fmt],
                split_by_prompt(frame.result(), test_size=test_size, seed=seed, test_ids=test_ids),
            )
            for fmt, frame in formatted.items()
        }
    if not built:
        reasons = "; ".join(
            f"{fmt}: {c.total} {c.unit}, dropped "
            + (", ".join(f"{r}={n}" for r, n in sorted(c.dropped.items())) or "none")
            for fmt, c in skipped.items()
        )
        msg = (
            f"No example survived the consensus policy ({reasons}). Wait for more annotations "
            "('campaign status'), or relax the policy (--min-margin, --method, --judge-fallback)."
        )
        raise NotEnoughData(msg)
    policy_data = policy.model_dump(mode="json")
    if annotators != "usernames":
        policy_data["exclude_annotators"] = sorted(
            pseudonym(user, salt=salt) for user in policy_data["exclude_annotators"]
        )
    recorded = _recorded(options, covered)
    info = {
        "name": options.name,
        "language": options.language,
        "license": options.license,
        "agreement": dict(agreement or {}),
    }
    return ExportResult(
        formats=built,
        skipped=skipped,
        snapshot_meta=dict(snapshot.meta),
        policy=policy_data,
        options=recorded,
        rounds=covered,
        config_hash=_config_hash(options, recorded),
        info=info,
    )
