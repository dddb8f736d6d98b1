"""Per-token policy statistics that label-free rewards read (computed on device by the trainer).

``rlvr_jax.rewards`` is numpy-only; the trainer computes these [N, T] arrays next to the log-probs,
copies them to host and passes them as ``token_stats`` to ``compute_rewards``.

Self-certainty (Intuitor, arXiv 2505.19590, eq. 4; docs/papers.md 2.2) of position t:

    sc_t = KL(U || pi(. | x, y_<t)) = logsumexp(z_t) - mean_v z_{t,v} - log V,

z_t the (temperature-scaled) logits. It is >= 0, 0 for a uniform distribution, large when peaked.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def self_certainty_from_logits(
    logits: Float[Array, "... V"], temperature: float = 1.0
) -> Float[Array, "..."]:
  """sc = logsumexp(z) - mean(z) - log V with z = logits / temperature (reference; needs [.., V])."""
  z = logits.astype(jnp.float32) / temperature
  vocab = z.shape[-1]
  return jax.nn.logsumexp(z, axis=-1) - jnp.mean(z, axis=-1) - jnp.log(vocab)


def self_certainty_from_logp(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    logp: Float[Array, "N"],
    temperature: float = 1.0,
) -> Float[Array, "N"]:
  """Self-certainty without the [N, V] logits, from the log-prob kernel's output.

  logsumexp(z) = z_y - logp(y), and mean_v z_v = h . mean_v W[:, v], so only the target column and
  the column mean of W are needed: O(N D) on top of ``rlvr_jax.kernels.logprob``.
  """
  h = hidden.astype(jnp.float32)
  w = weight.astype(jnp.float32)
  z_target = jnp.einsum("nd,dn->n", h, jnp.take(w, targets, axis=1)) / temperature  # [N]
  z_mean = h @ jnp.mean(w, axis=1) / temperature  # [N]
  return z_target - logp - z_mean - jnp.log(w.shape[1])


def max_logprob_from_logp(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    logp: Float[Array, "N"],
    temperature: float = 1.0,
    block_vocab: int = 2048,
) -> Float[Array, "N"]:
  """log max_v pi(v | context) per position without the [N, V] logits: the running max of the
  scaled logits over vocab tiles of ``block_vocab`` columns (one [N, block_vocab] tile live), minus
  logsumexp(z) = z_target - logp. For losses that weight tokens by the old policy's confidence."""
  from rlvr_jax.kernels.logprob import xla as tiles  # pylint: disable=import-outside-toplevel
  h = hidden.astype(jnp.float32)
  w = weight.astype(jnp.float32)

  def body(start, size, running):
    z = h @ jax.lax.dynamic_slice_in_dim(w, start, size, axis=1) / temperature  # [N, size]
    return jnp.maximum(running, jnp.max(z, axis=-1))

  z_max = tiles.foreach_tile(w.shape[1], min(block_vocab, w.shape[1]), body,
                             jnp.full(h.shape[:1], -jnp.inf, jnp.float32))
  z_target = jnp.einsum("nd,dn->n", h, jnp.take(w, targets, axis=1)) / temperature  # [N]
  return jnp.minimum(z_max - (z_target - logp), 0.0)


def minp_logmass_from_logp(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    logp: Float[Array, "N"],
    max_logp: Float[Array, "N"],
    kappa: float,
    temperature: float = 1.0,
    block_vocab: int = 2048,
) -> Float[Array, "N"]:
  """log of the probability mass a min-p filter keeps, log sum_v p_v 1[p_v >= kappa max_u p_u],
  per position, without the [N, V] logits (one [N, block_vocab] tile live; ``max_logp`` from
  `max_logprob_from_logp`). With it, the filtered and renormalised distribution of Lp-Reg's proxy
  has log pi_proxy(y) = log p_y - logmass for a kept token y."""
  from rlvr_jax.kernels.logprob import xla as tiles  # pylint: disable=import-outside-toplevel
  h = hidden.astype(jnp.float32)
  w = weight.astype(jnp.float32)
  z_target = jnp.einsum("nd,dn->n", h, jnp.take(w, targets, axis=1)) / temperature  # [N]
  lse = z_target - logp  # logsumexp of the scaled logits
  cut = max_logp + jnp.log(jnp.float32(kappa))  # log-prob threshold

  def body(start, size, running):
    z = h @ jax.lax.dynamic_slice_in_dim(w, start, size, axis=1) / temperature  # [N, size]
    lp = z - lse[:, None]
    return running + jnp.sum(jnp.where(lp >= cut[:, None], jnp.exp(lp), 0.0), axis=-1)

  mass = tiles.foreach_tile(w.shape[1], min(block_vocab, w.shape[1]), body,
                            jnp.zeros(h.shape[:1], jnp.float32))
  return jnp.minimum(jnp.log(jnp.maximum(mass, 1e-30)), 0.0)
