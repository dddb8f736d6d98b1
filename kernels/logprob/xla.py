"""Tiled log-prob and entropy in plain JAX: never holds more than one [block_tokens, block_vocab] tile.

The forward pass walks token blocks (outer) and vocab blocks (inner) and keeps, per token, an online
log-sum-exp (running max ``m``, ``s = sum exp(z - m)``) plus ``a = sum exp(z - m) * (z - m)``, so that

    lse = m + log s,      H = lse - E_p[z] = log s - a / s.

Accumulating ``z - m`` rather than ``z`` keeps the entropy free of the cancellation ``lse - E_p[z]``
suffers when logits are large. The backward pass (a ``jax.custom_vjp``) recomputes each logits tile
from the saved ``lse`` and ``H`` (residuals O(N) beyond the inputs) and applies

    d logp / d z_v = 1[v = t] - p_v
    d H    / d z_v = -p_v (log p_v + H)

so with cotangents ``g_logp`` and ``g_H`` per token,

    dz = g_logp * 1[v = t] - p * (g_logp + g_H * (log p + H)),    d(hW) = dz / tau.

The backward walks vocab blocks (outer) and token blocks (inner): each ``dW`` column block is
accumulated in float32 over all tokens and written once in the weight's dtype, so no float32 copy of
``dW`` [D, V] is ever live; ``dh`` [N, D] is accumulated in float32. Same idea as Liger's fused linear
cross entropy and Apple's Cut Cross-Entropy (Wijmans et al., 2024), extended to the entropy output
that RL losses need. Tile sizes that do not divide N or V are handled by one extra, statically
shaped step for the remainder (no padding copy of the inputs).
"""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

import jax
import jax.numpy as jnp
from jax import lax
from jaxtyping import Array, Float, Int

Carry = TypeVar("Carry")

# (block_tokens, block_vocab) per backend. CPU: chosen on the 2-core CPU (one [1024, 2048] float32
# tile is 8 MB). GPU/TPU: untuned guesses, larger so that each loop step is a big matmul rather than
# loop overhead ([4096, 8192] float32 is 128 MB, ~1% of what it replaces at N=16k, V=152k).
DEFAULT_TILES = {"cpu": (1024, 2048), "gpu": (4096, 8192), "tpu": (4096, 8192)}


def default_tiles(backend: str | None = None) -> tuple[int, int]:
  backend = backend or jax.default_backend()
  return DEFAULT_TILES.get(backend, DEFAULT_TILES["gpu"])

_NEG_BIG = float(jnp.finfo(jnp.float32).min)  # finite "-inf": keeps (m_old - m_new) * s free of NaN


def foreach_tile(total: int, tile: int, body: Callable[[int, int, Carry], Carry],
                 carry: Carry) -> Carry:
  """Calls ``body(start, size, carry)`` over [0, total) in tiles; ``size`` is always static.

  Full tiles run in a ``fori_loop`` with a traced ``start``; a final partial tile (when ``tile`` does
  not divide ``total``) runs once more with its own static size.
  """
  num_full, remainder = divmod(total, tile)
  if num_full == 1:
    carry = body(0, tile, carry)
  elif num_full > 1:
    carry = lax.fori_loop(0, num_full, lambda k, c: body(k * tile, tile, c), carry)
  if remainder:
    carry = body(num_full * tile, remainder, carry)
  return carry


def _logits_tile(h_blk, w_blk, temperature):
  # float32 accumulation whatever the input dtype (bf16 products summed in f32).
  return jnp.dot(h_blk, w_blk, preferred_element_type=jnp.float32) / temperature


