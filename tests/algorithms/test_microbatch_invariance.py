"""Gradient accumulation is exact: k micro-batches with global normalisers == the whole batch.

The loss, its gradient with respect to shared parameters, and every metric (combined with
``combine_metrics``) must match for k = 1, 2, 4 and every aggregation mode, with the KL and entropy
terms on. A negative control shows that local normalisers (the trl#3021 / verl#3741 bug) differ.
"""
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
  logits = feats @ params  # [n, T, V]
  logz = jax.nn.log_softmax(logits, axis=-1)
  logp = jnp.take_along_axis(logz, targets[..., None], axis=-1)[..., 0]  # [n, T]
  entropy = -jnp.sum(jnp.exp(logz) * logz, axis=-1)  # [n, T]
  return logp, entropy


def _make_loss(name, agg_mode, use_global):
  options = LOSS_OPTIONS[name]

  def loss_fn(params, feats, targets, old_params, ref_params, adv, mask, global_tokens, global_seqs):
    logp, entropy = _logp_and_entropy(params, feats, targets)
    old_logp, _ = _logp_and_entropy(old_params, feats, targets)
    ref_logp, _ = _logp_and_entropy(ref_params, feats, targets)
    counts = dict(global_tokens=global_tokens, global_seqs=global_seqs) if use_global else {}
    return alg.policy_loss(
        name, logp, old_logp, adv, mask, agg_mode=agg_mode, ref_logp=ref_logp, entropy=entropy,
        norm_constant=float(T), **counts, **options,
    )

  return jax.value_and_grad(loss_fn, has_aux=True)


def _accumulate(step, batch, k, global_counts):
  feats, targets, params, old_params, ref_params, adv, mask = batch
  total_loss, total_grad, parts = 0.0, jnp.zeros_like(params), []
  for idx in np.array_split(np.arange(N), k):
    (loss, metrics), grad = step(
        params, feats[idx], targets[idx], old_params, ref_params, adv[idx], mask[idx],
        global_counts["global_tokens"], global_counts["global_seqs"],
    )
    total_loss, total_grad = total_loss + loss, total_grad + grad
    parts.append(metrics)
  return total_loss, total_grad, alg.combine_metrics(parts)


@pytest.mark.parametrize("name", sorted(LOSS_OPTIONS))
@pytest.mark.parametrize("agg_mode", sorted(alg.AGGREGATIONS))
def test_microbatch_gradient_equals_full_batch(name, agg_mode):
  batch = _batch()
  counts = alg.global_normalizers(batch[-1])
  step = _make_loss(name, agg_mode, use_global=True)
  full_loss, full_grad, full_metrics = _accumulate(step, batch, 1, counts)
  assert float(jnp.abs(full_grad).max()) > 1e-3  # the test is not comparing zeros
  for k in (2, 4):
    loss, grad, metrics = _accumulate(step, batch, k, counts)
    np.testing.assert_allclose(loss, full_loss, rtol=1e-5, atol=1e-7, err_msg=f"k={k}")
    np.testing.assert_allclose(grad, full_grad, rtol=1e-5, atol=1e-6, err_msg=f"k={k}")
    assert set(metrics) == set(full_metrics)
    for key in full_metrics:
      np.testing.assert_allclose(metrics[key], full_metrics[key], rtol=1e-5, atol=1e-7, err_msg=f"{key} k={k}")


@pytest.mark.parametrize("agg_mode", sorted(alg.AGGREGATIONS))
def test_local_normalisers_break_invariance(agg_mode):
  # Negative control: each micro-batch normalising by its own counts (the classic bug).
  batch = _batch()
  step = _make_loss("ppo_clip", agg_mode, use_global=False)
  _, full_grad, _ = _accumulate(step, batch, 1, alg.global_normalizers(batch[-1]))
  _, grad, _ = _accumulate(step, batch, 2, alg.global_normalizers(batch[-1]))
  # Summing two locally normalised halves roughly doubles the scale (and reweights tokens).
  assert not np.allclose(grad, full_grad, rtol=1e-3, atol=1e-5)


@pytest.mark.parametrize("agg_mode", sorted(alg.AGGREGATIONS))
def test_data_parallel_psum_equals_full_batch(agg_mode):
  # k = 4 "devices" as a named vmap axis: each computes its shard's loss and gradient with the
  # global counts, then psum (and reduce_metrics) combines them, as under shard_map / pmap.
  feats, targets, params, old_params, ref_params, adv, mask = batch = _batch()
  counts = alg.global_normalizers(mask)
  step = _make_loss("ppo_clip", agg_mode, use_global=True)
  full_loss, full_grad, full_metrics = _accumulate(step, batch, 1, counts)
  k = 4
  shard = lambda x: x.reshape(k, N // k, *x.shape[1:])

  def per_device(f, t, a, m):
    (loss, metrics), grad = step(
        params, f, t, old_params, ref_params, a, m, counts["global_tokens"], counts["global_seqs"]
    )
    return jax.lax.psum(loss, "d"), jax.lax.psum(grad, "d"), alg.reduce_metrics(metrics, "d")

  loss, grad, metrics = jax.vmap(per_device, axis_name="d")(
      shard(feats), shard(targets), shard(adv), shard(mask)
  )
  np.testing.assert_allclose(loss[0], full_loss, rtol=1e-5, atol=1e-7)
  np.testing.assert_allclose(grad[0], full_grad, rtol=1e-5, atol=1e-6)
  for key in full_metrics:
    np.testing.assert_allclose(metrics[key][0], full_metrics[key], rtol=1e-5, atol=1e-7, err_msg=key)
