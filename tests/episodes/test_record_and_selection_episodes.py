"""Rollout record validation, batch builders (dynamic sampling on synthetic rewards, vote on N train
on n), allocators, ragged per-prompt counts in EpisodeContext.sample, and plug-in option errors."""
from __future__ import annotations

import types

import numpy as np
import pytest

from rlvr_jax import episodes
from rlvr_jax import rewards as rewards_lib
from rlvr_jax.episodes import selection
from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord


def record(rewards, groups, correct=None, width=3):
  n = len(rewards)
  return RolloutRecord(prompts=[[1, 2]] * n, completions=np.ones((n, width), np.int32),
                       lengths=np.full(n, 2), group_ids=groups, rewards=rewards, correct=correct)


def test_record_rejects_inconsistent_fields_naming_them():
  with pytest.raises(ValueError, match="rewards"):
    record([1.0, 0.0], [0, 0, 0][:2]).replace(rewards=np.zeros(3))
  with pytest.raises(ValueError, match="loss_mask"):
    RolloutRecord(prompts=[[1]], completions=np.ones((1, 4)), lengths=[2], group_ids=[0],
                  rewards=[0.0], loss_mask=np.ones((1, 3)))
  with pytest.raises(ValueError, match="lengths"):
    RolloutRecord(prompts=[[1]], completions=np.ones((1, 4)), lengths=[5], group_ids=[0],
                  rewards=[0.0])
  with pytest.raises(ValueError, match="meta"):
    RolloutRecord(prompts=[[1]], completions=np.ones((1, 4)), lengths=[2], group_ids=[0],
                  rewards=[0.0], meta={"score": np.zeros(2)})


def test_record_defaults_rectangle_select_and_concat():
  r = record([1.0, 0.0, 1.0, 1.0], [0, 0, 1, 1])
  np.testing.assert_array_equal(r.loss_mask, [[1, 1, 0]] * 4)  # lengths 2 of width 3
  assert r.rectangular() == 2 and r.valid.all() and (r.role_ids == 0).all()
  assert record([1.0, 0.0, 1.0], [0, 0, 1]).rectangular() is None  # ragged
  assert record([1.0, 0.0, 1.0, 0.0], [0, 1, 0, 1]).rectangular() is None  # not contiguous
  picked = r.select([3, 0])
  np.testing.assert_array_equal(picked.group_ids, [1, 0])
  both = RolloutRecord.concat([r, record([0.5], [7], width=5)])
  assert both.width == 5 and both.num_rows == 5
  np.testing.assert_array_equal(both.group_ids, [0, 0, 1, 1, 2])  # renumbered past the first


def test_dynamic_sampling_filters_on_accuracy_or_reward():
  # group 0: accuracy all 0 but rewards differ (a shaping term); group 1: mixed accuracy;
  # group 2: everything equal.
  r = record([0.0, -0.5, 1.0, 0.0, 0.3, 0.3], [0, 0, 1, 1, 2, 2],
             correct=[False, False, True, False, False, False])
  ctx = selection.BuilderContext(rng=np.random.default_rng(0), state={}, step=0)
  by_acc = selection.dynamic_sampling(r, ctx=ctx)  # the paper's default
  np.testing.assert_array_equal(by_acc.valid, [False, False, True, True, False, False])
  by_reward = selection.dynamic_sampling(r, ctx=ctx, metric="reward")
  np.testing.assert_array_equal(by_reward.valid, [True, True, True, True, False, False])
  with pytest.raises(ValueError, match="metric='length'"):
    selection.dynamic_sampling(r, ctx=ctx, metric="length")


def test_vote_subsample_keeps_n_per_group():
  r = record(np.arange(8, dtype=np.float32), [0] * 4 + [1] * 4)
  ctx = selection.BuilderContext(rng=np.random.default_rng(0), state={}, step=0)
  first = selection.vote_subsample(r, ctx=ctx, n=2, mode="first")
  np.testing.assert_array_equal(first.rewards, [0, 1, 4, 5])
  rand = selection.vote_subsample(r, ctx=ctx, n=3)
  assert rand.num_rows == 6 and sorted(rand.group_sizes().values()) == [3, 3]
  assert set(rand.rewards[:3]) <= {0, 1, 2, 3} and set(rand.rewards[3:]) <= {4, 5, 6, 7}


