"""TraPO's semi-supervised reward (rewards/self_rewards.py ``trapo``): hand-worked groups, the strict
vote, and a spy proving unlabelled rows' gold answers never reach the reward."""
from __future__ import annotations

import numpy as np
import pytest

from rlvr_jax.rewards import RewardConfigError, compute_rewards
from rlvr_jax.rewards.self_rewards import strict_majority

SPEC = [{"name": "trapo", "options": {"verifier": "exact_match",
                                      "verifier_options": {"extract": "none"},
                                      "extract": "none"}}]


def _rows(gold, labelled, n=4):
  return [{"id": f"q{gold}", "question": "q", "answer": gold, "labelled": labelled}] * n


def test_trapo_by_hand():
  completions = ["5", "5", "6", "7",   # labelled, gold 5: the verifier -> 1 1 0 0
                 "3", "3", "4", "3",   # unlabelled, gold 4: majority 3 (3 votes) -> 1 1 0 1
                 "8", "9", "8", "9"]   # unlabelled, gold 8: tie 8 / 9 -> no pseudo-label, all 0
  examples = _rows("5", True) + _rows("4", False) + _rows("8", False)
  scores, metrics = compute_rewards(SPEC, completions, examples, group_size=4)
  np.testing.assert_array_equal(scores, [1, 1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 0])
  assert metrics["labelled_frac/trapo"] == pytest.approx(1 / 3)
  assert metrics["label_accuracy/trapo"] == 0.0  # 3 != 4, and the tie gave no label
  # Without the code's strict rule, the tie goes to the first-seen answer (TTRL's majority_vote).
  loose = [dict(SPEC[0], options=dict(SPEC[0]["options"], strict=False))]
  scores, metrics = compute_rewards(loose, completions, examples, group_size=4)
  np.testing.assert_array_equal(scores[8:], [1, 0, 1, 0])
  assert metrics["label_accuracy/trapo"] == 0.5  # the tie-broken label 8 is right


def test_strict_majority_ties_and_empty_groups():
  assert strict_majority(["1", "2", "1", None]) == ("1", 2)
  assert strict_majority(["1", "2", None, None]) == (None, 1)
  assert strict_majority([None, None]) == (None, 0)


def test_unlabelled_gold_never_reaches_the_reward():
  completions = ["3", "3", "4", "3"] * 2
  honest = _rows("4", False) + _rows("5", True)
  lied = _rows("999", False) + _rows("5", True)  # only the unlabelled gold changes
  a, _ = compute_rewards(SPEC, completions, honest, group_size=4)
  b, _ = compute_rewards(SPEC, completions, lied, group_size=4)
  np.testing.assert_array_equal(a, b)
  # The labelled gold does count: a planted change of it changes the labelled group's rewards.
  c, _ = compute_rewards(SPEC, completions, _rows("4", False) + _rows("3", True), group_size=4)
  assert not np.array_equal(a[4:], c[4:])


def test_trapo_setup_errors_name_the_problem():
  rows = [{"question": "q", "answer": "1"}] * 2
  with pytest.raises(RewardConfigError, match="labelled_fraction"):
    compute_rewards(SPEC, ["1", "1"], rows, group_size=2)
  bad = [dict(SPEC[0], options=dict(SPEC[0]["options"], verifier="majority_vote"))]
  with pytest.raises(RewardConfigError, match="gold-answer reward"):
    compute_rewards(bad, ["1", "1"], _rows("1", True, 2), group_size=2)
