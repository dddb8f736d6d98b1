"""Evaluation: unbiased pass@k, maj@k and the eval.json summary (``passk``); per-problem change vs a
base model, winner-take-all split, calibration, verifier and pseudo-label quality, token entropy
(``metrics``); the held-out evaluation of a policy (``evaluator``, imported on its own: it pulls in
jax and the model code)."""
from rlvr_jax.eval.metrics import (auroc, expected_calibration_error, f1_at_threshold,
                                   label_accuracy, mean_token_entropy, per_problem_change,
                                   reward_accuracy, winner_take_all)
from rlvr_jax.eval.passk import (default_ks, expected_maj_at_k, expected_vote_accuracy,
                                 greedy_accuracy, maj_at_k, majority_vote, mean_accuracy,
                                 mean_pass_at_k, pass_at_k, summarize)

__all__ = [
    "auroc", "default_ks", "expected_calibration_error", "expected_maj_at_k",
    "expected_vote_accuracy", "f1_at_threshold", "greedy_accuracy", "label_accuracy", "maj_at_k",
    "majority_vote", "mean_accuracy", "mean_pass_at_k", "mean_token_entropy", "pass_at_k",
    "per_problem_change", "reward_accuracy", "summarize", "winner_take_all",
]
