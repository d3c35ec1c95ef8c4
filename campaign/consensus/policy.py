"""The consensus policy (every threshold, as the `consensus:` section of campaign.yaml), the drop reasons, and
the output schemas and result type of a consolidation.

Every record (or response, for KTO from rating and ranking) that is not kept is counted under exactly one drop
reason, so `kept + sum(dropped) == total`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict, Field, model_validator

from campaign.errors import UsageError

# Drop reasons, in the order a record is checked.
NO_SUBMITTED = "no_submitted_responses"
TOO_FEW_ANNOTATORS = "too_few_annotators"
FEWER_THAN_TWO = "fewer_than_two_responses"
TIE = "tie"
NOT_UNANIMOUS = "not_unanimous"
BELOW_MARGIN = "margin_below_threshold"
IDENTICAL = "identical_responses"
LOW_AGREEMENT = "low_agreement"
BETWEEN_THRESHOLDS = "between_kto_thresholds"
UNRATED = "unrated_response"
MIDDLE_RANK = "middle_rank"
UNPAIRED = "no_opposite_label_for_prompt"
CONTRADICTORY = "contradictory_labels"
DUPLICATE = "duplicate_example"

# Where each example came from and how much its judges agreed (the last columns of both schemas).
PROVENANCE: dict[str, pl.DataType] = {
    "n_annotators": pl.Int64(),
    "agreement": pl.Float64(),
    "source": pl.String(),
    "annotators": pl.List(pl.String()),
}
PAIRS_SCHEMA: dict[str, pl.DataType] = {
    "prompt": pl.String(),
    "chosen": pl.String(),
    "rejected": pl.String(),
    "prompt_id": pl.String(),
    "record_id": pl.String(),
    "rejected_record_id": pl.String(),
    "round": pl.Int64(),
    "chosen_model": pl.String(),
    "rejected_model": pl.String(),
    "chosen_score": pl.Float64(),
    "rejected_score": pl.Float64(),
    "margin": pl.Float64(),
    **PROVENANCE,
}
UNPAIRED_SCHEMA: dict[str, pl.DataType] = {
    "prompt": pl.String(),
    "completion": pl.String(),
    "label": pl.Boolean(),
    "prompt_id": pl.String(),
    "record_id": pl.String(),
    "slot": pl.Int64(),
    "round": pl.Int64(),
    "model": pl.String(),
    "score": pl.Float64(),
    **PROVENANCE,
}


class RatingPolicy(BaseModel):
    """How ratings (1-5 per response) become a chosen/rejected pair."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["mean", "median"] = Field(
        default="mean", description="How a response's ratings are combined."
    )
    min_margin: float = Field(
        default=1.0, ge=0, description="Minimum score difference of chosen over rejected."
    )


class RankingPolicy(BaseModel):
    """How rankings become a chosen/rejected pair."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["borda", "mean_rank"] = Field(
        default="borda", description="'borda': mean number of responses ranked worse; 'mean_rank': mean rank."
    )
    min_margin: float = Field(default=0.0, ge=0, description="Minimum score difference of best over worst.")


class BinaryPolicy(BaseModel):
    """How good/bad votes on one completion become a label."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["majority", "unanimous"] = Field(
        default="majority", description="'majority' drops ties; 'unanimous' drops any disagreement."
    )
    min_votes: int | None = Field(
        default=None, ge=1, description="Minimum votes per record; None: min_annotators."
    )


class KTOPolicy(BaseModel):
    """Thresholds that turn a rating score into a KTO label."""

    model_config = ConfigDict(extra="forbid")

    desirable_min: float = Field(
        default=4.0, description="A response scoring at least this is desirable (True)."
    )
    undesirable_max: float = Field(
        default=2.0, description="A response scoring at most this is undesirable (False)."
    )

    @model_validator(mode="after")
    def _ordered(self) -> KTOPolicy:
        if self.undesirable_max >= self.desirable_min:
            msg = (
                f"kto.undesirable_max ({self.undesirable_max}) must be below kto.desirable_min "
                f"({self.desirable_min}); fix the consensus section of campaign.yaml."
            )
            raise ValueError(msg)
        return self


class ConsensusPolicy(BaseModel):
    """Every threshold of the consensus, as the `consensus:` section of campaign.yaml."""

    model_config = ConfigDict(extra="forbid")

    min_annotators: int | None = Field(
        default=None, ge=1, description="Minimum distinct annotators per record; None: min_submitted."
    )
    agreement_gate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Drop examples whose agreement (share of annotators agreeing) is below.",
    )
    exclude_annotators: list[str] = Field(
        default_factory=list, description="Usernames whose votes are ignored."
    )
    judge_fallback: bool = Field(
        default=False, description="Judge suggestions decide records short of annotators."
    )
    rating: RatingPolicy = Field(default_factory=RatingPolicy, description="The rating template's policy.")
    ranking: RankingPolicy = Field(
        default_factory=RankingPolicy, description="The ranking template's policy."
    )
    binary: BinaryPolicy = Field(default_factory=BinaryPolicy, description="The binary template's policy.")
    kto: KTOPolicy = Field(default_factory=KTOPolicy, description="Rating thresholds for KTO labels.")

    def with_overrides(
        self,
        *,
        method: str | None = None,
        min_margin: float | None = None,
        judge_fallback: bool | None = None,
    ) -> ConsensusPolicy:
        """A copy with command-line overrides; `method` picks its section by name, `min_margin` sets both."""
        data = self.model_dump()
        if method is not None:
            section = METHOD_SECTIONS.get(method)
            if section is None:
                msg = f"Unknown consensus method {method!r}; use one of {', '.join(METHOD_SECTIONS)}."
                raise UsageError(msg)
            data[section]["method"] = method
        if min_margin is not None:
            data["rating"]["min_margin"] = min_margin
            data["ranking"]["min_margin"] = min_margin
        if judge_fallback is not None:
            data["judge_fallback"] = judge_fallback
        return policy_from_mapping(data)


METHOD_SECTIONS = {
    "mean": "rating",
    "median": "rating",
    "borda": "ranking",
    "mean_rank": "ranking",
    "majority": "binary",
    "unanimous": "binary",
}


def policy_from_mapping(data: Mapping[str, Any] | None, *, where: str = "consensus") -> ConsensusPolicy:
    """Validate a `consensus:` mapping, with a message that names the bad key."""
    from pydantic import ValidationError

    try:
        return ConsensusPolicy.model_validate(dict(data or {}))
    except ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        msg = f"Invalid consensus policy: {problems}."
        raise UsageError(msg) from None


def resolve_min_annotators(policy: ConsensusPolicy, min_submitted: int | None) -> int:
    """The effective minimum number of annotators: the policy's, else min_submitted, else 1."""
    return policy.min_annotators or min_submitted or 1


@dataclass(frozen=True)
class Consolidation:
    """A consensus frame plus the accounting of what was dropped and why."""

    frame: pl.DataFrame
    total: int
    kept: int
    dropped: dict[str, int]
    unit: str

    @property
    def rows(self) -> int:
        """Number of examples (a binary DPO pair uses two kept records)."""
        return self.frame.height

    def as_dict(self) -> dict[str, Any]:
        """Counts as plain data, for manifests and --json."""
        return {
            "unit": self.unit,
            "total": self.total,
            "kept": self.kept,
            "dropped": dict(sorted(self.dropped.items())),
            "rows": self.rows,
        }
