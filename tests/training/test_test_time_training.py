"""Test-time RL (config.data.test_time): RL trains on the evaluation questions with no label in
reach of any reward or of the trainer, evaluation still scores against the labels, and configs
whose rewards read gold answers are refused with the term named."""
from __future__ import annotations

import pytest

from rlvr_jax import data as data_lib
from rlvr_jax import rewards as rewards_lib
from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers


def _config():
  cfg = helpers.get_config("ttrl", "cpu")
  cfg.data.test_time = True
  cfg.eval.size = 4
  cfg.eval.num_samples = 4
  cfg.total_steps = 1
  return cfg


def test_unlabelled_source_drops_answers_and_metadata():
  src = data_lib.unlabelled_source([{"question": "1 + 2", "answer": "3", "metadata": {"x": 3},
                                     "task": "chain_sum", "id": "a"}])
  assert src[0] == {"question": "1 + 2", "answer": "", "metadata": {}, "task": "chain_sum", "id": "a"}


@pytest.mark.parametrize("terms, named", [
    ([dict(name="exact_match")], "exact_match"),
    ([dict(name="majority_vote"), dict(name="math_verify", label="mv", weight=0.5)], "'mv'"),
    ([dict(name="majority_vote", options=dict(hybrid=True))], "hybrid=True"),
])
def test_rewards_that_read_gold_answers_are_refused(terms, named):
  cfg = _config()
  cfg.reward.terms = terms
  with pytest.raises(ValueError, match=named):
    loop.check_test_time(cfg)
  cfg.eval.size = 0
  cfg.reward.terms = [dict(name="majority_vote")]
  with pytest.raises(ValueError, match="config.eval.size > 0"):
    loop.check_test_time(cfg)


def test_no_gold_answer_reaches_the_reward_and_training_trains_on_eval_questions(tmp_path,
                                                                                monkeypatch):
  seen = []
  vote = rewards_lib.REWARDS["majority_vote"]

  def spy(completions, examples, **kwargs):
    seen.extend(examples)
    return vote(completions, examples, **kwargs)

  monkeypatch.setitem(rewards_lib.REWARDS, "majority_vote", spy)
  cfg = _config()
  cfg.lock()
  summary = loop.run(cfg, str(tmp_path))
  _, eval_examples, *_ = loop.build_inputs(cfg, str(tmp_path))
  assert seen, "the reward was never called"
  assert all(ex["answer"] == "" and ex["metadata"] == {} for ex in seen)  # no label, no metadata
  assert {ex["question"] for ex in seen} <= {ex["question"] for ex in eval_examples}
  assert all(ex["answer"] for ex in eval_examples)  # evaluation keeps the labels
  assert "greedy_accuracy" in summary["after"] and summary["after"]["num_problems"] == 4