def _forward_arrays(hidden, weight, targets, temperature, block_tokens, block_vocab):
  """Returns (logp, lse, entropy), each float32 [N]."""
  num_tokens = hidden.shape[0]
  vocab = weight.shape[1]

  def token_block(r0, n, outputs):
    h_blk = lax.dynamic_slice_in_dim(hidden, r0, n, 0)  # [n, D]
    t_blk = lax.dynamic_slice_in_dim(targets, r0, n, 0)  # [n]

    def vocab_block(c0, v, stats):
      m, s, a, picked = stats  # each [n]
      w_blk = lax.dynamic_slice_in_dim(weight, c0, v, 1)  # [D, v]
      z = _logits_tile(h_blk, w_blk, temperature)  # [n, v]
      m_new = jnp.maximum(m, jnp.max(z, axis=-1))  # [n]
      shifted = z - m_new[:, None]  # [n, v]
      e = jnp.exp(shifted)
      scale = jnp.exp(m - m_new)
      s_new = s * scale + jnp.sum(e, axis=-1)
      # sum e^{z-m}(z-m) re-centred on the new max: e^{z-m_new}(z-m_new) = scale*e^{z-m}((z-m)+(m-m_new)).
      a_new = scale * (a + (m - m_new) * s) + jnp.sum(e * shifted, axis=-1)
      hit = (c0 + lax.broadcasted_iota(jnp.int32, (n, v), 1)) == t_blk[:, None]  # [n, v]
      picked = picked + jnp.sum(jnp.where(hit, z, 0.0), axis=-1)
      return m_new, s_new, a_new, picked

    zeros = jnp.zeros((n,), jnp.float32)
    m, s, a, picked = foreach_tile(
        vocab, block_vocab, vocab_block, (jnp.full((n,), _NEG_BIG, jnp.float32), zeros, zeros, zeros))
    log_s = jnp.log(s)
    lse = m + log_s
    entropy = log_s - a / s
    valid = (t_blk >= 0) & (t_blk < vocab)
    logp = jnp.where(valid, picked - lse, jnp.nan)
    return tuple(lax.dynamic_update_slice_in_dim(out, val, r0, 0)
                 for out, val in zip(outputs, (logp, lse, entropy)))

  empty = jnp.zeros((num_tokens,), jnp.float32)
  return foreach_tile(num_tokens, block_tokens, token_block, (empty, empty, empty))


def grad_operand_dtype(hidden_dtype, weight_dtype, low_precision: bool = True):
  """dtype of the [n, v] logit-gradient tile fed to the two backward matmuls.

  With ``low_precision`` and both inputs in one 16-bit dtype (bf16 / f16), the tile is rounded to that
  dtype, so both gradient products are bf16 x bf16 -> f32 matmuls (tensor cores at full rate) instead of
  f32 x bf16, which GPUs run as f32 matmuls at a fraction of the rate. That is what mixed-precision
  training does for every other layer; the rounding (2**-8 relative per entry, before a float32
  accumulation) is below the bf16 rounding of the returned gradients themselves. Otherwise float32.
  """
  hidden_dtype, weight_dtype = jnp.dtype(hidden_dtype), jnp.dtype(weight_dtype)
  if low_precision and hidden_dtype == weight_dtype and hidden_dtype.itemsize < 4:
    return hidden_dtype
  return jnp.dtype(jnp.float32)


