"""What an export is asked for: formats, consensus policy, rounds, split, columns, card and destination."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from campaign.consensus.policy import METHOD_SECTIONS, ConsensusPolicy
from campaign.errors import UsageError
from campaign.export.formats import FORMATS, AnnotatorMode, check_format
from campaign.export.splits import check_test_size

if TYPE_CHECKING:
    from campaign.campaign_file import CampaignFile


def resolve_formats(formats: str | Iterable[str]) -> list[str]:
    """'all' or a list of format names -> the ordered, checked list."""
    names = [formats] if isinstance(formats, str) else list(formats)
    if "all" in names:
        return list(FORMATS)
    for name in names:
        check_format(name)
    if not names:
        msg = "Choose at least one format: dpo, orpo, kto or all."
        raise UsageError(msg)
    return [name for name in FORMATS if name in names]


@dataclass(frozen=True)
class ExportOptions:
    """How to build, write and publish an export; `formats` ends up as the ordered tuple of names."""

    formats: str | Sequence[str] = "all"
    policy: ConsensusPolicy = field(default_factory=ConsensusPolicy)
    # None: every round in the snapshot.
    rounds: Sequence[int] | None = None
    chat: bool = False
    system_prompt: str | None = None
    test_size: float = 0.1
    seed: int = 0
    annotators: AnnotatorMode = "omit"
    jsonl: bool = False
    overwrite: bool = False
    # The dataset card: title, language and license.
    name: str | None = None
    language: str | None = None
    license: str = "other"
    hub_repo: str | None = None
    private: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "formats", tuple(resolve_formats(self.formats)))
        if self.rounds is not None:
            object.__setattr__(self, "rounds", tuple(self.rounds))
        check_test_size(self.test_size)

    @classmethod
    def for_campaign(
        cls,
        campaign: CampaignFile | None,
        *,
        method: str | None = None,
        min_margin: float | None = None,
        judge_fallback: bool | None = None,
        **options: Any,
    ) -> ExportOptions:
        """Options for a campaign: its consensus policy with these overrides, its name, language and license.

        Without a campaign.yaml (`campaign` None) the defaults apply.
        """
        policy = campaign.consensus if campaign else ConsensusPolicy()
        if method is not None and campaign is not None:
            from campaign.campaign_file import seed_kind

            _check_method(method, seed_kind(campaign))
        options["policy"] = policy.with_overrides(
            method=method, min_margin=min_margin, judge_fallback=judge_fallback
        )
        if campaign is not None:
            license = campaign.export.get("license")
            options.setdefault("name", campaign.name)
            options.setdefault("language", campaign.language)
            options.setdefault("license", license if isinstance(license, str) and license else "other")
        return cls(**options)


def _check_method(method: str, kind: str) -> None:
    """Refuse a consensus method that the campaign's template would ignore."""
    valid = [name for name, section in METHOD_SECTIONS.items() if section == kind]
    if METHOD_SECTIONS.get(method) != kind:
        msg = f"--method {method} does not apply to a {kind} campaign; use one of {', '.join(valid)}."
        raise UsageError(msg)
