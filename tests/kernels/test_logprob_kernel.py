"""rlvr_jax.kernels.logprob: xla and Pallas (interpret mode) against the materialised reference.

Values and gradients (w.r.t. hidden and weight, of logp and of entropy, through a downstream mask,
temperature != 1) for float32 and bfloat16 inputs, tile sizes that divide neither N nor V, and one
real vocabulary size (151,936) with a small N.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax.kernels.logprob import pallas_tpu, reference, xla

TEMPERATURE = 0.7

# name -> fn(hidden, weight, targets, temperature); tiles chosen to divide neither N=37 nor V=300.
IMPLS = {
    "xla": functools.partial(xla.logprob_xla, block_tokens=16, block_vocab=64),
    "pallas_tpu": functools.partial(pallas_tpu.logprob_pallas_tpu, block_tokens=16,
                                    block_vocab=128, interpret=True),
}
# Per-dtype (rtol, atol) of the float32 outputs, and relative tolerance of gradients (scaled by the
# gradient's largest entry): bfloat16 gradients are rounded to bfloat16 (2**-8 relative).
VALUE_TOL = {jnp.float32: (1e-5, 1e-5), jnp.bfloat16: (1e-5, 5e-5)}
GRAD_TOL = {jnp.float32: 2e-5, jnp.bfloat16: 2e-2}


def make_inputs(num_tokens, dim, vocab, dtype, seed=0, logit_scale=3.0):
  k_h, k_w, k_t, k_c = jax.random.split(jax.random.key(seed), 4)
  hidden = jax.random.normal(k_h, (num_tokens, dim), jnp.float32)
  weight = jax.random.normal(k_w, (dim, vocab), jnp.float32) * (logit_scale / np.sqrt(dim))
  targets = jax.random.randint(k_t, (num_tokens,), 0, vocab)
  # Per-token loss coefficients (distinct cotangents per row) and a mask that drops every third row.
  coef = jax.random.normal(k_c, (2, num_tokens), jnp.float32)
  mask = (jnp.arange(num_tokens) % 3 != 0).astype(jnp.float32)
  return hidden.astype(dtype), weight.astype(dtype), targets, coef, mask


def jitted(fn):
  # Eager calls dispatch (and compile) op by op: one jit per call is much faster on this CPU.
  return jax.jit(fn, static_argnums=3)


def masked_loss(fn, which, coef, mask, hidden, weight, targets):
  logp, entropy = fn(hidden, weight, targets, TEMPERATURE)
  terms = {"logp": coef[0] * logp, "entropy": coef[1] * entropy,
           "both": coef[0] * logp + coef[1] * entropy}[which]
  return jnp.sum(mask * terms)


def assert_grads_close(got, want, rel):
  got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
  scale = np.abs(want).max()
  np.testing.assert_allclose(got, want, rtol=0, atol=rel * scale)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_values_match_reference(impl, dtype):
  hidden, weight, targets, _, _ = make_inputs(37, 32, 300, dtype)
  want = jax.jit(reference.logprob_reference, static_argnums=3)(hidden, weight, targets, TEMPERATURE)
  got = jax.jit(IMPLS[impl], static_argnums=3)(hidden, weight, targets, TEMPERATURE)
  rtol, atol = VALUE_TOL[dtype]
  for g, w in zip(got, want):
    assert g.dtype == jnp.float32 and g.shape == (37,)
    np.testing.assert_allclose(g, w, rtol=rtol, atol=atol)
  assert float(jnp.min(want[1])) > 0.1  # non-degenerate entropies, so the check means something


# Each output's gradient alone in float32 (checks the logp and the entropy formulas separately),
# then both together in both dtypes.
GRAD_CASES = [(impl, jnp.float32, which) for impl in sorted(IMPLS) for which in ("logp", "entropy")]
GRAD_CASES += [(impl, dtype, "both") for impl in sorted(IMPLS) for dtype in (jnp.float32, jnp.bfloat16)]


@pytest.mark.parametrize("impl, dtype, which", GRAD_CASES,
                         ids=[f"{i}-{jnp.dtype(d).name}-{w}" for i, d, w in GRAD_CASES])
def test_grads_match_reference_with_mask(impl, dtype, which):
  hidden, weight, targets, coef, mask = make_inputs(37, 32, 300, dtype, seed=1)
  grad = lambda fn: jax.jit(jax.grad(functools.partial(masked_loss, fn, which, coef, mask),
                                     argnums=(0, 1)))(hidden, weight, targets)
  want_dh, want_dw = grad(reference.logprob_reference)
  got_dh, got_dw = grad(IMPLS[impl])
  assert got_dh.dtype == hidden.dtype and got_dw.dtype == weight.dtype
  assert_grads_close(got_dh, want_dh, GRAD_TOL[dtype])
  assert_grads_close(got_dw, want_dw, GRAD_TOL[dtype])
  # Masked rows get a zero cotangent, hence exactly zero gradient.
  np.testing.assert_array_equal(np.asarray(got_dh, np.float32)[::3], 0.0)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["f32", "bf16"])
def test_xla_real_vocab_values_and_grads(dtype):
  """Qwen2.5's 151,936 vocab (= 128 * 1187) with the default tiles: a 1,216-column remainder tile."""
  vocab = 151_936
  hidden, weight, targets, coef, mask = make_inputs(12, 16, vocab, dtype, seed=2)
  want = jitted(reference.logprob_reference)(hidden, weight, targets, TEMPERATURE)
  got = jitted(xla.logprob_xla)(hidden, weight, targets, TEMPERATURE)
  rtol, atol = VALUE_TOL[dtype]
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=rtol, atol=10 * atol)
  grad = lambda fn: jax.jit(jax.grad(functools.partial(masked_loss, fn, "both", coef, mask),
                                     argnums=(0, 1)))(hidden, weight, targets)
  for g, w in zip(grad(xla.logprob_xla), grad(reference.logprob_reference)):
    assert_grads_close(g, w, GRAD_TOL[dtype])


