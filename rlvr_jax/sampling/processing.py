"""Turning one step of logits into sampled tokens and their log-probs (pure jnp, jittable).

The sampling distribution is built in the order transformers' ``generate`` applies its warpers:
temperature, then top-k, then top-p (nucleus, Holtzman et al. 2020) over what top-k kept, then min-p
(Nguyen et al. 2024: drop tokens whose probability is below ``min_p`` times the largest one). The
log-prob returned for a sampled token is its log-probability under that final, renormalised
distribution: the quantity an importance-sampling correction between sampler and learner needs.

Temperature 0 means greedy: the token is the argmax of the raw logits (first index on ties, as
``torch.argmax``), and since a point mass has log-prob 0 everywhere, the log-prob reported is the one
under the unfiltered model distribution at temperature 1 instead (document this at call sites).

The temperature is normally a Python float, baked into the compiled program. A per-position schedule
(`rlvr_jax.sampling.sampler.position_temperature`) passes a traced float32 scalar instead; it must be
> 0 (greedy is decided at trace time, so a traced temperature always samples) and the returned
log-prob is then the one under ``softmax(filtered(logits / temperature))`` at that step's value.

Randomness is per row: row ``r`` at decode step ``t`` draws from ``fold_in(fold_in(rng, t), r)``.
A row's sample therefore depends only on (rng, step, row index, its logits), never on the batch size
or on how the batch is sharded: padding a batch with dummy rows, or repeating a prompt G times
instead of fanning its cache out, gives the same tokens.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jaxtyping import Array, Float, Int

# Finite stand-in for -inf: exp() underflows to exactly 0, and arithmetic on it never makes NaN.
NEG_INF = -1e30


def row_keys(rng: jax.Array, step: Int[Array, ""], num_rows: int,
             row_offset: Int[Array, ""] | None = None) -> jax.Array:
  """One PRNG key per row for decode step ``step``: ``fold_in(fold_in(rng, step), row)``.

  ``row_offset`` (a traced uint32 scalar) shifts the row numbers: a chunk of a larger rollout whose
  first row is global row k passes k, so its rows draw exactly the keys they would draw in one call.
  None keeps the plain ``arange`` (the unchunked program).
  """
  step_key = jax.random.fold_in(rng, step)
  rows = jnp.arange(num_rows, dtype=jnp.uint32)  # [B]
  if row_offset is not None:
    rows = rows + jnp.asarray(row_offset, jnp.uint32)
  return jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, rows)


def candidate_logits(logits: Float[Array, "B V"], *, temperature: float | Float[Array, ""], top_k: int,
                     top_p: float, min_p: float) -> tuple[Float[Array, "B C"], Int[Array, "B C"] | None]:
  """The filtered, temperature-scaled logits over C candidate tokens per row.

  ``temperature`` is a Python float (> 0) or a traced scalar (> 0, e.g. a scheduled per-step value);
  the filters act on the scaled logits either way.

  Returns ``(values, ids)``: ``values[b, c]`` is the scaled logit of token ``ids[b, c]``, or
  ``NEG_INF`` where the token was filtered out. When nothing needs sorting (no top-k, no top-p) the
  candidates are the whole vocabulary in order and ``ids`` is None (saves a gather). With top-k the
  work after ``lax.top_k`` runs over k candidates only, which is what makes top-k cheap at large V.
  """
  v = logits.shape[-1]
  if _is_static(temperature):
    scaled = logits.astype(jnp.float32) / jnp.float32(temperature)  # [B, V]
  else:  # traced (scheduled) temperature: a runtime scalar divisor
    scaled = logits.astype(jnp.float32) / jnp.asarray(temperature, jnp.float32)  # [B, V]
  ids = None
  if 0 < top_k < v:
    scaled, ids = lax.top_k(scaled, top_k)  # [B, k], sorted descending
  elif top_p < 1.0:
    scaled, ids = lax.top_k(scaled, v)  # [B, V]: a full descending sort, needed for the nucleus
  if top_p < 1.0:
    probs = jax.nn.softmax(scaled, axis=-1)  # [B, C] renormalised over the top-k survivors
    mass_before = jnp.cumsum(probs, axis=-1) - probs  # probability of strictly better candidates
    # Keep the shortest prefix whose mass reaches top_p; the first candidate always survives.
    keep = mass_before < jnp.float32(top_p)
    keep = keep.at[:, 0].set(True)
    scaled = jnp.where(keep, scaled, NEG_INF)
  if min_p > 0.0:
    # p_i >= min_p * p_max  <=>  logit_i >= logit_max + log(min_p): no softmax needed.
    best = jnp.max(scaled, axis=-1, keepdims=True)  # [B, 1]
    scaled = jnp.where(scaled >= best + jnp.log(jnp.float32(min_p)), scaled, NEG_INF)
  return scaled, ids


def gumbel_argmax(values: Float[Array, "B C"], keys: jax.Array) -> Int[Array, "B"]:
  """An exact draw from ``softmax(values)`` per row with about 2 * sqrt(C) Gumbel variates, not C.

  Two-level Gumbel-max: split the C candidates into blocks of size m ~ sqrt(C); pick a block with
  Gumbel-max over the blocks' log-sum-exps (block b wins with probability Z_b / Z), then a candidate
  inside it with Gumbel-max over its values (probability p_i / Z_b): the product is exactly p_i / Z.
  Random numbers (threefry) dominate the cost of a draw at large C on CPU; this cuts them ~sqrt(C)/2
  fold. Filtered candidates (``NEG_INF``) never win, nor does an all-filtered padding block.
  """
  b, c = values.shape
  noise = lambda n: jax.vmap(lambda k: jax.random.gumbel(k, (n,), jnp.float32))(keys)  # [B, n]
  if c <= 64:
    return jnp.argmax(values + noise(c), axis=-1)
  m = 1 << (int(np.ceil(np.log2(c))) + 1) // 2  # block size, a power of two near sqrt(C)
  nb = -(-c // m)
  blocks = jnp.pad(values, ((0, 0), (0, nb * m - c)), constant_values=NEG_INF).reshape(b, nb, m)
  g = noise(nb + m)  # [B, nb + m]: one stream per row, split between the two levels
  block = jnp.argmax(jax.nn.logsumexp(blocks, axis=-1) + g[:, :nb], axis=-1)  # [B]
  inner = jnp.take_along_axis(blocks, block[:, None, None], axis=1)[:, 0]  # [B, m]
  return block * m + jnp.argmax(inner + g[:, nb:], axis=-1)


def sample_tokens(logits: Float[Array, "B V"], keys: jax.Array, *, temperature: float | Float[Array, ""],
                  top_k: int, top_p: float, min_p: float) -> tuple[Int[Array, "B"], Float[Array, "B"]]:
  """Draws one token per row; returns ``(tokens int32 [B], logprobs float32 [B])``.

  ``keys`` holds one PRNG key per row (see `row_keys`). The draw is exact sampling from
  ``softmax(values)`` over the candidates (`gumbel_argmax`); filtered candidates carry ``NEG_INF``
  and can never win because a Gumbel variate is bounded far below 1e30. ``temperature`` is a Python
  float (0 = greedy) or a traced scalar, which must be > 0: it always samples, and the log-prob is
  under the distribution at that temperature (after the filters).
  """
  logits = logits.astype(jnp.float32)
  if _is_static(temperature) and temperature == 0.0:
    tokens = jnp.argmax(logits, axis=-1).astype(jnp.int32)  # [B]
    logp = jax.nn.log_softmax(logits, axis=-1)  # [B, V]
    return tokens, jnp.take_along_axis(logp, tokens[:, None], axis=-1)[:, 0]
  values, ids = candidate_logits(logits, temperature=temperature, top_k=top_k, top_p=top_p, min_p=min_p)
  pick = gumbel_argmax(values, keys)  # [B]
  logp = jnp.take_along_axis(values, pick[:, None], axis=-1)[:, 0] - jax.nn.logsumexp(values, axis=-1)
  tokens = pick if ids is None else jnp.take_along_axis(ids, pick[:, None], axis=-1)[:, 0]
  return tokens.astype(jnp.int32), logp


def _is_static(temperature) -> bool:
  """True for a Python / numpy value (a compile-time constant), False for a jax array or tracer."""
  return not isinstance(temperature, jax.Array)