def test_unknown_plugins_and_options_name_the_key_and_the_choices():
  with pytest.raises(ValueError, match=r"two_turn"):
    episodes.get_episode("no_such_episode")
  with pytest.raises(ValueError, match=r"unknown options \['bonnus'\].*'bonus'"):
    episodes.get_episode("two_turn", {"bonnus": 1.0})
  with pytest.raises(ValueError, match="dynamic_sampling"):
    selection.parse_builders(("dynamic_smapling",))
  with pytest.raises(ValueError, match=r"unknown options \['metrc'\]"):
    selection.parse_builders(("dynamic_sampling",), {"dynamic_sampling": {"metrc": "reward"}})
  with pytest.raises(ValueError, match="uniform"):
    selection.get_allocator("knapsak", {})


def test_allocator_by_success_rate_uses_prompt_stats():
  exs = [{"question": "a"}, {"question": "b"}, {"question": "c"}]
  stats = {selection.example_key(exs[0]): {"n": 8, "correct": 8.0, "reward": 8.0, "steps": 1},
           selection.example_key(exs[1]): {"n": 8, "correct": 4.0, "reward": 4.0, "steps": 1}}
  ctx = selection.BuilderContext(rng=np.random.default_rng(0), state={}, step=0, prompt_stats=stats)
  # solved prompt -> low; p = 0.5 -> high; unseen -> prior 0.5 -> high
  assert selection.by_success_rate(exs, default=4, ctx=ctx, low=2) == [2, 8, 8]


class FakeGenerate:
  """Stands in for the sampler: sample s of prompt row r is the token 10 * r + s."""

  def __call__(self, params, prompts, *, num_samples, seed, max_new_tokens, **options):
    del params, seed, options
    n = len(prompts) * num_samples
    self.calls = getattr(self, "calls", []) + [(len(prompts), num_samples)]
    tokens = np.zeros((n, max_new_tokens), np.int32)
    tokens[:, 0] = np.arange(n)
    return types.SimpleNamespace(tokens=tokens, lengths=np.ones(n, np.int32),
                                 logprobs=np.full((n, max_new_tokens), -0.5, np.float32),
                                 finish_reason=np.zeros(n, np.int8))


def fake_context(generate):
  cfg = types.SimpleNamespace(
      rollout=types.SimpleNamespace(num_samples=4, max_new_tokens=3, temperature=1.0, top_p=1.0,
                                    top_k=0, min_p=0.0),
      reward=types.SimpleNamespace(terms=[dict(name="exact_match")], correctness=None))
  tok = types.SimpleNamespace(eos_ids=[1], pad_id=0)
  return EpisodeContext(config=cfg, tokenizer=tok, prompt_fn=None, params=None, ref_params=None,
                        generate=generate, rows_fn=None, logprob_fn=None, token_stats_fn=None,
                        rng=np.random.default_rng(0), state={}, step=0)


def test_sample_serves_ragged_counts_with_prompt_copies_and_forced_prefixes():
  gen = FakeGenerate()
  ctx = fake_context(gen)
  s = ctx.sample([[5], [6], [7]], counts=[1, 6, 0], unit=4)
  assert gen.calls == [(3, 4)]  # prompt 0 once, prompt 1 twice (6 = 4 + 2 of the 8), prompt 2 never
  np.testing.assert_array_equal(s.prompt_index, [0, 1, 1, 1, 1, 1, 1])
  np.testing.assert_array_equal(s.tokens[:, 0], [0, 4, 5, 6, 7, 8, 9])
  pre = ctx.sample([[5], [6]], num_samples=2, forced_prefix=[[3, 3], [4]])
  np.testing.assert_array_equal(pre.tokens[:, :3], [[3, 3, 0], [3, 3, 1], [4, 2, 0], [4, 3, 0]])
  np.testing.assert_array_equal(pre.prefix_lengths, [2, 2, 1, 1])
  np.testing.assert_array_equal(pre.lengths, [3, 3, 2, 2])
  assert pre.logprobs[0, 0] == 0.0 and pre.logprobs[0, 2] == -0.5  # prefix tokens were not sampled
  with pytest.raises(ValueError, match="unknown sampling options"):
    ctx.sample([[5]], temprature=0.5)