@pytest.mark.parametrize("impl", sorted(IMPLS))
def test_entropy_of_large_peaked_logits_matches_float64(impl):
  """Logits ~200 +- 40: accumulating z - max (not z) avoids the lse - E[z] cancellation.

  One-hot hidden rows make the logits exactly the float32 rows of ``weight``, so the float64 entropy
  of those logits is the truth; the textbook lse - E_p[z] in float32 is ~100x further from it.
  """
  num_tokens, vocab = 20, 500
  rng = np.random.default_rng(0)
  spread = np.linspace(1.0, 40.0, num_tokens)[:, None]  # from flat to very peaked rows
  logits = (200.0 + rng.normal(size=(num_tokens, vocab)) * spread).astype(np.float32)
  weight = np.zeros((vocab, vocab), np.float32)
  weight[:num_tokens] = logits
  hidden = np.eye(num_tokens, vocab, dtype=np.float32)
  targets = jnp.asarray(rng.integers(0, vocab, num_tokens))
  z = logits.astype(np.float64)
  log_p = z - z.max(1, keepdims=True)
  log_p -= np.log(np.exp(log_p).sum(1, keepdims=True))
  true_entropy = -(np.exp(log_p) * log_p).sum(1)
  true_logp = np.take_along_axis(log_p, np.asarray(targets)[:, None], 1)[:, 0]

  logp, entropy = jitted(IMPLS[impl])(jnp.asarray(hidden), jnp.asarray(weight), targets, 1.0)
  textbook = jax.nn.logsumexp(logits, 1) - jnp.sum(jax.nn.softmax(logits, 1) * logits, 1)
  assert true_entropy.min() < 1e-3
  np.testing.assert_allclose(entropy, true_entropy, rtol=0, atol=1e-6)
  assert np.abs(np.asarray(textbook) - true_entropy).max() > 1e-5  # the case is a hard one
  np.testing.assert_allclose(logp, true_logp, rtol=1e-6, atol=1e-4)


