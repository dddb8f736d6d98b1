"""Correctness reuses the reward's verifier result: a reward term that is exactly the correctness
check (same reward, same options) is called once per scoring, not twice."""
from __future__ import annotations

import types

import numpy as np

from rlvr_jax import rewards
from tests.episodes.test_record_and_selection_episodes import FakeGenerate, fake_context

CALLS = []


def _register():
  if "test_counting_verifier" not in rewards.REWARDS:
    @rewards.register_reward("test_counting_verifier")
    def _verify(completions, examples, *, strict: bool = True):  # pylint: disable=unused-variable
      CALLS.append(len(completions))
      return np.array([float(c.strip() == e["answer"]) if strict else 1.0
                       for c, e in zip(completions, examples)], np.float32)


def _context(term_options, correctness_options):
  _register()
  ctx = fake_context(FakeGenerate())
  ctx.config.reward = types.SimpleNamespace(
      terms=[dict(name="test_counting_verifier", options=term_options)],
      correctness="test_counting_verifier", correctness_options=correctness_options, threshold=1.0)
  ctx.reward_spec = rewards.parse_spec(ctx.config.reward.terms)
  return ctx


def test_the_verifier_runs_once_when_the_reward_is_the_correctness_check():
  CALLS.clear()
  ctx = _context({"strict": True}, {"strict": True})
  scores = ctx.score(["4", "5", "7", "7"], [{"question": "q", "answer": "4"}] * 2
                     + [{"question": "r", "answer": "7"}] * 2, group_ids=np.array([0, 0, 1, 1]))
  assert CALLS == [4]  # one call for reward and correctness together
  np.testing.assert_array_equal(scores.correct, [True, False, True, True])
  np.testing.assert_array_equal(scores.rewards, [1, 0, 1, 1])


def test_different_options_verify_separately():
  CALLS.clear()
  ctx = _context({"strict": False}, {"strict": True})
  scores = ctx.score(["4", "5"], [{"question": "q", "answer": "4"}] * 2, group_ids=np.array([0, 0]))
  assert CALLS == [2, 2]  # the lenient reward, then the strict correctness check
  np.testing.assert_array_equal(scores.rewards, [1, 1])
  np.testing.assert_array_equal(scores.correct, [True, False])