def _backward_arrays(hidden, weight, targets, lse, entropy, g_logp, g_entropy, temperature,
                     block_tokens, block_vocab, low_precision_grads: bool = True):
  """Returns (d hidden, d weight) in the inputs' dtypes (``low_precision_grads``: `grad_operand_dtype`)."""
  num_tokens, dim = hidden.shape
  grad_dtype = grad_operand_dtype(hidden.dtype, weight.dtype, low_precision_grads)
  vocab = weight.shape[1]

  def vocab_block(c0, v, grads):
    dh, dw = grads  # [N, D] f32, [D, V] weight dtype
    w_blk = lax.dynamic_slice_in_dim(weight, c0, v, 1)  # [D, v]

    def token_block(r0, n, inner):
      dh, dw_blk = inner  # [N, D] f32, [D, v] f32
      rows = lambda x: lax.dynamic_slice_in_dim(x, r0, n, 0)
      h_blk = rows(hidden)  # [n, D]
      t_blk, lse_blk, ent_blk, gl_blk, ge_blk = map(rows, (targets, lse, entropy, g_logp, g_entropy))
      z = _logits_tile(h_blk, w_blk, temperature)  # [n, v]
      log_p = z - lse_blk[:, None]  # [n, v]
      p = jnp.exp(log_p)
      hit = (c0 + lax.broadcasted_iota(jnp.int32, (n, v), 1)) == t_blk[:, None]
      dz = jnp.where(hit, gl_blk[:, None], 0.0) - p * (
          gl_blk[:, None] + ge_blk[:, None] * (log_p + ent_blk[:, None]))
      dlogits = (dz / temperature).astype(grad_dtype)  # [n, v]
      # Products accumulate in f32; their operands are the inputs' dtype (see `grad_operand_dtype`).
      dh_blk = lax.dot_general(dlogits, w_blk, (((1,), (1,)), ((), ())),
                               preferred_element_type=jnp.float32)  # [n, D]
      dh = lax.dynamic_update_slice_in_dim(dh, rows(dh) + dh_blk, r0, 0)
      dw_blk = dw_blk + lax.dot_general(h_blk, dlogits, (((0,), (0,)), ((), ())),
                                        preferred_element_type=jnp.float32)  # [D, v]
      return dh, dw_blk

    dh, dw_blk = foreach_tile(num_tokens, block_tokens, token_block,
                              (dh, jnp.zeros((dim, v), jnp.float32)))
    dw = lax.dynamic_update_slice_in_dim(dw, dw_blk.astype(dw.dtype), c0, 1)
    return dh, dw

  dh, dw = foreach_tile(vocab, block_vocab, vocab_block,
                        (jnp.zeros((num_tokens, dim), jnp.float32), jnp.zeros_like(weight)))
  return dh.astype(hidden.dtype), dw


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def _logprob(hidden, weight, targets, temperature, block_tokens, block_vocab, low_precision_grads):
  logp, _, entropy = _forward_arrays(hidden, weight, targets, temperature, block_tokens, block_vocab)
  return logp, entropy


def _logprob_fwd(hidden, weight, targets, temperature, block_tokens, block_vocab,
                 low_precision_grads):
  logp, lse, entropy = _forward_arrays(hidden, weight, targets, temperature, block_tokens,
                                       block_vocab)
  return (logp, entropy), (hidden, weight, targets, lse, entropy)


def _logprob_bwd(temperature, block_tokens, block_vocab, low_precision_grads, residuals, cotangents):
  hidden, weight, targets, lse, entropy = residuals
  g_logp, g_entropy = cotangents
  dh, dw = _backward_arrays(hidden, weight, targets, lse, entropy,
                            g_logp.astype(jnp.float32), g_entropy.astype(jnp.float32),
                            temperature, block_tokens, block_vocab, low_precision_grads)
  return dh, dw, None


_logprob.defvjp(_logprob_fwd, _logprob_bwd)


def logprob_xla(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    temperature: float = 1.0,
    *,
    block_tokens: int | None = None,
    block_vocab: int | None = None,
    low_precision_grads: bool = True,
) -> tuple[Float[Array, "N"], Float[Array, "N"]]:
  """Tiled (logp [N], entropy [N]) in float32; see the module docstring for the math.

  Peak temporary memory is O(block_tokens * block_vocab + N * D) instead of O(N * V). Both outputs
  are differentiable in ``hidden`` and ``weight`` (custom VJP that recomputes the logits tiles).
  Tile sizes default to ``default_tiles()`` for the current backend. ``low_precision_grads``: with
  bf16 / f16 inputs, the backward's logit-gradient tile is rounded to that dtype before its two
  matmuls (`grad_operand_dtype`); False keeps it float32 (slower on GPUs, for comparison).
  """
  default_tokens, default_vocab = default_tiles()
  block_tokens = default_tokens if block_tokens is None else block_tokens
  block_vocab = default_vocab if block_vocab is None else block_vocab
  if block_tokens < 1 or block_vocab < 1:
    raise ValueError(f"block_tokens and block_vocab must be >= 1, got {block_tokens}, {block_vocab}")
  return _logprob(hidden, weight, targets.astype(jnp.int32), float(temperature),
                  int(block_tokens), int(block_vocab), bool(low_precision_grads))
