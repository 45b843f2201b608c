"""Sequence prediction by reward-augmented maximum likelihood (Norouzi et al. 2016)."""

from skpapers.sequence._batching import LengthBatchSampler
from skpapers.sequence._modules import Seq2Seq
from skpapers.sequence._payoff import (
    payoff_distribution,
    sample_payoff,
    sample_payoff_batch,
)
from skpapers.sequence._rml import RMLSequencePredictor

__all__ = [
    "LengthBatchSampler",
    "RMLSequencePredictor",
    "Seq2Seq",
    "payoff_distribution",
    "sample_payoff",
    "sample_payoff_batch",
]
