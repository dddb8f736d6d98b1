"""KnowRL's consensus reward (rewards/self_rewards.py ``consensus``), hand-worked."""
from __future__ import annotations

import numpy as np
import pytest

from rlvr_jax.rewards import RewardConfigError, compute_rewards


def test_consensus_by_hand():
  completions = ["feasible", "feasible", "infeasible", "maybe",   # 2 / 1 / 0 of 3 others agree
                 "3", "3", "3", "3"]                              # unanimous: 1 each
  examples = [{"question": "q", "answer": "infeasible"}] * 4 + [{"question": "q", "answer": "3"}] * 4
  spec = [{"name": "consensus", "options": {"extract": "none"}}]
  scores, metrics = compute_rewards(spec, completions, examples, group_size=4)
  np.testing.assert_allclose(scores, [1 / 3, 1 / 3, 0, 0, 1, 1, 1, 1], atol=1e-6)
  assert metrics["label_accuracy/consensus"] == 0.5  # "feasible" wrong, "3" right
  # choices: answers outside the allowed set are unparsed (no votes, reward 0)
  spec = [{"name": "consensus", "options": {"extract": "none",
                                            "choices": ["feasible", "infeasible"]}}]
  scores, metrics = compute_rewards(spec, completions, examples, group_size=4)
  np.testing.assert_allclose(scores[4:], 0.0)
  assert metrics["unparsed_frac/consensus"] == pytest.approx(5 / 8)
  with pytest.raises(RewardConfigError, match="groups of >= 2"):
    compute_rewards(["consensus"], ["1"], examples[:1], group_size=1)
