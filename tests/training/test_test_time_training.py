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
  # The collapse detectors are still logged every step, computed after the rewards from the
  # labelled evaluation rows (the spy above shows the reward itself never saw a label).
  rows = helpers.read_metrics(tmp_path)
  for row in rows:
    for key in ("audit/accuracy", "audit/reward_accuracy", "audit/label_accuracy"):
      assert 0.0 <= row[key] <= 1.0, (key, row)


def test_audit_metrics_by_hand():
  import types  # pylint: disable=import-outside-toplevel

  import ml_collections  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from rlvr_jax.episodes.record import RolloutRecord  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import collect  # pylint: disable=import-outside-toplevel
  cfg = ml_collections.ConfigDict(dict(reward=dict(
      correctness="exact_match", correctness_options=dict(extract="none"), threshold=1.0,
      label_free_threshold=0.5)))
  env = types.SimpleNamespace(cfg=cfg, audit_gold={  # as loop.setup builds it (keys: row ids)
      "a": {"id": "a", "question": "1+2", "answer": "3", "metadata": {}},
      "b": {"id": "b", "question": "2+2", "answer": "4", "metadata": {}}})
  texts = ["3", "3", "5", "5", "5", "4"]  # group a: vote 3 (right); group b: vote 5 (wrong)
  ctx = types.SimpleNamespace(decode=lambda tokens, lengths: texts)
  unlabelled = [{"id": "a", "question": "1+2", "answer": ""}] * 3 + \
               [{"id": "b", "question": "2+2", "answer": ""}] * 3
  record = RolloutRecord(prompts=[[1]] * 6, completions=np.ones((6, 2), np.int32),
                         lengths=np.full(6, 2), group_ids=[0, 0, 0, 1, 1, 1],
                         rewards=[1, 1, 0, 1, 1, 0], examples=unlabelled)
  out = collect.audit_test_time(env, ctx, record)
  assert out["audit/accuracy"] == 3 / 6  # 3, 3 and 4 are right
  assert out["audit/label_accuracy"] == 0.5  # group a's rewarded answer is right, b's is not
  # reward == correct on rows: a: T T T; b: F F F (rewarded wrong 5s, unrewarded right 4)
  assert out["audit/reward_accuracy"] == 0.5
