"""KL regularisers: per-token estimators, KL-in-reward, and the forward-KL / JS rehearsal term.

Reverse KL to a reference, KL(pi_theta || pi_ref), is estimated per token from samples of the
*policy* (docs/papers.md 2.0; Schulman, "Approximating KL divergence", 2020; verl
``kl_penalty``), with log r = log pi_ref - log pi_theta:

* ``k1``  logp - ref_logp = -log r                    unbiased, high variance, can be negative
* ``k2``  0.5 (log r)^2                               biased, low variance; its gradient is the
                                                       unbiased reverse-KL gradient
* ``k3``  r - log r - 1  ("low_var_kl")               unbiased, >= 0; clamped like verl: log r to
                                                       [-20, 20], the value to [-10, 10]
* ``k3+`` value of k3, gradient of k2 (straight-through, verl ``low_var_kl+``)

The forward direction used by DPH-RL (arXiv 2509.07430, sec. 3) is KL(pi_0 || pi_theta), estimated
from rehearsal samples drawn *from the initial policy* pi_0 (no online reference model), with
u = pi_theta / pi_0 on those samples:

* ``k1``  -log u = init_logp - logp              gradient -grad log pi_theta (likelihood on rehearsal)
* ``k3``  u - 1 - log u                          unbiased (E_{pi_0}[u] = 1), >= 0, same expected gradient
* ``js``  f(u) with the Jensen-Shannon generator f(u) = 0.5 [u log u - (1 + u) log((1 + u) / 2)],
          D_f(pi_theta || pi_0) = E_{pi_0}[f(u)]  (docs/papers.md 2.4, marked [recall];
          per-token ratios stand in for sequence ratios, a deviation shared by every token-level
          estimator here)

RAPO (configs/rapo.py, [inferred from abstract]) estimates the forward KL to a reward-tilted
reference on the *policy's* samples with truncated importance weights: ``reward_tilt`` and
``rapo_forward_kl`` (the estimator, its expectation and gradient are derived there).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

KlFn = Callable[[Float[Array, "N T"], Float[Array, "N T"]], Float[Array, "N T"]]

KL_ESTIMATORS: dict[str, KlFn] = {}
FORWARD_DIVERGENCES: dict[str, KlFn] = {}


def register_kl_estimator(*names: str) -> Callable[[KlFn], KlFn]:
  """Adds ``fn(logp, ref_logp) -> per-token KL`` to ``KL_ESTIMATORS`` under every name given."""

  def wrap(fn: KlFn) -> KlFn:
    for name in names:
      if name in KL_ESTIMATORS:
        raise ValueError(f"KL estimator {name!r} is already registered")
      KL_ESTIMATORS[name] = fn
    return fn

  return wrap


def register_forward_divergence(name: str) -> Callable[[KlFn], KlFn]:
  """Adds ``fn(logp, init_logp) -> per-token divergence`` to ``FORWARD_DIVERGENCES``."""

  def wrap(fn: KlFn) -> KlFn:
    if name in FORWARD_DIVERGENCES:
      raise ValueError(f"forward divergence {name!r} is already registered")
    FORWARD_DIVERGENCES[name] = fn
    return fn

  return wrap


@register_kl_estimator("k1", "kl")
def kl_k1(logp, ref_logp):
  """k1 = log pi_theta - log pi_ref (Schulman 2020; verl ``kl``)."""
  return logp - ref_logp


@register_kl_estimator("k2", "mse")
def kl_k2(logp, ref_logp):
  """k2 = 0.5 (log pi_theta - log pi_ref)^2 (Schulman 2020; verl ``mse``)."""
  return 0.5 * jnp.square(logp - ref_logp)


@register_kl_estimator("k3", "low_var_kl")
def kl_k3(logp, ref_logp):
  """k3 = r - log r - 1 with r = pi_ref / pi_theta (Schulman 2020; verl ``low_var_kl``).

  Clamps as verl does (log r to [-20, 20], the estimate to [-10, 10]) so that one token whose
  probability collapsed cannot dominate the batch.
  """
  log_r = jnp.clip(ref_logp - logp, -20.0, 20.0)
  return jnp.clip(jnp.exp(log_r) - log_r - 1.0, -10.0, 10.0)


@register_kl_estimator("k3+", "low_var_kl+")
def kl_k3_plus(logp, ref_logp):
  """Value of k3, gradient of k2 (straight-through; docs/papers.md 2.0, verl ``low_var_kl+``)."""
  k2 = kl_k2(logp, ref_logp)
  return k2 + jax.lax.stop_gradient(kl_k3(logp, ref_logp) - k2)


def kl_estimate(
    name: str, logp: Float[Array, "N T"], ref_logp: Float[Array, "N T"]
) -> Float[Array, "N T"]:
  """Per-token reverse-KL estimate ``KL_ESTIMATORS[name](logp, ref_logp)``."""
  if name not in KL_ESTIMATORS:
    raise ValueError(f"unknown kl_estimator {name!r}; choose one of {sorted(KL_ESTIMATORS)}")
  return KL_ESTIMATORS[name](logp, ref_logp)


@register_forward_divergence("k1")
def forward_k1(logp, init_logp):
  """KL(pi_0 || pi_theta) on pi_0 samples: log pi_0 - log pi_theta (DPH-RL sec. 3, forward KL)."""
  return init_logp - logp


@register_forward_divergence("k3")
def forward_k3(logp, init_logp):
  """KL(pi_0 || pi_theta) on pi_0 samples: u - 1 - log u, u = pi_theta / pi_0 (clamped like k3)."""
  log_u = jnp.clip(logp - init_logp, -20.0, 20.0)
  return jnp.clip(jnp.exp(log_u) - log_u - 1.0, -10.0, 10.0)


@register_forward_divergence("js")
def forward_js(logp, init_logp):
  """Jensen-Shannon via f(u) = 0.5 [u log u - (1+u) log((1+u)/2)], u = pi_theta / pi_0 on pi_0
  samples (DPH-RL sec. 3; generator as in docs/papers.md 2.4, marked [recall])."""
  log_u = jnp.clip(logp - init_logp, -20.0, 20.0)
  u = jnp.exp(log_u)
  # log((1 + u) / 2) = logaddexp(0, log u) - log 2, stable for large or tiny u.
  return 0.5 * (u * log_u - (1.0 + u) * (jnp.logaddexp(0.0, log_u) - jnp.log(2.0)))


def forward_divergence(
    name: str, logp: Float[Array, "N T"], init_logp: Float[Array, "N T"]
) -> Float[Array, "N T"]:
  """Per-token forward divergence ``FORWARD_DIVERGENCES[name](logp, init_logp)``.

  ``logp`` is the current policy's log-prob of tokens sampled from the initial policy pi_0 and
  ``init_logp`` pi_0's own log-prob of them (stored when the rehearsal set was drawn).
  """
  if name not in FORWARD_DIVERGENCES:
    raise ValueError(
        f"unknown forward divergence {name!r}; choose one of {sorted(FORWARD_DIVERGENCES)}"
    )
  return FORWARD_DIVERGENCES[name](logp, init_logp)


def kl_in_reward(
    scores: Float[Array, "N"],
    logp: Float[Array, "N T"],
    ref_logp: Float[Array, "N T"],
    mask: Float[Array, "N T"],
    *,
    kl_coef: float,
    kl_estimator: str = "k1",
) -> Float[Array, "N T"]:
  """Per-token rewards with the KL penalty subtracted (PPO-RLHF style; verl ``apply_kl_penalty``).

  r_{i,t} = 1[t = last valid token of i] * score_i - kl_coef * KL_t(i), zero on masked tokens.
  ``logp`` is the log-prob under the sampling (old) policy, so the result carries no gradient
  (stop-gradient is applied). Feed the output to ``token_advantages`` (e.g. ``reinforce_pp``), or
  sum it over t (``sequence_reward_minus_kl``) for group estimators over [P, G].
  """
  mask = mask.astype(jnp.float32)
  kl = jax.lax.stop_gradient(kl_estimate(kl_estimator, logp, ref_logp)) * mask  # [N, T]
  t = jnp.arange(mask.shape[-1])
  last = jnp.max(jnp.where(mask > 0, t, -1), axis=-1)  # [N]; -1 when the row is empty
  at_last = (t[None, :] == last[:, None]).astype(jnp.float32)  # [N, T]
  return at_last * scores[:, None] - kl_coef * kl


def sequence_reward_minus_kl(
    scores: Float[Array, "N"],
    logp: Float[Array, "N T"],
    ref_logp: Float[Array, "N T"],
    mask: Float[Array, "N T"],
    *,
    kl_coef: float,
    kl_estimator: str = "k1",
) -> Float[Array, "N"]:
  """score_i - kl_coef * sum_t KL_t(i): the KL-in-reward scalar for [P, G] estimators."""
  token_rewards = kl_in_reward(
      scores, logp, ref_logp, mask, kl_coef=kl_coef, kl_estimator=kl_estimator
  )
  return jnp.sum(token_rewards, axis=-1)


# ------------------------------------------------------------------------------------------------
# RAPO ("Unlocking Reasoning Capabilities in LLMs via Reinforcement Learning Exploration", Oct
# 2025; only the abstract was available: the forward KL replaces the reverse KL, and the reference
# is reweighted toward rewarded samples. Every formula below is [inferred from abstract]; see
# configs/rapo.py for the reproduction card.)


def reward_tilt(advantages: Float[Array, "N T"], *, strength: float = 1.0) -> Float[Array, "N T"]:
  r"""Reward tilt of the reference, g = max(0, 1 + strength * A), from the rows' advantages.

  The reweighted reference is pi_ref'(y | x) = pi_ref(y | x) g(y) / Z(x). The loss only sees the
  advantages, not the rewards, so g is written in them: with a group-centred estimator (``grpo``,
  ``dr_grpo``, ``rloo``: the advantages of each group sum to zero) the group mean of g is exactly
  1 while no weight is clipped at 0, so g is already self-normalised within the group (Z estimated
  on the group's own samples, as a self-normalised importance weight would). Correct responses of
  a mixed group get more reference mass, wrong ones less; a group with equal rewards (all right or
  all wrong: A = 0) keeps g = 1, the plain forward KL to pi_ref. With ``dr_grpo`` advantages and
  rewards in [0, 1], strength <= 1 never clips; with GRPO's std-scaled ones, a wrong response of a
  mostly solved group (A < -1 / strength) gets weight 0 and the group's mean exceeds 1.
  """
  return jnp.maximum(1.0 + strength * advantages, 0.0)


def rapo_forward_kl(
    logp: Float[Array, "N T"],
    old_logp: Float[Array, "N T"],
    ref_logp: Float[Array, "N T"],
    tilt: Float[Array, "N T"],
    *,
    cap: float = 10.0,
) -> tuple[Float[Array, "N T"], Float[Array, "N T"], Float[Array, "N T"]]:
  r"""Per-token forward KL to the tilted reference, D(g pi_ref || pi_theta), on the policy's own
  samples. Returns (value, weight a, truncated indicator), all [N, T].

  The tokens were sampled from pi_old. With the stop-gradient weight
  a = g * min(pi_ref / pi_old, cap) and rho = pi_theta / pi_old (log-ratios clamped to +-20):

      f = a log a - a log rho - a + rho        (>= 0 for every sample: x log(x / y) - x + y >= 0)

  Value. Without truncation, at one state s (g a constant of the response),
      E_{y ~ pi_old}[f] = sum_y [g pi_ref log(g pi_ref / pi_theta) - g pi_ref + pi_theta]
                        = g KL(pi_ref || pi_theta) + g log g - g + 1,
  the generalised KL of the measure g pi_ref to pi_theta, and exactly KL(pi_ref' || pi_theta)
  whenever g pi_ref is normalised (g = 1, or g / Z at the sequence level). It holds at any theta,
  not only at theta = theta_old.
  Gradient. a is a constant and d rho = rho d log pi_theta, so
      d f = (rho - a) d log pi_theta(y),
      E_{pi_old}[d f] = sum_y pi_theta d log pi_theta - g sum_y pi_ref d log pi_theta
                      = 0 - g E_{pi_ref}[d log pi_theta] = g d KL(pi_ref || pi_theta):
  the forward-KL gradient (mass-covering: it raises the policy's probability of whatever the
  reference likes more than it does), scaled by the response's reward tilt g.
  Deviations. (1) Truncation at ``cap`` (for stability, like truncated importance sampling)
  biases the gradient down on tokens whose reference probability far exceeds the sampler's.
  (2) Per-token ratios stand in for the sequence ratio pi_ref'(y) / pi_old(y) (whose variance
  grows with the length), with the sequence's tilt g on every token, as every token-level
  estimator in this file does. (3) On-policy (pi_old = pi_theta, rho = 1) with g = 1 and no
  truncation, d f = (1 - pi_ref / pi_theta) d log pi_theta is the same per-sample gradient as the
  reverse estimator k3 in the loss (``kl_k3``): GRPO's k3 term already follows the forward-KL
  gradient in expectation; a reverse-KL gradient needs k2 (or k1 in the reward).
  """
  log_w = jnp.clip(jax.lax.stop_gradient(ref_logp - old_logp), -20.0, 20.0)
  truncated = (log_w > jnp.log(cap)).astype(jnp.float32)
  a = jax.lax.stop_gradient(tilt * jnp.exp(jnp.minimum(log_w, jnp.log(cap))))  # [N, T]
  log_rho = jnp.clip(logp - jax.lax.stop_gradient(old_logp), -20.0, 20.0)
  rho = jnp.exp(log_rho)
  a_log_a = jnp.where(a > 0, a * jnp.log(jnp.maximum(a, 1e-30)), 0.0)  # 0 log 0 = 0
  value = a_log_a - a * log_rho - a + rho
  return value, a, truncated
