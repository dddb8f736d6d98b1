"""Materialised log-prob and entropy of the sampled token: the oracle for the fused kernels.

For hidden states ``h`` [N, D], an unembedding ``W`` [D, V], sampled tokens ``t`` [N] and a sampling
temperature ``tau``, the policy-gradient losses of the RLVR papers (docs/papers.md 2.1: GRPO, DAPO,
Dr. GRPO, CISPO, the KL and entropy regularisers) need, per token,

    z      = (h @ W) / tau                       # [N, V] tempered logits
    logp   = z[t] - logsumexp(z)                 # log pi(t | context)
    H      = -sum_v p_v log p_v,  p = softmax(z) # token entropy (H_{i,t} in docs/papers.md 2.0)

This module computes exactly that with the full [N, V] logits in memory and lets ``jax.grad`` derive
the gradients: it is the readable definition that ``xla.py`` and the Pallas kernels are tested
against, not something to train with (16k tokens x 151,936 vocab is 10 GB of float32 logits).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, Int


def logprob_reference(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    temperature: float = 1.0,
) -> tuple[Float[Array, "N"], Float[Array, "N"]]:
  """Log-prob of ``targets`` and entropy under softmax((hidden @ weight) / temperature).

  Products accumulate in float32 whatever the input dtype. A target outside [0, V) yields NaN
  (rather than silently reading another token's logit), which matches the fused implementations.

  Returns:
    (logp [N], entropy [N]), both float32.
  """
  vocab = weight.shape[1]
  logits = jnp.dot(hidden, weight, preferred_element_type=jnp.float32) / temperature  # [N, V]
  logz = jax.nn.logsumexp(logits, axis=-1)  # [N]
  log_probs = logits - logz[:, None]  # [N, V]
  valid = (targets >= 0) & (targets < vocab)  # [N]
  safe_targets = jnp.where(valid, targets, 0)
  picked = jnp.take_along_axis(log_probs, safe_targets[:, None], axis=-1)[:, 0]  # [N]
  logp = jnp.where(valid, picked, jnp.nan)
  entropy = -jnp.sum(jnp.exp(log_probs) * log_probs, axis=-1)  # [N]
  return logp, entropy
