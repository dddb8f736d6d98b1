"""Gradient accumulation is exact: k micro-batches with global normalisers == the whole batch.

The loss, its gradient with respect to shared parameters, and every metric (combined with
``combine_metrics``) must match for k = 1, 2, 4, every policy loss and every aggregation mode, with
the KL and entropy terms on. The same holds for k "devices" combined with psum / ``reduce_metrics``.
A negative control shows that local normalisers (the trl#3021 / verl#3741 bug) break it.

To keep CPU compile time small, one jitted function evaluates every (loss, mode) pair for a batch
shape (three shapes: the full batch and its halves and quarters) and the results are cached.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax import algorithms as alg

N, T, D, V = 8, 6, 4, 7
LENGTHS = np.array([6, 1, 3, 0, 5, 2, 6, 4])  # unequal lengths and one all-padding row

LOSS_OPTIONS = {
    "ppo_clip": dict(clip_low=0.2, clip_high=0.28, dual_clip=3.0, kl_coef=0.1, kl_estimator="k3",
                     entropy_coef=0.01),
    # Wider than GSPO's paper range so that some sequences are inside the trust region.
    "gspo": dict(clip_low=0.2, clip_high=0.2, kl_coef=0.05, kl_estimator="k3+", entropy_coef=0.01),
    "cispo": dict(clip_low=1.0, clip_high=0.28, kl_coef=0.1, kl_estimator="k2", entropy_coef=0.01),
}
MODES = sorted(alg.AGGREGATIONS)
CASES = [(name, mode) for name in sorted(LOSS_OPTIONS) for mode in MODES]


def _batch():
  keys = jax.random.split(jax.random.PRNGKey(0), 6)
  feats = jax.random.normal(keys[0], (N, T, D))
  targets = jax.random.randint(keys[1], (N, T), 0, V)
  params = jax.random.normal(keys[2], (D, V))
  old_params = params + 0.3 * jax.random.normal(keys[3], (D, V))
  ref_params = params + 0.5 * jax.random.normal(keys[4], (D, V))
  adv = jax.random.normal(keys[5], (N,))
  mask = (jnp.arange(T)[None] < jnp.asarray(LENGTHS)[:, None]).astype(jnp.float32)
  return feats, targets, params, old_params, ref_params, adv, mask


def _logp_and_entropy(params, feats, targets):
  logz = jax.nn.log_softmax(feats @ params, axis=-1)  # [n, T, V]
  logp = jnp.take_along_axis(logz, targets[..., None], axis=-1)[..., 0]  # [n, T]
  entropy = -jnp.sum(jnp.exp(logz) * logz, axis=-1)  # [n, T]
  return logp, entropy


def _all_cases(params, feats, targets, old_params, ref_params, adv, mask, global_tokens, global_seqs):
  """(loss, d loss / d params, metrics) for every (loss, agg_mode) on one micro-batch."""
  (logp, entropy), pullback = jax.vjp(lambda p: _logp_and_entropy(p, feats, targets), params)
  old_logp, _ = _logp_and_entropy(old_params, feats, targets)
  ref_logp, _ = _logp_and_entropy(ref_params, feats, targets)
  out = {}
  for name, mode in CASES:
    def loss_fn(lp, ent, name=name, mode=mode):
      return alg.policy_loss(
          name, lp, old_logp, adv, mask, agg_mode=mode, ref_logp=ref_logp, entropy=ent,
          global_tokens=global_tokens, global_seqs=global_seqs, norm_constant=float(T),
          **LOSS_OPTIONS[name],
      )

    (loss, metrics), grads = jax.value_and_grad(loss_fn, argnums=(0, 1), has_aux=True)(logp, entropy)
    (grad,) = pullback(grads)  # chain rule back to the shared parameters
    out[name, mode] = (loss, grad, metrics)
  return out


_all_cases_jit = jax.jit(_all_cases)


def _accumulate(k, use_global=True):
  """Sums loss and gradient over k micro-batches and combines their metrics."""
  feats, targets, params, old_params, ref_params, adv, mask = _batch()
  counts = alg.global_normalizers(mask)
  parts = []
  for idx in np.array_split(np.arange(N), k):
    if not use_global:  # the classic bug: each micro-batch normalises by its own counts
      counts = alg.global_normalizers(mask[idx])
    parts.append(_all_cases_jit(
        params, feats[idx], targets[idx], old_params, ref_params, adv[idx], mask[idx],
        counts["global_tokens"], counts["global_seqs"],
    ))
  out = {}
  for case in CASES:
    loss = sum(p[case][0] for p in parts)
    grad = sum(p[case][1] for p in parts)
    out[case] = (loss, grad, alg.combine_metrics([p[case][2] for p in parts]))
  return out


@functools.lru_cache(maxsize=None)
def _results(k, use_global=True):
  return jax.device_get(_accumulate(k, use_global))


@pytest.mark.parametrize("name, agg_mode", CASES)
def test_microbatch_gradient_equals_full_batch(name, agg_mode):
  full_loss, full_grad, full_metrics = _results(1)[name, agg_mode]
  assert np.abs(full_grad).max() > 1e-3  # the test is not comparing zeros
  for k in (2, 4):
    loss, grad, metrics = _results(k)[name, agg_mode]
    np.testing.assert_allclose(loss, full_loss, rtol=1e-5, atol=1e-7, err_msg=f"k={k}")
    np.testing.assert_allclose(grad, full_grad, rtol=1e-5, atol=1e-6, err_msg=f"k={k}")
    assert set(metrics) == set(full_metrics)
    for key in full_metrics:
      np.testing.assert_allclose(metrics[key], full_metrics[key], rtol=1e-5, atol=1e-7, err_msg=f"{key} k={k}")


@pytest.mark.parametrize("agg_mode", MODES)
def test_local_normalisers_break_invariance(agg_mode):
  # Negative control: with per-micro-batch counts the accumulated gradient is wrong.
  _, full_grad, _ = _results(1)["ppo_clip", agg_mode]
  _, grad, _ = _results(2, use_global=False)["ppo_clip", agg_mode]
  assert not np.allclose(grad, full_grad, rtol=1e-3, atol=1e-5)


@jax.jit
def _data_parallel(params, feats, targets, old_params, ref_params, adv, mask, global_tokens, global_seqs):
  # k = 4 "devices" as a named vmap axis: each computes its shard's loss, gradient and metrics
  # with the global counts; psum / reduce_metrics combine them, as under shard_map or pmap.
  k = 4
  shard = lambda x: x.reshape(k, N // k, *x.shape[1:])

  def per_device(f, t, a, m):
    out = _all_cases(params, f, t, old_params, ref_params, a, m, global_tokens, global_seqs)
    return {
        case: (jax.lax.psum(loss, "d"), jax.lax.psum(grad, "d"), alg.reduce_metrics(metrics, "d"))
        for case, (loss, grad, metrics) in out.items() if case[0] == "ppo_clip"
    }

  out = jax.vmap(per_device, axis_name="d")(shard(feats), shard(targets), shard(adv), shard(mask))
  return jax.tree.map(lambda x: x[0], out)  # every device holds the same reduced values


def test_data_parallel_psum_equals_full_batch():
  feats, targets, params, old_params, ref_params, adv, mask = _batch()
  counts = alg.global_normalizers(mask)
  got = _data_parallel(
      params, feats, targets, old_params, ref_params, adv, mask, counts["global_tokens"], counts["global_seqs"]
  )
  for mode in MODES:
    loss, grad, metrics = got["ppo_clip", mode]
    full_loss, full_grad, full_metrics = _results(1)["ppo_clip", mode]
    np.testing.assert_allclose(loss, full_loss, rtol=1e-5, atol=1e-7, err_msg=mode)
    np.testing.assert_allclose(grad, full_grad, rtol=1e-5, atol=1e-6, err_msg=mode)
    for key in full_metrics:
      np.testing.assert_allclose(metrics[key], full_metrics[key], rtol=1e-5, atol=1e-7, err_msg=f"{mode} {key}")
