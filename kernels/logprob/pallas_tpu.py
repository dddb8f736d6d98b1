"""Pallas TPU kernels for the fused log-prob / entropy of the sampled token.

Same math as ``xla.py`` (online log-sum-exp forward, logits recomputed in the backward; see its
docstring for the gradient derivation), written as three ``pl.pallas_call``s:

* forward: grid (token blocks "parallel", vocab blocks "arbitrary"); the running max ``m``, the sum
  ``s = sum exp(z - m)``, ``a = sum exp(z - m)(z - m)`` and the target logit live in VMEM scratch and
  the per-token outputs (logp, lse, entropy) are written on the last vocab block.
* d hidden: grid (token blocks, vocab blocks); a [block_tokens, D] float32 accumulator in VMEM.
* d weight: grid (vocab blocks, token blocks); a [D, block_vocab] float32 accumulator in VMEM.

Splitting the backward in two recomputes the logits twice (4 matmul units for forward + backward
instead of 3 for a materialised softmax), the price of never revisiting an output block: the same
trade the Pallas TPU flash-attention backward makes (dq kernel, dkv kernel).

Per-token vectors travel as [N, 1] arrays so their blocks are [block_tokens, 1] (legal on TPU because
the last dimension equals the array's). Blocks past the end of N or V read unspecified memory (NaN
in interpret mode), so every product that sums over the token or vocab axis masks its inputs first.
The whole D is one block: hidden [block_tokens, D] and weight [D, block_vocab] tiles (double buffered)
must fit VMEM, which the defaults do for D <= 4096 in bfloat16.

Checked on CPU only (tests/kernels): values and gradients under both the generic interpreter
(``interpret=True``) and the TPU-faithful one (``pltpu.InterpretParams()``), and lowering to Mosaic
TPU custom calls at a real shape (``lowering_platforms=("tpu",)``). No TPU was available to this
project when it was written: Mosaic's own compile passes never ran, and TPU speed is unmeasured.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax import lax
from jax.experimental import pallas as pl
from jax.experimental.pallas import tpu as pltpu
from jaxtyping import Array, Float, Int

DEFAULT_BLOCK_TOKENS = 256
DEFAULT_BLOCK_VOCAB = 512
_NEG_BIG = float(jnp.finfo(jnp.float32).min)


def _logits(h, w, temperature):
  return jnp.dot(h, w, preferred_element_type=jnp.float32) / temperature  # [bn, bv]


def _col_ids(block, shape, block_vocab):
  return block * block_vocab + lax.broadcasted_iota(jnp.int32, shape, 1)


def _row_ids(block, shape, block_tokens):
  return block * block_tokens + lax.broadcasted_iota(jnp.int32, shape, 0)


# ----------------------------------------------------------------------------------- forward


def _fwd_kernel(h_ref, w_ref, t_ref, logp_ref, lse_ref, ent_ref, m_sc, s_sc, a_sc, pick_sc, *,
                temperature, vocab, block_vocab):
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    m_sc[...] = jnp.full(m_sc.shape, _NEG_BIG, jnp.float32)
    s_sc[...] = jnp.zeros(s_sc.shape, jnp.float32)
    a_sc[...] = jnp.zeros(a_sc.shape, jnp.float32)
    pick_sc[...] = jnp.zeros(pick_sc.shape, jnp.float32)

  z = _logits(h_ref[...], w_ref[...], temperature)  # [bn, bv]
  cols = _col_ids(j, z.shape, block_vocab)
  valid = cols < vocab  # the last vocab block may run past V
  z = jnp.where(valid, z, _NEG_BIG)
  m = m_sc[...]  # [bn, 1]
  m_new = jnp.maximum(m, jnp.max(z, axis=-1, keepdims=True))
  shifted = jnp.where(valid, z - m_new, 0.0)
  e = jnp.where(valid, jnp.exp(shifted), 0.0)
  scale = jnp.exp(m - m_new)
  a_sc[...] = scale * (a_sc[...] + (m - m_new) * s_sc[...]) + jnp.sum(e * shifted, -1, keepdims=True)
  s_sc[...] = scale * s_sc[...] + jnp.sum(e, axis=-1, keepdims=True)
  m_sc[...] = m_new
  pick_sc[...] += jnp.sum(jnp.where(cols == t_ref[...], z, 0.0), axis=-1, keepdims=True)

  @pl.when(j == pl.num_programs(1) - 1)
  def _finish():
    log_s = jnp.log(s_sc[...])
    lse = m_sc[...] + log_s
    t = t_ref[...]
    lse_ref[...] = lse
    logp_ref[...] = jnp.where((t >= 0) & (t < vocab), pick_sc[...] - lse, jnp.nan)
    ent_ref[...] = log_s - a_sc[...] / s_sc[...]


def _forward(hidden, weight, targets, temperature, block_tokens, block_vocab, interpret):
  num_tokens, dim = hidden.shape
  vocab = weight.shape[1]
  bn, bv = block_tokens, block_vocab
  row_spec = pl.BlockSpec((bn, 1), lambda i, j: (i, 0))
  vec = jax.ShapeDtypeStruct((num_tokens, 1), jnp.float32)
  kernel = functools.partial(_fwd_kernel, temperature=temperature, vocab=vocab, block_vocab=bv)
  logp, lse, ent = pl.pallas_call(
      kernel,
      grid=(pl.cdiv(num_tokens, bn), pl.cdiv(vocab, bv)),
      in_specs=[pl.BlockSpec((bn, dim), lambda i, j: (i, 0)),
                pl.BlockSpec((dim, bv), lambda i, j: (0, j)),
                row_spec],
      out_specs=[row_spec, row_spec, row_spec],
      out_shape=[vec, vec, vec],
      scratch_shapes=[pltpu.VMEM((bn, 1), jnp.float32) for _ in range(4)],
      compiler_params=pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary")),
      interpret=interpret,
      name="logprob_fwd",
  )(hidden, weight, targets[:, None])
  return logp[:, 0], lse[:, 0], ent[:, 0]


# ---------------------------------------------------------------------------------- backward


def _dlogits(z, cols, t, lse, ent, g_logp, g_ent, valid, temperature):
  """d loss / d (h @ W) for one tile, zero where ``valid`` is False; see xla.py for the math."""
  log_p = z - lse  # [bn, bv]
  p = jnp.exp(log_p)
  dz = jnp.where(cols == t, g_logp, 0.0) - p * (g_logp + g_ent * (log_p + ent))
  return jnp.where(valid, dz, 0.0) / temperature


def _dh_kernel(h_ref, w_ref, t_ref, lse_ref, ent_ref, gl_ref, ge_ref, dh_ref, acc, *,
               temperature, vocab, block_vocab):
  j = pl.program_id(1)

  @pl.when(j == 0)
  def _init():
    acc[...] = jnp.zeros(acc.shape, jnp.float32)

  w = w_ref[...]  # [D, bv]
  z = _logits(h_ref[...], w, temperature)
  cols = _col_ids(j, z.shape, block_vocab)
  dz = _dlogits(z, cols, t_ref[...], lse_ref[...], ent_ref[...], gl_ref[...], ge_ref[...],
                cols < vocab, temperature)
  # Columns past V hold garbage (possibly NaN) and would poison the sum over the vocab axis.
  w = jnp.where(_col_ids(j, w.shape, block_vocab) < vocab, w, jnp.zeros_like(w))
  acc[...] += lax.dot_general(dz.astype(w.dtype), w, (((1,), (1,)), ((), ())),
                              preferred_element_type=jnp.float32)  # [bn, D]

  @pl.when(j == pl.num_programs(1) - 1)
  def _finish():
    dh_ref[...] = acc[...].astype(dh_ref.dtype)


def _dw_kernel(h_ref, w_ref, t_ref, lse_ref, ent_ref, gl_ref, ge_ref, dw_ref, acc, *,
               temperature, vocab, num_tokens, block_tokens, block_vocab):
  j, i = pl.program_id(0), pl.program_id(1)

  @pl.when(i == 0)
  def _init():
    acc[...] = jnp.zeros(acc.shape, jnp.float32)

  h = h_ref[...]  # [bn, D]
  z = _logits(h, w_ref[...], temperature)
  cols = _col_ids(j, z.shape, block_vocab)
  valid = (cols < vocab) & (_row_ids(i, z.shape, block_tokens) < num_tokens)
  dz = _dlogits(z, cols, t_ref[...], lse_ref[...], ent_ref[...], gl_ref[...], ge_ref[...],
                valid, temperature)
  # Rows past N hold garbage and would poison the sum over the token axis.
  h = jnp.where(_row_ids(i, h.shape, block_tokens) < num_tokens, h, jnp.zeros_like(h))
  acc[...] += jnp.dot(h.T, dz.astype(h.dtype), preferred_element_type=jnp.float32)  # [D, bv]

  @pl.when(i == pl.num_programs(1) - 1)
  def _finish():
    dw_ref[...] = acc[...].astype(dw_ref.dtype)


def _backward(hidden, weight, targets, lse, ent, g_logp, g_ent, temperature, block_tokens,
              block_vocab, interpret):
  num_tokens, dim = hidden.shape
  vocab = weight.shape[1]
  bn, bv = block_tokens, block_vocab
  rows = [x[:, None] for x in (targets, lse, ent, g_logp, g_ent)]  # each [N, 1]
  params = pltpu.CompilerParams(dimension_semantics=("parallel", "arbitrary"))

  # d hidden: grid (token block i, vocab block j).
  row_spec = pl.BlockSpec((bn, 1), lambda i, j: (i, 0))
  dh = pl.pallas_call(
      functools.partial(_dh_kernel, temperature=temperature, vocab=vocab, block_vocab=bv),
      grid=(pl.cdiv(num_tokens, bn), pl.cdiv(vocab, bv)),
      in_specs=[pl.BlockSpec((bn, dim), lambda i, j: (i, 0)),
                pl.BlockSpec((dim, bv), lambda i, j: (0, j))] + [row_spec] * 5,
      out_specs=pl.BlockSpec((bn, dim), lambda i, j: (i, 0)),
      out_shape=jax.ShapeDtypeStruct(hidden.shape, hidden.dtype),
      scratch_shapes=[pltpu.VMEM((bn, dim), jnp.float32)],
      compiler_params=params,
      interpret=interpret,
      name="logprob_bwd_dhidden",
  )(hidden, weight, *rows)

  # d weight: grid (vocab block j, token block i).
  row_spec = pl.BlockSpec((bn, 1), lambda j, i: (i, 0))
  dw = pl.pallas_call(
      functools.partial(_dw_kernel, temperature=temperature, vocab=vocab, num_tokens=num_tokens,
                        block_tokens=bn, block_vocab=bv),
      grid=(pl.cdiv(vocab, bv), pl.cdiv(num_tokens, bn)),
      in_specs=[pl.BlockSpec((bn, dim), lambda j, i: (i, 0)),
                pl.BlockSpec((dim, bv), lambda j, i: (0, j))] + [row_spec] * 5,
      out_specs=pl.BlockSpec((dim, bv), lambda j, i: (0, j)),
      out_shape=jax.ShapeDtypeStruct(weight.shape, weight.dtype),
      scratch_shapes=[pltpu.VMEM((dim, bv), jnp.float32)],
      compiler_params=params,
      interpret=interpret,
      name="logprob_bwd_dweight",
  )(hidden, weight, *rows)
  return dh, dw


# ---------------------------------------------------------------------------------- custom vjp


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _logprob(hidden, weight, targets, temperature, block_tokens, block_vocab, interpret):
  logp, _, ent = _forward(hidden, weight, targets, temperature, block_tokens, block_vocab,
                          interpret)
  return logp, ent


def _logprob_fwd(hidden, weight, targets, temperature, block_tokens, block_vocab, interpret):
  logp, lse, ent = _forward(hidden, weight, targets, temperature, block_tokens, block_vocab,
                            interpret)
  return (logp, ent), (hidden, weight, targets, lse, ent)


def _logprob_bwd(temperature, block_tokens, block_vocab, interpret, residuals, cotangents):
  hidden, weight, targets, lse, ent = residuals
  g_logp, g_ent = (g.astype(jnp.float32) for g in cotangents)
  dh, dw = _backward(hidden, weight, targets, lse, ent, g_logp, g_ent, temperature, block_tokens,
                     block_vocab, interpret)
  return dh, dw, None


_logprob.defvjp(_logprob_fwd, _logprob_bwd)


def logprob_pallas_tpu(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    temperature: float = 1.0,
    *,
    block_tokens: int = DEFAULT_BLOCK_TOKENS,
    block_vocab: int = DEFAULT_BLOCK_VOCAB,
    interpret: bool | pltpu.InterpretParams = False,
) -> tuple[Float[Array, "N"], Float[Array, "N"]]:
  """(logp [N], entropy [N]) in float32 via Pallas TPU kernels; ``interpret`` runs them on CPU.

  ``interpret=True`` uses the generic Pallas interpreter (fast); ``pltpu.InterpretParams()`` the
  TPU-faithful one (simulated VMEM, DMA and grid semantics; several times slower).

  ``block_tokens`` should be a multiple of 8 and ``block_vocab`` of 128 on TPU (sublane / lane
  tiling); neither needs to divide N or V. The backward casts ``d logits`` to the input dtype before
  the MXU products (as the Pallas flash-attention backward does), so bfloat16 gradients carry one
  extra bfloat16 rounding compared with ``xla.py``.
  """
  if block_tokens < 1 or block_vocab < 1:
    raise ValueError(f"block_tokens and block_vocab must be >= 1, got {block_tokens}, {block_vocab}")
  num_tokens, vocab = hidden.shape[0], weight.shape[1]
  # A block larger than the array is legal only as the full dimension.
  bn = num_tokens if block_tokens >= num_tokens else int(block_tokens)
  bv = vocab if block_vocab >= vocab else int(block_vocab)
  return _logprob(hidden, weight, targets.astype(jnp.int32), float(temperature), bn, bv, interpret)
