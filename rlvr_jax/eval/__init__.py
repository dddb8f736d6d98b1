"""Evaluation: unbiased pass@k, maj@k and the eval.json summary (``passk``)."""
from rlvr_jax.eval.passk import (default_ks, expected_maj_at_k, expected_vote_accuracy,
                                 greedy_accuracy, maj_at_k, majority_vote, mean_accuracy,
                                 mean_pass_at_k, pass_at_k, summarize)

__all__ = [
    "default_ks", "expected_maj_at_k", "expected_vote_accuracy", "greedy_accuracy", "maj_at_k",
    "majority_vote", "mean_accuracy", "mean_pass_at_k", "pass_at_k", "summarize",
]
