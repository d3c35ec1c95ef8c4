"""Consensus: submitted responses -> DPO/ORPO pairs or KTO examples, under a `ConsensusPolicy`.

`policy.py` holds the policy models, drop reasons and output schemas; `votes.py` reads the snapshot's records
and votes; `rules.py` states each rule; `examples.py` turns the decisions into pairs and KTO examples.
"""

from campaign.consensus.examples import consolidate, consolidate_pairs, consolidate_unpaired
from campaign.consensus.policy import ConsensusPolicy, Consolidation, policy_from_mapping

__all__ = [
    "ConsensusPolicy",
    "Consolidation",
    "consolidate",
    "consolidate_pairs",
    "consolidate_unpaired",
    "policy_from_mapping",
]
