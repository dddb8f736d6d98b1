"""Micro-batch invariance end to end: one ``step.rl_update`` of the real (tiny) transformer with
micro_batch_size = all rows and = rows / 4 gives the same parameters and metrics.

tests/algorithms checks the loss algebra; this checks the trainer's gradient accumulation
(``lax.scan`` over micro-batches, global token / sequence counts, combined metrics) with the
logprob kernel, an off-policy ratio, the reference KL and the entropy bonus all active.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from configs import common
from rlvr_jax import algorithms
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import builders
from rlvr_jax.training import step as step_lib

P, G, PROMPT, RESPONSE = 4, 4, 16, 8  # the common.cpu_variant rollout shapes
VOCAB = 80

SPECS = {
    # Per-sequence means need the global sequence count; every loss term is on. (The other losses
    # and aggregation modes are covered at the loss level in tests/algorithms, where compiling is
    # cheap.)
    "ppo_clip-seq-mean-token-mean": step_lib.LossSpec(
        loss="ppo_clip", agg_mode="seq-mean-token-mean", clip_low=0.2, clip_high=0.28,
        dual_clip=3.0, kl_coef=0.1, kl_estimator="k3", entropy_coef=0.01),
}


def _setup():
  cfg = common.base()
  common.cpu_variant(cfg)
  model = builders.init_model(builders.model_config(cfg.model, VOCAB), seed=0)
  graphdef, params = nnx.split(model)
  rng = np.random.default_rng(0)
  prompts = [rng.integers(2, VOCAB, size=rng.integers(3, PROMPT + 1)).tolist() for _ in range(P)]
  lengths = rng.integers(1, RESPONSE + 1, size=P * G)  # unequal response lengths
  response = rng.integers(2, VOCAB, size=(P * G, RESPONSE)).astype(np.int32)
  rows = batch_lib.rollout_batch(prompts, G, response, lengths, pad_id=0, prompt_len=PROMPT,
                                 response_len=RESPONSE)
  logp, _ = step_lib.batch_logprobs(params, rows, graphdef=graphdef, temperature=1.0, impl=None,
                                    num_micro=1)
  logp = np.asarray(logp)
  rows["advantages"] = rng.normal(size=P * G).astype(np.float32)
  # A stale behaviour policy and a distinct reference: ratios away from 1, some clipped.
  rows["old_logp"] = (logp + 0.3 * rng.normal(size=logp.shape)).astype(np.float32)
  rows["ref_logp"] = (logp + 0.5 * rng.normal(size=logp.shape)).astype(np.float32)
  return graphdef, params, rows


@pytest.mark.parametrize("name", sorted(SPECS))
def test_rl_update_is_invariant_to_micro_batch_size(name):
  graphdef, params, rows = _setup()
  spec = SPECS[name]
  tx = optax.sgd(0.5)  # SGD: Adam's first step ~ sign(g) would amplify float noise in tiny grads
  update = step_lib.jit_update(step_lib.rl_update)
  results = {}
  for num_micro in (1, 4):  # micro_batch_size = 16 rows and 4 rows
    p = jax.tree.map(jnp.copy, params)
    new, _, metrics = update(p, tx.init(p), {k: jnp.asarray(v) for k, v in rows.items()},
                             graphdef=graphdef, tx=tx, spec=spec, num_micro=num_micro)
    results[num_micro] = ([np.asarray(x) for x in jax.tree.leaves(new)], jax.device_get(metrics))

  (whole, m1), (split, m4) = results[1], results[4]
  before = [np.asarray(x) for x in jax.tree.leaves(params)]
  assert max(np.abs(a - b).max() for a, b in zip(whole, before)) > 1e-4  # a real update
  for a, b in zip(whole, split, strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  assert m1.keys() == m4.keys()
  for k in m1:
    np.testing.assert_allclose(m1[k], m4[k], rtol=1e-4, atol=1e-6, err_msg=k)
  assert m1["clip_frac"] > 0  # the clipped branch is exercised


# --- The 80/20 forking-token loss: its entropy quantile is over the whole mini-batch ---


def _update_whole_and_split(graphdef, params, rows, spec):
  """One SGD rl_update with 1 and with 4 micro-batches: {num_micro: (param leaves, metrics)}."""
  tx = optax.sgd(0.5)
  update = step_lib.jit_update(step_lib.rl_update)
  out = {}
  for num_micro in (1, 4):
    p = jax.tree.map(jnp.copy, params)
    new, _, metrics = update(p, tx.init(p), {k: jnp.asarray(v) for k, v in rows.items()},
                             graphdef=graphdef, tx=tx, spec=spec, num_micro=num_micro)
    out[num_micro] = ([np.asarray(x) for x in jax.tree.leaves(new)], jax.device_get(metrics))
  return out


def test_prepare_statistic_is_over_the_mini_batch_not_the_micro_batch():
  graphdef, params, rows = _setup()
  spec = step_lib.LossSpec(loss="forking_tokens", agg_mode="token-mean", on_policy=False,
                           loss_options=(("rho", 0.2),))
  _, ent = step_lib.batch_logprobs(params, rows, graphdef=graphdef, temperature=1.0, impl=None,
                                   num_micro=1)
  ent, mask = np.asarray(ent), rows["mask"]
  valid = np.sort(ent[mask > 0])
  want = valid[int(np.floor(0.8 * (valid.size - 1)))]  # the quantile over all 16 rows' tokens
  kept_frac = float((ent[mask > 0] >= want).mean())
  out = _update_whole_and_split(graphdef, params, rows, spec)
  # "forking_kept" is the token mean of the mask: with a per-micro-batch quantile it would differ.
  for num_micro in (1, 4):
    np.testing.assert_allclose(out[num_micro][1]["forking_kept"], kept_frac, rtol=1e-5)
  for a, b in zip(out[1][0], out[4][0], strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  # Per micro-batch (4 rows each) the quantile would keep a different set of tokens.
  per_micro = [ent[k::4][mask[k::4] > 0] for k in range(4)]
  local = sum(int((e >= np.sort(e)[int(np.floor(0.8 * (e.size - 1)))]).sum()) for e in per_micro)
  assert local != int(round(kept_frac * (mask > 0).sum()))


def test_loss_options_are_checked_by_name():
  with pytest.raises(ValueError, match=r"unknown options \['rhoo'\].*rho"):
    algorithms.check_loss_options("forking_tokens", {"rhoo": 0.2})
  with pytest.raises(ValueError, match="unknown options"):
    algorithms.check_loss_options("ppo_clip", {"rho": 0.2})
  assert algorithms.check_loss_options("forking_tokens", {"rho": 0.2}) == {"rho": 0.2}


@pytest.mark.parametrize("loss, options", [
    ("clip_cov", (("ratio", 0.05), ("cov_low", 0.0), ("cov_high", 100.0))),
    ("kl_cov", (("ratio", 0.05), ("cov_coef", 1.0)))])
def test_covariance_losses_select_over_the_mini_batch(loss, options):
  """Clip-Cov / KL-Cov: the covariance means and the selected tokens come from the whole
  mini-batch, so 1 and 4 micro-batches give the same update and the same selected fraction."""
  graphdef, params, rows = _setup()
  spec = step_lib.LossSpec(loss=loss, agg_mode="token-mean", on_policy=False,
                           loss_options=options)
  out = _update_whole_and_split(graphdef, params, rows, spec)
  key = "cov_detached" if loss == "clip_cov" else "cov_penalised"
  assert out[1][1][key] > 0
  np.testing.assert_allclose(out[1][1][key], out[4][1][key], rtol=1e-6)
  for a, b in zip(out[1][0], out[4][0], strict=True):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