@pytest.mark.parametrize("impl", ["reference", "xla", "pallas_tpu"])
def test_out_of_range_target_gives_nan(impl):
  hidden, weight, targets, _, _ = make_inputs(9, 8, 130, jnp.float32, seed=4)
  targets = targets.at[2].set(130).at[5].set(-1)
  fn = {"reference": reference.logprob_reference, **IMPLS}[impl]
  logp, entropy = jitted(fn)(hidden, weight, targets, 1.0)
  bad = np.isnan(np.asarray(logp))
  np.testing.assert_array_equal(np.flatnonzero(bad), [2, 5])
  assert np.isfinite(np.asarray(entropy)).all()


def test_foreach_tile_covers_every_index_once():
  def bump(start, size, counts):  # adds 1 to counts[start:start + size]
    block = jax.lax.dynamic_slice_in_dim(counts, start, size)
    return jax.lax.dynamic_update_slice_in_dim(counts, block + 1, start, 0)

  for total, tile in [(10, 3), (9, 3), (2, 5), (7, 1), (6, 6)]:
    counts = xla.foreach_tile(total, tile, bump, jnp.zeros((total,), jnp.int32))
    np.testing.assert_array_equal(counts, np.ones(total))


def test_xla_memory_is_tiled_not_materialised():
  """Compiled temp memory of the xla forward+backward stays near one tile, far below N x V floats."""
  num_tokens, dim, vocab = 512, 64, 32_768
  shapes = (jax.ShapeDtypeStruct((num_tokens, dim), jnp.float32),
            jax.ShapeDtypeStruct((dim, vocab), jnp.float32),
            jax.ShapeDtypeStruct((num_tokens,), jnp.int32))

  def temp_bytes(fn):
    loss = lambda h, w, t: jnp.sum(sum(fn(h, w, t, TEMPERATURE)))
    compiled = jax.jit(jax.grad(loss, argnums=(0, 1))).lower(*shapes).compile()
    return compiled.memory_analysis().temp_size_in_bytes

  logits_bytes = num_tokens * vocab * 4
  ref_temp = temp_bytes(reference.logprob_reference)
  xla_temp = temp_bytes(functools.partial(xla.logprob_xla, block_tokens=128, block_vocab=1024))
  assert ref_temp >= logits_bytes
  assert xla_temp < 0.1 * logits_bytes, (xla_temp, ref_temp)


def test_pallas_tpu_under_the_tpu_faithful_interpreter():
  """pltpu.InterpretParams simulates VMEM, DMAs and the grid as a TPU runs them (slower than True)."""
  from jax.experimental.pallas import tpu as pltpu
  hidden, weight, targets, coef, mask = make_inputs(37, 32, 300, jnp.float32, seed=5)
  fn = functools.partial(pallas_tpu.logprob_pallas_tpu, block_tokens=16, block_vocab=128,
                         interpret=pltpu.InterpretParams())
  for g, w in zip(jitted(fn)(hidden, weight, targets, TEMPERATURE),
                  jitted(reference.logprob_reference)(hidden, weight, targets, TEMPERATURE)):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
  grad = lambda f: jax.jit(jax.grad(functools.partial(masked_loss, f, "both", coef, mask),
                                    argnums=(0, 1)))(hidden, weight, targets)
  for g, w in zip(grad(fn), grad(reference.logprob_reference)):
    assert_grads_close(g, w, GRAD_TOL[jnp.float32])


