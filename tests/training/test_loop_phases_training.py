"""The loop's phases run alone (setup, collect, prepare_batch, update); the ragged paths run end to
end: a non-uniform allocator (ragged groups, per-prompt statistics in the algorithm state), an
auxiliary loss that needs the reference policy (DPH-RL's forward KL), dynamic sampling followed by
replay; a loss that asks for the old policy's max log-prob receives it."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from configs import common
from rlvr_jax import algorithms
from rlvr_jax import episodes
from rlvr_jax import rewards as rewards_lib
from rlvr_jax.episodes import RolloutRecord
from rlvr_jax.training import collect as collect_lib
from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers


def test_phases_run_one_at_a_time(tmp_path):
  cfg = helpers.pinned_config("grpo")
  cfg.lock()
  env, state = loop.setup(cfg, str(tmp_path))
  rng = np.random.default_rng([cfg.seed, 0])
  record, stats = collect_lib.collect(env, state, rng)
  p, g = cfg.rollout.prompts_per_step, cfg.rollout.num_samples
  assert isinstance(record, RolloutRecord) and record.num_rows == p * g
  assert record.rectangular() == g and stats["gen_batches"] == 1
  rows, info = collect_lib.prepare_batch(env, state, record)
  assert rows["advantages"].shape == (p * g,) and rows["mask"].shape == rows["response"].shape
  # GRPO advantages are zero-mean inside every group.
  np.testing.assert_allclose(rows["advantages"].reshape(p, g).sum(-1), 0.0, atol=1e-5)
  before = [np.asarray(x) for x in jax.tree.leaves(state.params)]
  metrics = loop.update(env, state, rows, rng)
  after = [np.asarray(x) for x in jax.tree.leaves(state.params)]
  assert len(metrics) == cfg.algo.epochs * cfg.algo.num_minibatches
  assert max(np.abs(a - b).max() for a, b in zip(before, after)) > 0
  env.writer.close()
  env.ckpt.close()


if "test_ragged_counts" not in episodes.ALLOCATORS:
  @episodes.register_allocator("test_ragged_counts")
  def _ragged(examples, *, default, ctx):  # pylint: disable=unused-argument
    return [1 + i % 4 for i in range(len(examples))]  # 1, 2, 3, 4 samples


def test_ragged_allocator_and_reference_aux_loss_run_end_to_end(tmp_path):
  cfg = helpers.pinned_config("grpo")
  cfg.total_steps = 2
  cfg.batch.allocator = "test_ragged_counts"
  cfg.algo.aux_losses = [dict(name="forward_kl", weight=0.1, options=dict(divergence="k3"))]
  cfg.lock()
  loop.run(cfg, str(tmp_path))
  rows = helpers.read_metrics(tmp_path)
  assert [r["step"] for r in rows] == [1, 2]
  for row in rows:
    helpers.assert_finite_row(row)
    assert row["update_norm"] > 0
    assert row["aux/forward_kl/fkl"] >= 0.0  # the reference was kept and its log-probs routed
  env, state = loop.setup(cfg, str(tmp_path))  # resumes at step 2 with the per-prompt table
  assert state.step == 2
  # 4 prompts per step with 1, 2, 3, 4 samples: ragged groups, recorded per prompt.
  counts = sorted(v["n"] for v in state.algo_state["prompt_stats"].values())
  assert counts == [1, 1, 2, 2, 3, 3, 4, 4], counts
  env.writer.close()
  env.ckpt.close()


if "test_half_flat" not in rewards_lib.REWARDS:
  @rewards_lib.register_reward("test_half_flat")
  def _half_flat(completions, examples, **options):  # pylint: disable=unused-argument
    """Digit fraction for questions of even character-code sum, else a constant (no spread)."""
    return np.array([sum(c.isdigit() for c in t) / max(len(t), 1) if sum(map(ord, e["question"])) % 2 == 0
                     else 0.5 for t, e in zip(completions, examples)], np.float32)


def test_dynamic_sampling_then_replay_end_to_end(tmp_path):
  """One generation batch, groups without reward spread dropped, the filler replaced from the
  replay buffer, which lives in the algorithm state (checkpointed as JSON, restored)."""
  cfg = helpers.get_config("grpo", "cpu")
  cfg.reward.terms = [dict(name="test_half_flat")]
  cfg.total_steps = 4
  common.dynamic_sampling(cfg, metric="reward", max_gen_batches=1)
  cfg.batch.builders = tuple(cfg.batch.builders) + ("replay",)
  cfg.lock()
  loop.run(cfg, str(tmp_path))
  rows = helpers.read_metrics(tmp_path)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert rows[0]["batch/replay/replayed_groups"] == 0  # nothing buffered before step 1
  assert sum(r["batch/replay/replayed_groups"] for r in rows) > 0
  for r in rows:  # every group the builder replaced was filler: the step trains full groups
    assert r["valid_group_frac"] + r["batch/replay/replayed_groups"] / 4 <= 1.0 + 1e-9
  env, state = loop.setup(cfg, str(tmp_path))
  assert rows[-1]["batch/replay/buffer_size"] == len(
      state.algo_state["builders"]["replay"]["groups"]) > 0
  env.writer.close()
  env.ckpt.close()


if "test_confident_pg" not in algorithms.POLICY_LOSSES:
  @algorithms.register_policy_loss("test_confident_pg")
  def _confident_pg(logp, old_logp, advantages, mask, *, old_max_logp, clip_low=0.2,
                    clip_high=0.2, dual_clip=None):
    """PG weighted by the old policy's top probability (exercises the old_max_logp route)."""
    del mask, clip_low, clip_high, dual_clip
    ratio = jnp.exp(logp - old_logp)
    zero = jnp.zeros_like(logp)
    return -jnp.exp(old_max_logp) * advantages * ratio, {"clip_frac_high": zero,
                                                          "clip_frac_low": zero, "ratio": ratio}


def test_a_loss_that_asks_for_old_max_logp_gets_it(tmp_path):
  cfg = helpers.pinned_config("grpo")
  cfg.algo.loss = "test_confident_pg"
  cfg.lock()
  env, state = loop.setup(cfg, str(tmp_path))
  record, _ = collect_lib.collect(env, state, np.random.default_rng(0))
  rows, _ = collect_lib.prepare_batch(env, state, record)
  assert rows["old_max_logp"].shape == rows["mask"].shape
  logp, _ = env.logprobs(state.params, rows)
  valid = rows["mask"] > 0
  assert np.all(rows["old_max_logp"][valid] >= logp[valid] - 1e-5)  # the max bounds the sample
  assert np.all(rows["old_max_logp"] <= 0.0)
  metrics = loop.update(env, state, rows, np.random.default_rng(0))
  assert np.isfinite(metrics[0]["loss"]) and metrics[0]["grad_norm"] > 0
  env.writer.close()
  env.ckpt.close()
