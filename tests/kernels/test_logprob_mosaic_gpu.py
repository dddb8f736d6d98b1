"""The Mosaic GPU forward kernel, checked without a GPU: lowering for CUDA and GPU interpret mode.

Neither proves it runs on a Hopper GPU (PTX compilation and real layouts are untested here); the
``gpu``-marked test at the bottom does, when a GPU is present.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax.kernels.logprob import pallas_mosaic_gpu, reference

TEMPERATURE = 0.7


def _gpu_interpret_params():
  try:  # private in jax 0.10; the class is documented as the way to run Mosaic GPU kernels on CPU
    from jax._src.pallas.mosaic_gpu.interpret.params import InterpretGPUParams
  except ImportError:
    pytest.skip("this jax has no Mosaic GPU interpret mode")
  return InterpretGPUParams()


def _inputs(num_tokens, dim, vocab, dtype=jnp.bfloat16, seed=0):
  k_h, k_w, k_t, k_c = jax.random.split(jax.random.key(seed), 4)
  hidden = jax.random.normal(k_h, (num_tokens, dim)).astype(dtype)
  weight = (jax.random.normal(k_w, (dim, vocab)) * (3.0 / np.sqrt(dim))).astype(dtype)
  targets = jax.random.randint(k_t, (num_tokens,), 0, vocab)
  coef = jax.random.normal(k_c, (2, num_tokens))
  return hidden, weight, targets, coef


def test_lowers_to_a_mosaic_gpu_kernel_for_cuda():
  shapes = (jax.ShapeDtypeStruct((100, 128), jnp.bfloat16),
            jax.ShapeDtypeStruct((128, 512), jnp.bfloat16),
            jax.ShapeDtypeStruct((100,), jnp.int32))
  fn = jax.jit(functools.partial(pallas_mosaic_gpu.logprob_pallas_mosaic_gpu,
                                 temperature=TEMPERATURE))
  text = fn.trace(*shapes).lower(lowering_platforms=("cuda",)).as_text()
  assert "mosaic_gpu" in text


def test_interpret_mode_matches_reference_values_and_grads():
  # N = 100 is not a multiple of the 64-row tile; 4 vocab tiles over 3 splits are uneven.
  hidden, weight, targets, coef = _inputs(100, 128, 512)
  fn = functools.partial(pallas_mosaic_gpu.logprob_pallas_mosaic_gpu, num_splits=3,
                         max_concurrent_steps=2, interpret=_gpu_interpret_params())
  got = jax.jit(fn, static_argnums=3)(hidden, weight, targets, TEMPERATURE)
  want = jax.jit(reference.logprob_reference, static_argnums=3)(hidden, weight, targets, TEMPERATURE)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=5e-5)

  def loss(f, h, w):
    logp, ent = f(h, w, targets, TEMPERATURE)
    return jnp.sum(coef[0] * logp + coef[1] * ent)

  got_grads = jax.jit(jax.grad(functools.partial(loss, fn), argnums=(0, 1)))(hidden, weight)
  want_grads = jax.jit(jax.grad(functools.partial(loss, reference.logprob_reference),
                                argnums=(0, 1)))(hidden, weight)
  for g, w in zip(got_grads, want_grads):
    g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
    np.testing.assert_allclose(g, w, rtol=0, atol=2e-2 * np.abs(w).max())


def test_merge_partial_stats_equals_one_pass():
  z = np.random.default_rng(3).normal(size=(6, 40)).astype(np.float32) * 4.0

  def stats(block):  # per-split (max, sum e, sum e * (z - max)) as the kernel computes them
    m = block.max(1)
    e = np.exp(block - m[:, None])
    return np.stack([m, e.sum(1), (e * (block - m[:, None])).sum(1)])

  parts = np.stack([stats(z[:, :7]), stats(z[:, 7:30]), stats(z[:, 30:])], axis=1)  # [3, S, N]
  lse, ent = jax.jit(pallas_mosaic_gpu.merge_partial_stats)(jnp.asarray(parts))
  z64 = z.astype(np.float64)
  true_lse = np.log(np.exp(z64).sum(1))
  log_p = z64 - true_lse[:, None]
  np.testing.assert_allclose(lse, true_lse, rtol=1e-6)
  np.testing.assert_allclose(ent, -(np.exp(log_p) * log_p).sum(1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("hidden_shape, weight_shape, dtype, fragment", [
    ((8, 128), (128, 256), jnp.float32, "dtype float32"),
    ((8, 100), (100, 256), jnp.bfloat16, "D=100"),
    ((8, 128), (128, 250), jnp.bfloat16, "V=250"),
])
def test_unsupported_reason_names_the_problem(hidden_shape, weight_shape, dtype, fragment):
  assert fragment in pallas_mosaic_gpu.unsupported_reason(hidden_shape, weight_shape, dtype)


@pytest.mark.gpu
def test_on_hopper_gpu_matches_reference_at_qwen_vocab():
  if jax.default_backend() != "gpu":
    pytest.skip("needs a CUDA GPU")
  if pallas_mosaic_gpu.unsupported_reason((1, 1536), (1536, 151_936), jnp.bfloat16):
    pytest.skip("needs a Hopper (sm_90) GPU")
  hidden, weight, targets, coef = _inputs(1000, 1536, 151_936)
  got = jax.jit(pallas_mosaic_gpu.logprob_pallas_mosaic_gpu, static_argnums=3)(
      hidden, weight, targets, TEMPERATURE)
  want = jax.jit(reference.logprob_reference, static_argnums=3)(hidden, weight, targets, TEMPERATURE)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-3)
