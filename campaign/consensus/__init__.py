"""Consensus: submitted responses -> DPO/ORPO pairs or KTO examples, under a `ConsensusPolicy`.

`policy.py` holds the policy models, drop reasons and output schemas; `votes.py` reads the snapshot's records
and votes; `rules.py` states each rule; `examples.py` turns the decisions into pairs and KTO examples.
"""

from campaign.consensus.examples import consolidate, consolidate_pairs, consolidate_unpaired
from campaign.consensus.policy import (
    BELOW_MARGIN,
    BETWEEN_THRESHOLDS,
    CONTRADICTORY,
    DUPLICATE,
    FEWER_THAN_TWO,
    IDENTICAL,
    LOW_AGREEMENT,
    METHOD_SECTIONS,
    MIDDLE_RANK,
    NO_SUBMITTED,
    NOT_UNANIMOUS,
    PAIRS_SCHEMA,
    TIE,
    TOO_FEW_ANNOTATORS,
    UNPAIRED,
    UNPAIRED_SCHEMA,
    UNRATED,
    BinaryPolicy,
    ConsensusPolicy,
    Consolidation,
    KTOPolicy,
    RankingPolicy,
    RatingPolicy,
    policy_from_mapping,
    resolve_min_annotators,
)
from campaign.consensus.votes import BAD, GOOD

__all__ = [
    "BAD",
    "BELOW_MARGIN",
    "BETWEEN_THRESHOLDS",
    "CONTRADICTORY",
    "DUPLICATE",
    "FEWER_THAN_TWO",
    "GOOD",
    "IDENTICAL",
    "LOW_AGREEMENT",
    "METHOD_SECTIONS",
    "MIDDLE_RANK",
    "NOT_UNANIMOUS",
    "NO_SUBMITTED",
    "PAIRS_SCHEMA",
    "TIE",
    "TOO_FEW_ANNOTATORS",
    "UNPAIRED",
    "UNPAIRED_SCHEMA",
    "UNRATED",
    "BinaryPolicy",
    "ConsensusPolicy",
    "Consolidation",
    "KTOPolicy",
    "RankingPolicy",
    "RatingPolicy",
    "consolidate",
    "consolidate_pairs",
    "consolidate_unpaired",
    "policy_from_mapping",
    "resolve_min_annotators",
]