def test_replay_fills_filler_groups_from_earlier_informative_groups():
  state = {}
  ctx1 = selection.BuilderContext(rng=np.random.default_rng(0), state=state, step=1)
  step1 = record([1.0, 0.0, 0.5, 0.5], [0, 0, 1, 1])  # group 0 informative, group 1 flat
  out1 = selection.replay(step1, ctx=ctx1, capacity=4)
  assert out1.num_rows == 4 and ctx1.stats == {"replayed_groups": 0, "buffer_size": 1}
  ctx2 = selection.BuilderContext(rng=np.random.default_rng(0), state=state, step=2)
  step2 = record([0.0, 0.0, 1.0, 0.0], [0, 0, 1, 1]).replace(valid=np.array([0, 0, 1, 1], bool))
  out2 = selection.replay(step2, ctx=ctx2, capacity=4)
  # the filler group 0 became step 1's informative group (rewards 1, 0), valid, with a new id
  np.testing.assert_array_equal(out2.rewards, [1.0, 0.0, 1.0, 0.0])
  assert out2.valid.all() and len(set(out2.group_ids.tolist())) == 2
  assert ctx2.stats["replayed_groups"] == 1 and len(state["groups"]) == 1  # step 2's group 1
  too_old = selection.BuilderContext(rng=np.random.default_rng(0), state=state, step=20)
  out3 = selection.replay(step2, ctx=too_old, max_age=8)
  assert not out3.valid[:2].any() and too_old.stats["replayed_groups"] == 0


def test_score_logs_reward_accuracy_of_a_label_free_reward():
  """TTRL's collapse detector, by hand. Group 0 answers 3, 3, 5, 3 (gold 5): the vote says 3, so
  rewards 1, 1, 0, 1 against correctness 0, 0, 1, 0: no sample agrees. Group 1 answers 7, 7, 2, 9
  (gold 7): rewards 1, 1, 0, 0 and correctness 1, 1, 0, 0: all agree. Reward accuracy 4 / 8."""
  ctx = fake_context(FakeGenerate())
  ctx.config.reward = types.SimpleNamespace(
      terms=[dict(name="majority_vote", options=dict(extract="none"))], correctness="exact_match",
      correctness_options=dict(extract="none"), threshold=1.0)
  ctx.reward_spec = rewards_lib.parse_spec(ctx.config.reward.terms)
  texts = ["3", "3", "5", "3", "7", "7", "2", "9"]
  examples = [{"question": "q0", "answer": "5"}] * 4 + [{"question": "q1", "answer": "7"}] * 4
  scores = ctx.score(texts, examples, group_ids=np.repeat([0, 1], 4))
  np.testing.assert_array_equal(scores.rewards, [1, 1, 0, 1, 1, 1, 0, 0])
  np.testing.assert_array_equal(scores.correct, [0, 0, 1, 0, 1, 1, 0, 0])
  assert scores.metrics["reward_accuracy"] == 0.5
  assert scores.metrics["label_accuracy/majority_vote"] == 0.5
  # AUROC of the rewards for correct vs incorrect: 3 correct (rewards 0, 1, 1) x 5 incorrect
  # (1, 1, 1, 0, 0): pairs won 0 + 2 * 2 = 4, tied 1 * 2 + 2 * 3 = 8 (half each), of 15: 8 / 15.
  assert scores.metrics["reward_auroc"] == pytest.approx(8 / 15)
  ctx.config.reward.terms = [dict(name="exact_match", options=dict(extract="none"))]
  ctx.reward_spec = rewards_lib.parse_spec(ctx.config.reward.terms)
  assert "reward_accuracy" not in ctx.score(texts, examples, group_ids=np.repeat([0, 1], 4)).metrics
