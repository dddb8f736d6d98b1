"""Loss aggregation modes: how per-token losses [N, T] become one scalar.

Every mode divides by counts of the *whole* batch (``global_tokens``, ``global_seqs``), passed in by
the trainer, never by counts of the micro-batch at hand. The aggregate is then a plain sum over
sequences of per-sequence terms, so for a batch split into k micro-batches (or k devices)

    sum_k aggregate(loss_k, mask_k, global counts) == aggregate(loss, mask, global counts)

exactly, and so are the gradients. Dividing by local counts instead (what TRL did before trl#3021 and
what verl#3741 reports for its token-mean under gradient accumulation) weights tokens of short
micro-batches more than tokens of long ones.

Modes (docs/papers.md 2.0; verl ``agg_loss``), l = per-token loss, m = mask:

* ``token-mean``               sum_{i,t} l m / global_tokens                      (DAPO eq. 8)
* ``seq-mean-token-mean``      sum_i [sum_t l m / sum_t m] / global_seqs          (GRPO eq. 3)
* ``seq-mean-token-sum``       sum_{i,t} l m / global_seqs
* ``seq-mean-token-sum-norm``  sum_{i,t} l m / (global_seqs * norm_constant)      (Dr. GRPO eq. 4)

Deviation: verl's ``seq-mean-token-sum-norm`` divides by the constant only (no ``1 / global_seqs``);
we follow Dr. GRPO's reference code (oat), which averages over sequences too. The two differ by a
constant factor (a learning-rate rescale), not in direction.

``global_seqs`` counts sequences with at least one valid token, so all-padding rows added to fill a
micro-batch change nothing; ``global_normalizers`` computes both counts from the full-batch mask.
"""
from __future__ import annotations

from typing import Callable

import jax.numpy as jnp
from jaxtyping import Array, Float

AggFn = Callable[..., Float[Array, ""]]

AGGREGATIONS: dict[str, AggFn] = {}


def register_aggregation(name: str) -> Callable[[AggFn], AggFn]:
  """Adds ``fn(loss, mask, *, global_tokens, global_seqs, norm_constant)`` to ``AGGREGATIONS``."""

  def wrap(fn: AggFn) -> AggFn:
    if name in AGGREGATIONS:
      raise ValueError(f"aggregation mode {name!r} is already registered")
    AGGREGATIONS[name] = fn
    return fn

  return wrap


def global_normalizers(mask: Float[Array, "N T"]) -> dict[str, Float[Array, ""]]:
  """Counts of the full batch that make aggregation independent of micro-batching.

  Call this on the mask of the whole (global) batch before splitting it; under ``jit`` with a
  sharded mask the sums are already global. Returns ``{"global_tokens", "global_seqs"}`` (float32).
  """
  mask = jnp.asarray(mask, jnp.float32)
  global_tokens = jnp.sum(mask)
  global_seqs = jnp.sum(jnp.any(mask > 0, axis=-1).astype(jnp.float32))
  return {"global_tokens": global_tokens, "global_seqs": global_seqs}


def _safe_div(x, d):
  # An empty batch (count 0) gives 0, not NaN; the numerator is then 0 as well.
  return x / jnp.maximum(d, 1e-8)


@register_aggregation("token-mean")
def token_mean(loss, mask, *, global_tokens, global_seqs, norm_constant):
  """DAPO (arXiv 2503.14476) eq. 8: every token of the batch weighs the same."""
  del global_seqs, norm_constant
  return _safe_div(jnp.sum(loss * mask), global_tokens)


@register_aggregation("seq-mean-token-mean")
def seq_mean_token_mean(loss, mask, *, global_tokens, global_seqs, norm_constant):
  """GRPO (DeepSeekMath, arXiv 2402.03300) eq. 3: (1/G) sum_i (1/|y_i|) sum_t.

  The per-sequence length |y_i| is local (a sequence is never split across micro-batches).
  """
  del global_tokens, norm_constant
  seq_len = jnp.sum(mask, axis=-1)  # [N]
  seq_loss = _safe_div(jnp.sum(loss * mask, axis=-1), seq_len)  # [N]
  return _safe_div(jnp.sum(seq_loss), global_seqs)


@register_aggregation("seq-mean-token-sum")
def seq_mean_token_sum(loss, mask, *, global_tokens, global_seqs, norm_constant):
  """Sum over tokens, mean over sequences (verl ``seq-mean-token-sum``)."""
  del global_tokens, norm_constant
  return _safe_div(jnp.sum(loss * mask), global_seqs)


@register_aggregation("seq-mean-token-sum-norm")
def seq_mean_token_sum_norm(loss, mask, *, global_tokens, global_seqs, norm_constant):
  """Dr. GRPO (arXiv 2503.20783) eq. 4: 1/|y_i| replaced by one constant (the max response length).

  See the module docstring for the 1/global_seqs deviation from verl.
  """
  del global_tokens
  return _safe_div(jnp.sum(loss * mask), global_seqs * norm_constant)


def aggregate(
    loss: Float[Array, "N T"],
    mask: Float[Array, "N T"],
    agg_mode: str = "token-mean",
    *,
    global_tokens=None,
    global_seqs=None,
    norm_constant=None,
) -> Float[Array, ""]:
  """Reduces per-token ``loss`` with mode ``agg_mode`` (see module docstring).

  ``global_tokens`` / ``global_seqs`` default to the counts of this call's ``mask`` (correct only
  when the call sees the whole batch); ``norm_constant`` (Dr. GRPO's constant) defaults to ``T``.
  """
  if agg_mode not in AGGREGATIONS:
    raise ValueError(f"unknown agg_mode {agg_mode!r}; choose one of {sorted(AGGREGATIONS)}")
  if loss.shape != mask.shape:
    raise ValueError(f"loss {loss.shape} and mask {mask.shape} must have the same [N, T] shape")
  # Sum in at least float32: bf16 sums over thousands of tokens lose the low bits.
  loss = loss.astype(jnp.promote_types(loss.dtype, jnp.float32))
  mask = mask.astype(loss.dtype)
  local = global_normalizers(mask)
  if global_tokens is None:
    global_tokens = local["global_tokens"]
  if global_seqs is None:
    global_seqs = local["global_seqs"]
  if norm_constant is None:
    norm_constant = loss.shape[-1]
  return AGGREGATIONS[agg_mode](
      loss, mask, global_tokens=global_tokens, global_seqs=global_seqs, norm_constant=norm_constant
  )