def test_pallas_tpu_lowers_to_mosaic_at_a_real_shape():
  """Forward and both backward kernels lower to Mosaic TPU custom calls (D=1536, V=151,936, bf16)."""
  shapes = (jax.ShapeDtypeStruct((1000, 1536), jnp.bfloat16),
            jax.ShapeDtypeStruct((1536, 151_936), jnp.bfloat16),
            jax.ShapeDtypeStruct((1000,), jnp.int32))
  loss = lambda h, w, t: jnp.sum(sum(pallas_tpu.logprob_pallas_tpu(h, w, t, TEMPERATURE)))
  lowered = jax.jit(jax.grad(loss, argnums=(0, 1))).trace(*shapes).lower(lowering_platforms=("tpu",))
  assert lowered.as_text().count("tpu_custom_call") == 3


@pytest.mark.gpu
@pytest.mark.parametrize("request_name", [None, "xla", "pallas"])
def test_on_gpu_bf16_values_and_grads_match_float32_reference(request_name):
  """On a CUDA GPU, at the Qwen vocabulary: bf16 inputs, each API request, against the float32 oracle.

  The oracle is the materialised reference on the same values cast to float32 (so the only
  differences are the kernels' bf16 products and bf16 gradient operands); tolerances are the CPU
  tests' bf16 ones.
  """
  if jax.default_backend() != "gpu":
    pytest.skip("needs a CUDA GPU")
  from rlvr_jax.kernels import logprob
  hidden, weight, targets, coef, mask = make_inputs(1000, 1536, 151_936, jnp.bfloat16)
  got_fn = lambda h, w, t, temp: logprob(h, w, t, temperature=temp, implementation=request_name)
  f32 = lambda x: x.astype(jnp.float32)
  got = jitted(got_fn)(hidden, weight, targets, TEMPERATURE)
  want = jitted(reference.logprob_reference)(f32(hidden), f32(weight), targets, TEMPERATURE)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-3)
  grad = lambda fn: jax.jit(jax.grad(functools.partial(masked_loss, fn, "both", coef, mask),
                                     argnums=(0, 1)))
  got_g = grad(got_fn)(hidden, weight, targets)
  want_g = grad(reference.logprob_reference)(f32(hidden), f32(weight), targets)
  for g, w in zip(got_g, want_g):
    assert g.dtype == jnp.bfloat16
    assert_grads_close(g, w, GRAD_TOL[jnp.bfloat16])


def test_grad_operand_dtype_rounds_only_matching_16_bit_inputs():
  f32, bf16, f16 = jnp.dtype(jnp.float32), jnp.dtype(jnp.bfloat16), jnp.dtype(jnp.float16)
  assert xla.grad_operand_dtype(bf16, bf16) == bf16
  assert xla.grad_operand_dtype(f16, f16) == f16
  assert xla.grad_operand_dtype(bf16, f32) == f32  # mixed inputs: float32 tiles
  assert xla.grad_operand_dtype(f32, f32) == f32
  assert xla.grad_operand_dtype(bf16, bf16, low_precision=False) == f32


def test_xla_float32_gradient_tiles_option_matches_reference_more_tightly():
  """low_precision_grads=False (float32 tiles) is closer to the float32 oracle than bf16 tiles."""
  hidden, weight, targets, coef, mask = make_inputs(37, 32, 300, jnp.bfloat16)
  f32 = lambda x: x.astype(jnp.float32)
  want = jax.grad(functools.partial(masked_loss, reference.logprob_reference, "both", coef, mask),
                  argnums=(0, 1))(f32(hidden), f32(weight), targets)
  errors = {}
  for low in (True, False):
    fn = functools.partial(xla.logprob_xla, block_tokens=16, block_vocab=64, low_precision_grads=low)
    got = jax.jit(jax.grad(functools.partial(masked_loss, fn, "both", coef, mask), argnums=(0, 1)))(
        hidden, weight, targets)
    for g, w in zip(got, want):
      assert_grads_close(g, w, GRAD_TOL[jnp.bfloat16])
    errors[low] = max(float(np.abs(np.asarray(g, np.float32) - np.asarray(w)).max())
                      for g, w in zip(got, want))
  assert errors[False] <= errors[True]
