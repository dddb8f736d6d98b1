"""Policy losses (PPO-clip with clip-higher and dual-clip, GSPO, CISPO) and the regularised total.

A registered loss maps per-token inputs to a per-token loss and per-token indicator statistics:

    fn(logp, old_logp, advantages, mask, *, clip_low, clip_high, dual_clip, **options)
        -> (loss [N, T], stats: dict name -> [N, T])

``policy_loss`` adds the KL-to-reference and entropy terms, aggregates with ``agg_mode`` over the
*global* counts (see ``aggregation.py``) and returns metrics that combine exactly across
micro-batches and devices: every metric is already divided by the global token count (or is the
aggregated loss itself), so the full-batch value is the SUM over micro-batches, except keys ending
in ``_max`` / ``_min`` which combine by max / min (``combine_metrics`` / ``reduce_metrics`` do this).

Notation (docs/papers.md 2.0): rho = exp(logp - old_logp), A the advantage, eps_lo / eps_hi the
``clip_low`` / ``clip_high`` options, c the ``dual_clip`` constant. Losses are negated objectives.
"""
from __future__ import annotations

import inspect
from typing import Callable, Mapping, Sequence

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from rlvr_jax.algorithms.aggregation import aggregate, global_normalizers
from rlvr_jax.algorithms.kl import (forward_divergence, kl_estimate, kl_k3, rapo_forward_kl,
                                   reward_tilt)

LossFn = Callable[..., tuple[Float[Array, "N T"], dict[str, Float[Array, "N T"]]]]

POLICY_LOSSES: dict[str, LossFn] = {}

# log-ratios are clamped before exp so one stale token cannot overflow the batch (verl does the same).
_MAX_LOG_RATIO = 20.0


# Per-token side inputs a registered loss receives when its signature names them ([N, T] arrays,
# or None where the run has none): the policy's entropy, the reference and behaviour (sampler)
# log-probs, ``old_max_logp`` (log of the old policy's largest token probability at each
# position), ``old_minp_logmass`` (log of the mass the old policy keeps under a min-p filter with
# the loss's ``kappa`` option), and ``batch_stats``: what the loss's ``prepare`` hook computed over the WHOLE
# mini-batch (e.g. an entropy quantile), identical for every micro-batch.
LOSS_SIDE_INPUTS = ("entropy", "ref_logp", "behaviour_logp", "old_max_logp", "old_minp_logmass",
                    "batch_stats")
_LOSS_ARGS = ("logp", "old_logp", "advantages", "mask")


def register_policy_loss(name: str, *, prepare: Callable | None = None) -> Callable[[LossFn], LossFn]:
  """Adds a per-token loss ``fn`` (see module docstring) to ``POLICY_LOSSES``.

  ``prepare(*, logp, entropy, mask, old_logp, advantages, **options) -> dict`` (optional) runs once
  per mini-batch on the current policy's log-probs / entropies of ALL its rows (no gradient)
  before the micro-batches; its dict reaches ``fn`` as ``batch_stats``. Use it for statistics
  that must not depend on the micro-batch split (a quantile over the mini-batch's tokens).
  """

  def wrap(fn: LossFn) -> LossFn:
    if name in POLICY_LOSSES:
      raise ValueError(f"policy loss {name!r} is already registered")
    fn.prepare = prepare
    POLICY_LOSSES[name] = fn
    return fn

  return wrap


def _params(fn) -> Mapping[str, inspect.Parameter]:
  return inspect.signature(fn).parameters


def loss_option_names(name: str) -> list[str]:
  """Options ``config.algo.loss_options`` may set for ``POLICY_LOSSES[name]`` (and its prepare)."""
  fn = POLICY_LOSSES[name]
  names = [k for k, p in _params(fn).items() if k not in _LOSS_ARGS + LOSS_SIDE_INPUTS
           and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
  if getattr(fn, "prepare", None) is not None:
    names += [k for k, p in _params(fn.prepare).items() if k not in _LOSS_ARGS + ("entropy",)
              and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and k not in names]
  return names


def check_loss_options(name: str, options: Mapping[str, object]) -> dict:
  """``options`` for loss ``name``; an unknown key is a ValueError listing the accepted ones."""
  if name not in POLICY_LOSSES:
    raise ValueError(f"unknown policy loss {name!r}; choose one of {sorted(POLICY_LOSSES)}")
  options = dict(options)
  valid = loss_option_names(name)
  unknown = sorted(set(options) - set(valid) - {"clip_low", "clip_high", "dual_clip"})
  if unknown:
    raise ValueError(f"config.algo.loss_options: loss {name!r} got unknown options {unknown}; it "
                     f"accepts {valid} (clip_low / clip_high / dual_clip are config.algo keys)")
  check = getattr(POLICY_LOSSES[name], "check", None)
  if check is not None:  # value ranges, named (a loss sets fn.check = f(**options))
    check(**options)
  return options


def loss_needs(name: str) -> set[str]:
  """The side inputs (``LOSS_SIDE_INPUTS``) loss ``name`` names in its signature."""
  return {k for k in LOSS_SIDE_INPUTS if k in _params(POLICY_LOSSES[name])}


def prepare_options(name: str, options: Mapping[str, object]) -> dict:
  """The subset of ``options`` the loss's prepare hook accepts."""
  prep = POLICY_LOSSES[name].prepare
  return {k: v for k, v in options.items() if k in _params(prep)}


def _ratio(log_ratio):
  return jnp.exp(jnp.clip(log_ratio, -_MAX_LOG_RATIO, _MAX_LOG_RATIO))


def _clip_pg(ratio, adv, clip_low, clip_high, dual_clip):
  """Per-token -clipPG(rho, A; eps_lo, eps_hi) with optional dual clip, plus clip indicators."""
  pg_unclipped = -adv * ratio  # [N, T]
  pg_clipped = -adv * jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)  # [N, T]
  loss = jnp.maximum(pg_unclipped, pg_clipped)  # pessimistic bound = min of objectives
  stats = {
      "clip_frac_high": ((adv > 0) & (ratio > 1.0 + clip_high)).astype(jnp.float32),
      "clip_frac_low": ((adv < 0) & (ratio < 1.0 - clip_low)).astype(jnp.float32),
  }
  if dual_clip is not None:
    # Dual-clip PPO (Ye et al. 2020, arXiv 1912.09729, eq. 5): for A < 0 the objective is bounded
    # below by c * A, so a huge ratio on a bad token cannot blow up the update.
    loss = jnp.where(adv < 0, jnp.minimum(loss, -adv * dual_clip), loss)
    stats["clip_frac_dual"] = ((adv < 0) & (ratio > dual_clip)).astype(jnp.float32)
  return loss, stats


@register_policy_loss("ppo_clip")
def ppo_clip(logp, old_logp, advantages, mask, *, clip_low=0.2, clip_high=0.2, dual_clip=None):
  """Clipped surrogate (PPO, Schulman et al. 2017, eq. 7; GRPO's per-token form, DeepSeekMath
  arXiv 2402.03300 eq. 3) with decoupled bounds, DAPO's clip-higher (arXiv 2503.14476, sec. 3.1):

      l_t = -min(rho_t A_t, clip(rho_t, 1 - eps_lo, 1 + eps_hi) A_t),
      with dual clip (A_t < 0):  l_t = min(l_t, -c A_t).

  GRPO: eps_lo = eps_hi = 0.2; DAPO: 0.2 / 0.28 with c = 10; verl's default c = 3.
  """
  del mask
  ratio = _ratio(logp - old_logp)  # [N, T]
  loss, stats = _clip_pg(ratio, advantages, clip_low, clip_high, dual_clip)
  return loss, {**stats, "ratio": ratio}


def _check_forking(*, rho: float = 0.2, keep: str = "top", normalize: str = "all", **_):
  if not 0.0 < float(rho) <= 1.0:
    raise ValueError(f"config.algo.loss_options.rho={rho}: the kept entropy fraction must be in "
                     "(0, 1]")
  if keep not in ("top", "bottom"):
    raise ValueError(f"config.algo.loss_options.keep={keep!r}; choose 'top' or 'bottom'")
  if normalize not in ("kept", "all"):
    raise ValueError(f"config.algo.loss_options.normalize={normalize!r}; choose 'kept' or 'all'")


def _forking_threshold(*, logp, entropy, mask, old_logp, advantages, rho=0.2, keep="top",
                       normalize="all"):
  """The (1 - rho) entropy quantile over every response token of the mini-batch, and the counts
  that turn a token mean over all tokens into one over the kept tokens."""
  del logp, old_logp, advantages
  threshold = masked_quantile(entropy, mask, 1.0 - rho)
  valid = mask > 0
  high = valid & (entropy >= threshold)
  kept = high if keep == "top" else valid & ~high
  total = jnp.sum(valid).astype(jnp.float32)
  count = jnp.sum(kept).astype(jnp.float32)
  scale = jnp.where(count > 0, total / jnp.maximum(count, 1.0), 0.0) if normalize == "kept" \
      else jnp.float32(1.0)
  return {"threshold": threshold, "scale": scale}


@register_policy_loss("forking_tokens", prepare=_forking_threshold)
def forking_tokens(logp, old_logp, advantages, mask, *, entropy, batch_stats, rho=0.2,
                   keep="top", normalize="all", clip_low=0.2, clip_high=0.2, dual_clip=None):
  """"Beyond the 80/20 rule" (arXiv 2506.01939): the clipped policy gradient only on the forking
  tokens, those whose entropy under the current policy is in the top ``rho`` of the mini-batch
  (rho = 0.2 in the paper); ``keep="bottom"`` trains the complement instead (the paper's
  bottom-80% control).

      H* = (1 - rho) quantile of {H_t : every response token of the mini-batch}  (prepare hook:
           the same threshold for every micro-batch and device),
      l_t = 1[H_t >= H*] * ppo_clip_t  (top)   or   1[H_t < H*] * ppo_clip_t  (bottom).

  ``normalize="all"`` (default; docs/papers.md 2.4 [recall, unchecked]: the denominator stays every
  response token) divides the kept tokens' losses by all tokens; ``"kept"`` rescales by
  (tokens / kept tokens) of the mini-batch, making a ``token-mean`` aggregation the mean over the
  kept tokens (as if the loss mask itself were shrunk; other aggregations get the same factor). A
  mini-batch where no token is kept gives a zero loss, not NaN; ``forking_kept`` (fraction of
  tokens trained) is then 0.
  """
  del mask, rho, normalize
  ratio = _ratio(logp - old_logp)
  loss, stats = _clip_pg(ratio, advantages, clip_low, clip_high, dual_clip)
  high = entropy >= batch_stats["threshold"]
  kept = (high if keep == "top" else ~high).astype(loss.dtype)
  return loss * kept * batch_stats["scale"], {**stats, "ratio": ratio, "forking_kept": kept}


forking_tokens.check = _check_forking


def _broadcast(advantages, mask):
  return jnp.broadcast_to(advantages[:, None] if advantages.ndim == 1 else advantages, mask.shape)


def _token_cov(logp, advantages, mask, stats):
  """cov_t = (A_t - mean A)(log pi_t - mean log pi), the means over the mini-batch's tokens."""
  return (_broadcast(advantages, mask) - stats["mean_adv"]) * (logp - stats["mean_logp"])


def _pseudo_uniform(old_logp):
  """A per-token number in [0, 1) fixed by the token's old log-prob and position: the same in the
  prepare hook and in every micro-batch, so a "random" subset does not depend on the split."""
  pos = jnp.arange(old_logp.shape[-1], dtype=jnp.float32)[None, :]
  x = jnp.sin(old_logp.astype(jnp.float32) * 12.9898 + pos * 78.233) * 43758.5453
  return x - jnp.floor(x)


def _cov_means(logp, advantages, mask):
  m = (mask > 0).astype(jnp.float32)
  n = jnp.maximum(jnp.sum(m), 1.0)
  return {"mean_adv": jnp.sum(_broadcast(advantages, mask) * m) / n,
          "mean_logp": jnp.sum(logp * m) / n}


def _check_cov(*, ratio: float = 2e-4, cov_low: float = 1.0, cov_high: float = 5.0,
               cov_coef: float = 1.0, **_):
  if not 0.0 < float(ratio) <= 1.0:
    raise ValueError(f"config.algo.loss_options.ratio={ratio}: the selected token fraction must be "
                     "in (0, 1]")
  if not float(cov_low) < float(cov_high):
    raise ValueError(f"config.algo.loss_options: need cov_low={cov_low} < cov_high={cov_high}")
  if float(cov_coef) < 0:
    raise ValueError(f"config.algo.loss_options.cov_coef={cov_coef}: need >= 0")


def _clip_cov_prepare(*, logp, entropy, mask, old_logp, advantages, ratio=2e-4, cov_low=1.0,
                      cov_high=5.0):
  del entropy
  stats = _cov_means(logp, advantages, mask)
  cov = _token_cov(logp, advantages, mask, stats)
  eligible = (mask > 0) & (cov > cov_low) & (cov < cov_high)
  budget = jnp.maximum(jnp.floor(ratio * jnp.sum(mask > 0)), 1.0).astype(jnp.int32)
  u = jnp.sort(jnp.where(eligible, _pseudo_uniform(old_logp), jnp.inf).reshape(-1))
  stats["u_threshold"] = u[jnp.clip(budget - 1, 0, u.shape[0] - 1)]
  return stats


@register_policy_loss("clip_cov", prepare=_clip_cov_prepare)
def clip_cov(logp, old_logp, advantages, mask, *, batch_stats, ratio=2e-4, cov_low=1.0,
             cov_high=5.0, clip_low=0.2, clip_high=0.2, dual_clip=None):
  """Clip-Cov (The Entropy Mechanism of RL for Reasoning LMs, arXiv 2505.22617;
  docs/papers.md 2.1, from verl's ``compute_policy_loss_clip_cov``): PPO-clip, except that a random
  ``ratio`` fraction of the mini-batch's tokens (at least one), drawn among those whose centred
  covariance cov_t = (A_t - mean A)(log pi_t - mean log pi) lies in (cov_low, cov_high), have
  their gradient detached (loss term 0): the high-covariance tokens are the ones that drive entropy
  down.

  Means and the draw are over the whole mini-batch (prepare hook). The draw is a fixed
  pseudo-random order (a hash of each token's old log-prob and position) so that every micro-batch
  agrees; verl draws with torch.randperm per micro-batch and also leaves out tokens PPO already
  clipped (those carry no gradient here either). Defaults [code]: ratio 2e-4, band (1, 5).
  Metric ``cov_detached``: the fraction of tokens detached.
  """
  del mask, ratio
  ppo_ratio = _ratio(logp - old_logp)
  loss, stats = _clip_pg(ppo_ratio, advantages, clip_low, clip_high, dual_clip)
  cov = jax.lax.stop_gradient(_token_cov(logp, advantages, jnp.ones_like(logp), batch_stats))
  chosen = (cov > cov_low) & (cov < cov_high) & (_pseudo_uniform(old_logp)
                                                   <= batch_stats["u_threshold"])
  loss = jnp.where(chosen, 0.0, loss)  # detached: no value, no gradient
  return loss, {**stats, "ratio": ppo_ratio, "cov_detached": chosen.astype(loss.dtype)}


clip_cov.check = _check_cov


def _kl_cov_prepare(*, logp, entropy, mask, old_logp, advantages, ratio=2e-3, cov_coef=1.0):
  del entropy, old_logp, cov_coef
  stats = _cov_means(logp, advantages, mask)
  cov = _token_cov(logp, advantages, mask, stats)
  k = jnp.maximum(jnp.floor(ratio * jnp.sum(mask > 0)), 1.0).astype(jnp.int32)
  ordered = jnp.sort(jnp.where(mask > 0, cov, -jnp.inf).reshape(-1))[::-1]
  stats["cov_threshold"] = ordered[jnp.clip(k - 1, 0, ordered.shape[0] - 1)]
  return stats


@register_policy_loss("kl_cov", prepare=_kl_cov_prepare)
def kl_cov(logp, old_logp, advantages, mask, *, batch_stats, ratio=2e-3, cov_coef=1.0,
           clip_low=0.2, clip_high=0.2, dual_clip=None):
  """KL-Cov (arXiv 2505.22617; verl's ``compute_policy_loss_kl_cov``): the unclipped policy
  gradient l_t = -rho_t A_t on every token, plus ``cov_coef`` * |log pi_t - log pi_old,t| on the
  top ``ratio`` fraction (at least one) of the mini-batch's tokens by centred covariance
  cov_t = (A_t - mean A)(log pi_t - mean log pi). No ratio clipping (clip bounds unused, as in
  the reference). Defaults: the 7B recipe's ratio 2e-3 and coefficient 1 [code] (verl's generic
  defaults are 2e-4 and 0.1). Metric ``cov_penalised``: the fraction of tokens penalised.
  """
  del mask, ratio, clip_low, clip_high, dual_clip
  ppo_ratio = _ratio(logp - old_logp)
  adv = _broadcast(advantages, logp)
  cov = jax.lax.stop_gradient(_token_cov(logp, advantages, jnp.ones_like(logp), batch_stats))
  chosen = cov >= batch_stats["cov_threshold"]
  loss = -adv * ppo_ratio + jnp.where(chosen, cov_coef * jnp.abs(logp - old_logp), 0.0)
  zeros = jnp.zeros_like(loss)
  return loss, {"clip_frac_high": zeros, "clip_frac_low": zeros, "ratio": ppo_ratio,
                "cov_penalised": chosen.astype(loss.dtype)}


kl_cov.check = _check_cov


def _check_dispo(*, pos_low: float = 0.2, pos_high: float = 0.28, neg_low: float = 0.2,
                 neg_high: float = 0.28, **_):
  for key, value in (("pos_low", pos_low), ("pos_high", pos_high), ("neg_low", neg_low),
                     ("neg_high", neg_high)):
    if not float(value) >= 0.0:
      raise ValueError(f"config.algo.loss_options.{key}={value}: a clip bound must be >= 0")


@register_policy_loss("dispo")
def dispo(logp, old_logp, advantages, mask, *, pos_low=0.2, pos_high=0.28, neg_low=0.2,
          neg_high=0.28, clip_low=0.2, clip_high=0.2, dual_clip=None):
  """DISPO (arXiv 2602.00983): a REINFORCE-style loss whose importance weight has four bounds,
  separate lower / upper ones for correct (A > 0) and incorrect (A < 0) responses:

      l_t = -sg(rho_t) * A_t * log pi_t * 1[1 - eps_lo^s <= rho_t <= 1 + eps_hi^s],
      s = + (``pos_low`` / ``pos_high``) if A_t > 0, - (``neg_low`` / ``neg_high``) if A_t < 0.

  Tokens outside their bounds are MASKED (no gradient), not kept with a clipped weight: the
  abstract contrasts DISPO with CISPO, which "still permit[s] non-zero gradients outside the
  trust-region", and promises PPO-like stability [inferred from abstract; the paper's equation
  was not available offline]. Inside the bounds the weight is rho itself (sg), so w > 1 on correct
  responses (room above 1) pushes entropy up, w < 1 pushes it down. The config's
  clip_low / clip_high are not used (the four options replace them). Defaults: DAPO's 0.2 / 0.28
  on both signs [this config]. Metrics: clip_frac_high / _low count masked tokens.
  """
  del mask, clip_low, clip_high
  if dual_clip is not None:
    raise ValueError("dispo has no dual clip: set dual_clip=None")
  ratio = _ratio(logp - old_logp)
  adv = _broadcast(advantages, logp)
  pos = adv > 0
  low = jnp.where(pos, 1.0 - pos_low, 1.0 - neg_low)
  high = jnp.where(pos, 1.0 + pos_high, 1.0 + neg_high)
  inside = (ratio >= low) & (ratio <= high)
  loss = jnp.where(inside, -jax.lax.stop_gradient(ratio) * adv * logp, 0.0)
  return loss, {"clip_frac_high": (ratio > high).astype(jnp.float32),
                "clip_frac_low": (ratio < low).astype(jnp.float32), "ratio": ratio}


dispo.check = _check_dispo


@register_policy_loss("ace")
def ace(logp, old_logp, advantages, mask, *, ref_logp, alpha=1.0, clip_low=0.2, clip_high=0.2,
        dual_clip=None):
  """ACE (arXiv 2602.21420; docs/papers.md 2.3 [summary]): PPO-clip where the advantage of an
  incorrect rollout (A_i < 0) is scaled by its over-confidence relative to the reference,

      c_i = sum_t (log pi_old(y_t) - log pi_ref(y_t))   (sequence log-ratio, response tokens),
      A_i <- A_i * (1 + alpha * softplus(c_i))  if A_i < 0,   positive advantages unchanged,

  a selective reverse-KL pressure on confident errors. pi_old (the sampling-time policy, a
  constant) stands in for pi_theta in c_i. ``alpha`` [not retrieved; 1.0 here, this config]. The
  trainer keeps the reference policy for this loss. Metric ``ace_scale``: the token mean of the
  factor (1 on rows with A >= 0).
  """
  seq = jnp.sum((old_logp - ref_logp) * mask, axis=-1, keepdims=True)  # [N, 1]
  adv = _broadcast(advantages, logp)
  factor = jnp.where(adv < 0, 1.0 + alpha * jax.nn.softplus(seq), 1.0)
  ratio = _ratio(logp - old_logp)
  loss, stats = _clip_pg(ratio, adv * factor, clip_low, clip_high, dual_clip)
  return loss, {**stats, "ratio": ratio, "ace_scale": jnp.broadcast_to(factor, logp.shape)}


def _check_ace(*, alpha: float = 1.0, **_):
  if float(alpha) < 0:
    raise ValueError(f"config.algo.loss_options.alpha={alpha}: need alpha >= 0")


ace.check = _check_ace


def _check_lp_reg(*, kappa: float = 0.02, neg_frac: float = 0.01, pos_frac: float = 0.0,
                  beta: float = 1.0, **_):
  if not 0.0 < float(kappa) < 1.0:
    raise ValueError(f"config.algo.loss_options.kappa={kappa}: the min-p ratio must be in (0, 1)")
  for key, value in (("neg_frac", neg_frac), ("pos_frac", pos_frac)):
    if not 0.0 <= float(value) <= 1.0:
      raise ValueError(f"config.algo.loss_options.{key}={value}: need a fraction in [0, 1]")
  if float(beta) < 0:
    raise ValueError(f"config.algo.loss_options.beta={beta}: need >= 0")


def _kth_smallest(values, select, frac):
  """The k-th smallest of ``values`` where ``select``, k = floor(frac * count); -inf when k = 0."""
  count = jnp.sum(select)
  k = jnp.floor(frac * count).astype(jnp.int32)
  ordered = jnp.sort(jnp.where(select, values, jnp.inf).reshape(-1))
  return jnp.where(k > 0, ordered[jnp.clip(k - 1, 0, ordered.shape[0] - 1)], -jnp.inf)


def _lp_reg_prepare(*, logp, entropy, mask, old_logp, advantages, kappa=0.02, neg_frac=0.01,
                    pos_frac=0.0, beta=1.0):
  del entropy, old_logp, kappa, beta
  adv = _broadcast(advantages, mask)
  valid = mask > 0
  return {"neg_threshold": _kth_smallest(logp, valid & (adv < 0), neg_frac),
          "pos_threshold": _kth_smallest(logp, valid & (adv > 0), pos_frac)}


@register_policy_loss("lp_reg", prepare=_lp_reg_prepare)
def lp_reg(logp, old_logp, advantages, mask, *, old_max_logp, old_minp_logmass, batch_stats,
           kappa=0.02, neg_frac=0.01, pos_frac=0.0, beta=1.0, clip_low=0.2, clip_high=0.2,
           dual_clip=None):
  """Lp-Reg (arXiv 2510.03222; code compute_policy_loss_lp_reg, docs/papers.md 2.4): protect the
  rare low-probability tokens of negative samples ("reasoning sparks") from being pushed to zero.

  1. Proxy: the old policy through a min-p filter, renormalised,
     pi_proxy(v) = pi_old(v) 1[pi_old(v) >= kappa max_u pi_old(u)] / Z  (Z the kept mass; both
     ``old_max_logp`` and ``old_minp_logmass`` come from tiled vocabulary passes, no [N, V]).
  2. Candidates: the lowest-probability ``neg_frac`` of the mini-batch's tokens with A < 0 (and
     ``pos_frac`` of those with A > 0), by current log-prob (prepare hook: a mini-batch threshold).
  3. A candidate the filter kept and whose pi_theta(y) < pi_proxy(y) gets
     l_t = -A rho_t + beta * KL_k3(pi_theta || pi_proxy)(y_t)  (no ratio clip); every other token
     keeps PPO-clip.

  Defaults [code]: kappa 0.02 (``minp_p_threshold``), neg_frac 0.01, pos_frac 0, beta 1. The code
  applies a selection only when it holds more than one token; here any k >= 1 is applied.
  Metric ``lp_reg_frac``: the fraction of tokens regularised.
  """
  del mask, neg_frac, pos_frac
  ratio = _ratio(logp - old_logp)
  adv = _broadcast(advantages, logp)
  clipped, stats = _clip_pg(ratio, adv, clip_low, clip_high, dual_clip)
  lp = jax.lax.stop_gradient(logp)
  candidate = (((adv < 0) & (lp <= batch_stats["neg_threshold"]))
               | ((adv > 0) & (lp <= batch_stats["pos_threshold"])))
  kept = old_logp >= old_max_logp + jnp.log(jnp.float32(kappa))
  log_proxy = old_logp - old_minp_logmass
  apply = candidate & kept & (lp < log_proxy)
  diff = jnp.where(apply, log_proxy - logp, 0.0)
  k3 = jnp.exp(diff) - diff - 1.0
  loss = jnp.where(apply, -adv * ratio + beta * k3, clipped)
  return loss, {**stats, "ratio": ratio, "lp_reg_frac": apply.astype(loss.dtype)}


lp_reg.check = _check_lp_reg


@register_policy_loss("gspo")
def gspo(logp, old_logp, advantages, mask, *, clip_low=3e-4, clip_high=4e-4, dual_clip=None):
  """GSPO (Zheng et al., arXiv 2507.18071, sec. 4): one length-normalised ratio per sequence,

      s_i = exp((1/|y_i|) sum_t (logp_t - old_logp_t)),   l_i = -min(s_i A_i, clip(s_i, ..) A_i),

  written in the paper's GSPO-token form, s_{i,t} = sg(s_i) * pi(y_t) / sg(pi(y_t)): every token of
  sequence i carries the value of s_i, and with ``agg_mode="seq-mean-token-mean"`` value and
  gradient equal the sequence-level GSPO objective exactly (per-token [N, T] advantages give the
  GSPO-token variant). Defaults are the paper's clip range (3e-4, 4e-4).
  """
  mask = mask.astype(logp.dtype)
  seq_len = jnp.maximum(jnp.sum(mask, axis=-1), 1.0)  # [N]
  seq_log_ratio = jnp.sum((logp - old_logp) * mask, axis=-1) / seq_len  # [N]
  log_ratio = jax.lax.stop_gradient(seq_log_ratio)[:, None] + logp - jax.lax.stop_gradient(logp)
  ratio = _ratio(log_ratio)  # [N, T], value s_i on every token of sequence i
  loss, stats = _clip_pg(ratio, advantages, clip_low, clip_high, dual_clip)
  return loss, {**stats, "ratio": ratio}


def _check_tis(*, tis_cap: float = 2.0, **_):
  if not (isinstance(tis_cap, (int, float)) and tis_cap >= 1.0):
    raise ValueError(f"ppo_clip_tis: tis_cap={tis_cap!r} must be a number >= 1 (the largest "
                     "importance weight kept)")


@register_policy_loss("ppo_clip_tis")
def ppo_clip_tis(logp, old_logp, advantages, mask, *, behaviour_logp, tis_cap=2.0, clip_low=0.2,
                 clip_high=0.2, dual_clip=None):
  """PPO-clip for samples drawn from a different distribution than the policy trained, corrected
  by a truncated importance weight (EAD, arXiv 2510.05251, whose sampler anneals the temperature
  while the learner trains the policy at temperature 1):

      l_t = w_t * -min(rho_t A_t, clip(rho_t, 1 - eps_lo, 1 + eps_hi) A_t),
      rho_t = pi_theta(y_t) / pi_old(y_t),   w_t = sg(min(pi_old(y_t) / mu(y_t), C)),

  with mu the sampling distribution (``behaviour_logp``: the sampler's log-probs at its own
  temperature) and pi_old the policy at temperature 1 before the update. The weight only corrects
  (never enlarges beyond C = ``tis_cap``) the gap between the tempered sampler and the trained
  policy; on-policy (pi_old = sg(pi_theta)) rho = 1 and w_t alone reweights. The form is the usual
  truncated IS (docs/papers.md 2.4, EAD: "min(pi_theta / pi_sample, C)"); C = 2 [this config: the
  value was not retrieved]. Metrics: ``tis_weight`` (mean w) and ``tis_capped`` (share at C).
  """
  del mask
  ratio = _ratio(logp - old_logp)  # [N, T]
  loss, stats = _clip_pg(ratio, advantages, clip_low, clip_high, dual_clip)
  raw = _ratio(jax.lax.stop_gradient(old_logp) - behaviour_logp)  # pi_old / mu
  weight = jax.lax.stop_gradient(jnp.minimum(raw, tis_cap))
  return weight * loss, {**stats, "ratio": ratio, "tis_weight": weight,
                         "tis_capped": (raw > tis_cap).astype(jnp.float32)}


ppo_clip_tis.check = _check_tis


@register_policy_loss("cispo")
def cispo(logp, old_logp, advantages, mask, *, clip_low=1.0, clip_high=0.28, dual_clip=None):
  """CISPO (MiniMax-M1, arXiv 2506.13585, sec. 3.1):

      l_t = -sg(clip(rho_t, 1 - eps_lo, 1 + eps_hi)) * A_t * logp_t.

  The clipped importance weight is a constant, so tokens outside the trust region still get a
  gradient (unlike PPO, which zeroes it). The paper sets no lower bound in practice, hence the
  default eps_lo = 1 (weight floor 0); eps_hi is tuned per run (0.28 here is DAPO's, not the
  paper's). Clip fractions count truncated weights regardless of the sign of A. ``dual_clip`` has
  no meaning here and must be None.
  """
  del mask
  if dual_clip is not None:
    raise ValueError("cispo has no dual clip: set dual_clip=None (the weight is already bounded)")
  ratio = _ratio(logp - old_logp)  # [N, T]
  weight = jax.lax.stop_gradient(jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high))
  stats = {
      "clip_frac_high": (ratio > 1.0 + clip_high).astype(jnp.float32),
      "clip_frac_low": (ratio < 1.0 - clip_low).astype(jnp.float32),
      "ratio": ratio,
  }
  return -weight * advantages * logp, stats


def _check_shapes(logp, old_logp, advantages, mask):
  for name, x in (("old_logp", old_logp), ("mask", mask)):
    if x.shape != logp.shape:
      raise ValueError(f"{name} has shape {x.shape} but logp has {logp.shape}; all must be [N, T]")
  if logp.ndim != 2:
    raise ValueError(f"logp must be [N, T], got shape {logp.shape}")
  if advantages.shape == logp.shape[:1]:
    return advantages[:, None]  # [N, 1]: one advantage per sequence, broadcast over tokens
  if advantages.shape == logp.shape:
    return advantages
  raise ValueError(
      f"advantages has shape {advantages.shape}; expected [N]={logp.shape[:1]} or [N, T]={logp.shape}"
  )


def _nonzero(coef) -> bool:
  # A traced coefficient (e.g. a schedule) counts as "in use"; Python numbers are checked.
  return not isinstance(coef, (int, float)) or coef != 0


def _token_sum(x, mask, global_tokens):
  # Token mean over the GLOBAL batch: summing this over micro-batches gives the full-batch mean.
  return jnp.sum(x * mask) / jnp.maximum(global_tokens, 1e-8)


def policy_loss(
    name: str,
    logp: Float[Array, "N T"],
    old_logp: Float[Array, "N T"],
    advantages: Float[Array, "N"] | Float[Array, "N T"],
    mask: Float[Array, "N T"],
    *,
    agg_mode: str = "token-mean",
    clip_low: float | None = None,
    clip_high: float | None = None,
    dual_clip: float | None = None,
    ref_logp: Float[Array, "N T"] | None = None,
    kl_coef: float = 0.0,
    kl_estimator: str = "k3",
    entropy: Float[Array, "N T"] | None = None,
    entropy_coef: float = 0.0,
    global_tokens=None,
    global_seqs=None,
    norm_constant=None,
    behaviour_logp: Float[Array, "N T"] | None = None,
    old_max_logp: Float[Array, "N T"] | None = None,
    old_minp_logmass: Float[Array, "N T"] | None = None,
    batch_stats: Mapping[str, Array] | None = None,
    **loss_options,
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
  """Total loss = agg(l_pg) + kl_coef * agg(KL(pi || pi_ref)) - entropy_coef * agg(H).

  Args:
    name: key of ``POLICY_LOSSES`` (``ppo_clip``, ``gspo``, ``cispo``).
    logp: log pi_theta of the sampled tokens [N, T] (differentiable).
    old_logp: log pi_old of the same tokens (the policy that sampled them, or the log-probs at the
      start of this update's epochs); treated as constant.
    advantages: [N] (broadcast over tokens) or [N, T]; treated as constant.
    mask: 1 on response tokens to train on, 0 on prompt/padding [N, T].
    agg_mode: key of ``AGGREGATIONS``.
    clip_low, clip_high, dual_clip: eps_lo, eps_hi, c; None keeps the loss's own default
      (``clip_high`` falls back to ``clip_low`` when only that is given).
    ref_logp: reference-policy log-probs [N, T]; with ``kl_coef`` > 0 adds the KL-in-loss term
      (GRPO eq. 3, beta = kl_coef, estimator from ``KL_ESTIMATORS``; GRPO uses k3).
    entropy: per-token entropy of pi_theta [N, T] (from ``rlvr_jax.kernels.logprob``); with
      ``entropy_coef`` > 0 it is a bonus (subtracted from the loss). Always logged if given.
    global_tokens, global_seqs, norm_constant: normalisers of the WHOLE batch (see
      ``global_normalizers``); default to this call's own counts, right only for an unsplit batch.
    behaviour_logp: the sampler's log-probs [N, T] (truncated importance sampling), passed to
      losses that name it.
    old_max_logp: log max_v pi_old(v | context) [N, T], passed to losses that name it.
    batch_stats: the loss's ``prepare`` result over the whole mini-batch (see
      ``register_policy_loss``), passed to losses that name it.
    **loss_options: extra keyword options of the chosen loss (``config.algo.loss_options``).

  Returns:
    (loss, metrics). Metrics (scalars, sum-combinable across micro-batches unless _max/_min):
    ``loss``, ``pg_loss``, ``kl_loss`` (aggregated KL term before kl_coef, if ref_logp),
    ``kl`` (token mean of the estimator), ``entropy`` (token mean, if given), ``approx_kl``
    (token mean of k3 between pi_old and pi_theta), ``clip_frac_low`` / ``clip_frac_high`` /
    ``clip_frac_dual`` (when dual_clip) / ``clip_frac`` (fraction of tokens), ``ratio_mean``,
    ``ratio_max``, ``ratio_min`` (over valid tokens; -inf / +inf for an all-padding micro-batch).
  """
  if name not in POLICY_LOSSES:
    raise ValueError(f"unknown policy loss {name!r}; choose one of {sorted(POLICY_LOSSES)}")
  adv = jax.lax.stop_gradient(_check_shapes(logp, old_logp, advantages, mask))
  old_logp = jax.lax.stop_gradient(old_logp)
  mask = mask.astype(logp.dtype)
  local = global_normalizers(mask)
  global_tokens = local["global_tokens"] if global_tokens is None else global_tokens
  global_seqs = local["global_seqs"] if global_seqs is None else global_seqs
  agg = lambda x: aggregate(
      x, mask, agg_mode, global_tokens=global_tokens, global_seqs=global_seqs,
      norm_constant=norm_constant,
  )

  clip_opts = dict(loss_options)
  if clip_low is not None:
    clip_opts["clip_low"] = clip_low
    clip_opts["clip_high"] = clip_low if clip_high is None else clip_high
  elif clip_high is not None:
    clip_opts["clip_high"] = clip_high
  if dual_clip is not None:
    if isinstance(dual_clip, (int, float)) and dual_clip <= 1.0:
      raise ValueError(f"dual_clip must be > 1 (verl uses 3, DAPO 10), got {dual_clip}")
    clip_opts["dual_clip"] = dual_clip
  fn = POLICY_LOSSES[name]
  side = {"entropy": entropy, "ref_logp": ref_logp, "behaviour_logp": behaviour_logp,
          "old_max_logp": old_max_logp, "old_minp_logmass": old_minp_logmass,
          "batch_stats": batch_stats}
  for key in loss_needs(name):
    if side[key] is None and _params(fn)[key].default is inspect.Parameter.empty:
      raise ValueError(f"policy loss {name!r} needs {key} but the trainer passed none")
    clip_opts[key] = side[key]
  token_loss, stats = fn(logp, old_logp, adv, mask, **clip_opts)  # [N, T]

  pg_loss = agg(token_loss)
  total = pg_loss
  metrics = {"pg_loss": pg_loss}
  tsum = lambda x: _token_sum(jax.lax.stop_gradient(x), mask, global_tokens)

  if ref_logp is not None:
    if ref_logp.shape != logp.shape:
      raise ValueError(f"ref_logp has shape {ref_logp.shape} but logp has {logp.shape}")
    kl = kl_estimate(kl_estimator, logp, jax.lax.stop_gradient(ref_logp))  # [N, T]
    kl_loss = agg(kl)
    total = total + kl_coef * kl_loss
    metrics["kl_loss"] = kl_loss
    metrics["kl"] = tsum(kl)
  elif _nonzero(kl_coef):
    raise ValueError(f"kl_coef={kl_coef} needs ref_logp (the reference policy's log-probs)")
  if entropy is not None:
    if entropy.shape != logp.shape:
      raise ValueError(f"entropy has shape {entropy.shape} but logp has {logp.shape}")
    if _nonzero(entropy_coef):
      total = total - entropy_coef * agg(entropy)
    metrics["entropy"] = tsum(entropy)
  elif _nonzero(entropy_coef):
    raise ValueError(f"entropy_coef={entropy_coef} needs the per-token entropy array")

  ratio = jax.lax.stop_gradient(stats.pop("ratio"))
  # k3 estimate of KL(pi_old || pi_theta) on the pi_old samples (log r = logp - old_logp).
  metrics["approx_kl"] = tsum(kl_k3(old_logp, logp))
  clip_any = stats["clip_frac_high"] + stats["clip_frac_low"]
  for key, value in stats.items():
    metrics[key] = tsum(value)
  metrics["clip_frac"] = tsum(jnp.minimum(clip_any, 1.0))
  metrics["ratio_mean"] = tsum(ratio)
  metrics["ratio_max"] = jnp.max(jnp.where(mask > 0, ratio, -jnp.inf))
  metrics["ratio_min"] = jnp.min(jnp.where(mask > 0, ratio, jnp.inf))
  metrics["loss"] = total
  return total, {k: jax.lax.stop_gradient(v) for k, v in metrics.items()}


def forward_kl_loss(
    logp: Float[Array, "N T"],
    init_logp: Float[Array, "N T"],
    mask: Float[Array, "N T"],
    *,
    coef: float = 1.0,
    divergence: str = "k1",
    agg_mode: str = "token-mean",
    global_tokens=None,
    global_seqs=None,
    norm_constant=None,
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
  """DPH-RL's rehearsal penalty (arXiv 2509.07430, sec. 3): coef * D(pi_0 || pi_theta) estimated on
  samples pre-drawn from the initial policy pi_0 (``FORWARD_DIVERGENCES``: k1, k3, js).

  Computed on the rehearsal batch (prompts the initial policy already solves); add the returned
  loss to ``policy_loss``'s. Metrics ``fkl_loss`` (aggregated, before coef) and ``fkl`` (token
  mean over ``global_tokens``), sum-combinable like ``policy_loss``'s.
  """
  if init_logp.shape != logp.shape or mask.shape != logp.shape:
    raise ValueError(
        f"logp {logp.shape}, init_logp {init_logp.shape} and mask {mask.shape} must all be [N, T]"
    )
  mask = mask.astype(logp.dtype)
  global_tokens = global_normalizers(mask)["global_tokens"] if global_tokens is None else global_tokens
  div = forward_divergence(divergence, logp, jax.lax.stop_gradient(init_logp))  # [N, T]
  loss = aggregate(
      div, mask, agg_mode, global_tokens=global_tokens, global_seqs=global_seqs,
      norm_constant=norm_constant,
  )
  metrics = {"fkl_loss": loss, "fkl": _token_sum(div, mask, global_tokens)}
  return coef * loss, {k: jax.lax.stop_gradient(v) for k, v in metrics.items()}


def combine_metrics(parts: Sequence[Mapping[str, Array]]) -> dict[str, Array]:
  """Full-batch metrics from per-micro-batch metrics: sum, or max / min for ``_max`` / ``_min`` keys."""
  if not parts:
    raise ValueError("combine_metrics needs at least one metrics dict")
  out = {}
  for key in parts[0]:
    values = jnp.stack([jnp.asarray(p[key]) for p in parts])
    if key.endswith("_max"):
      out[key] = jnp.max(values)
    elif key.endswith("_min"):
      out[key] = jnp.min(values)
    else:
      out[key] = jnp.sum(values)
  return out


def reduce_metrics(metrics: Mapping[str, Array], axis_name: str) -> dict[str, Array]:
  """The same combination across devices inside ``shard_map`` / ``pmap`` over ``axis_name``."""
  out = {}
  for key, value in metrics.items():
    if key.endswith("_max"):
      out[key] = jax.lax.pmax(value, axis_name)
    elif key.endswith("_min"):
      out[key] = jax.lax.pmin(value, axis_name)
    else:
      out[key] = jax.lax.psum(value, axis_name)
  return out


# ------------------------------------------------------------------------------------------------
# Auxiliary loss terms (config.algo.aux_losses): extra terms added to the policy loss on the same
# rows, e.g. DPH-RL's forward KL on rehearsal rows, LaSeR's self-reward MSE.

AuxFn = Callable[..., tuple[Float[Array, ""], dict[str, Float[Array, ""]]]]
AUX_LOSSES: dict[str, AuxFn] = {}


def register_aux_loss(name: str) -> Callable[[AuxFn], AuxFn]:
  """Adds ``fn(logp, mask, batch, *, global_tokens, global_seqs, **options) -> (loss, metrics)``.

  ``logp`` / ``mask`` [N, T] are this micro-batch's current log-probs and loss mask; ``batch`` is
  the micro-batch dict (every training-row field: ``ref_logp``, ``entropy`` (current policy),
  ``role_ids``, ``turn_ids``, ``advantages``, ...). Normalise with the GLOBAL counts so that the
  sum over micro-batches is the mini-batch value; metrics follow ``policy_loss``'s rules.
  ``fn.needs`` (optional tuple) lists row fields it reads that the trainer only adds on request
  (``ref_logp``, ``role_ids``, ``turn_ids``, ``behaviour_logp``).
  """

  def wrap(fn: AuxFn) -> AuxFn:
    if name in AUX_LOSSES:
      raise ValueError(f"auxiliary loss {name!r} is already registered")
    AUX_LOSSES[name] = fn
    return fn

  return wrap


def _role_mask(batch, mask, roles):
  if roles is None:
    return mask
  if "role_ids" not in batch:
    raise ValueError("roles= needs the rows' role_ids")
  keep = jnp.isin(batch["role_ids"], jnp.asarray(tuple(roles)))  # [N]
  return mask * keep[:, None].astype(mask.dtype)


@register_aux_loss("forward_kl")
def aux_forward_kl(logp, mask, batch, *, global_tokens, global_seqs, divergence: str = "k1",
                   agg_mode: str = "token-mean", roles: tuple | None = None):
  """DPH-RL's rehearsal term (arXiv 2509.07430) D(pi_ref || pi_theta) on rows drawn from the
  reference (initial) policy: ``forward_kl_loss`` with the rows' ``ref_logp`` as pi_0, restricted
  to the rows whose role is in ``roles`` (None: every row)."""
  m = _role_mask(batch, mask, roles)
  return forward_kl_loss(logp, batch["ref_logp"], m, divergence=divergence, agg_mode=agg_mode,
                         global_tokens=global_tokens, global_seqs=global_seqs)


aux_forward_kl.needs = ("ref_logp", "role_ids")


def _check_rapo(*, tilt: float = 1.0, cap: float = 10.0, **_):
  if not tilt >= 0.0:
    raise ValueError(f"rapo_forward_kl: tilt={tilt} must be >= 0 (0: the untilted reference)")
  if not cap >= 1.0:
    raise ValueError(f"rapo_forward_kl: cap={cap} must be >= 1 (the importance-weight truncation)")


@register_aux_loss("rapo_forward_kl")
def aux_rapo_forward_kl(logp, mask, batch, *, global_tokens, global_seqs, tilt: float = 1.0,
                        cap: float = 10.0, agg_mode: str = "token-mean"):
  """RAPO's regulariser [inferred from abstract, configs/rapo.py]: the forward KL
  D(g pi_ref || pi_theta) to the reference reweighted by the reward tilt g = max(0, 1 + tilt * A)
  (``reward_tilt``, A the rows' advantages), estimated on the policy's own rows with importance
  weights min(pi_ref / pi_old, cap) (``rapo_forward_kl``). Its weight in ``config.algo.aux_losses``
  is beta; set ``config.algo.kl_coef = 0`` so that it replaces the reverse KL. pi_old is the rows'
  ``old_logp`` (off-policy) or the current log-probs without gradient (one on-policy update).

  Metrics: ``fkl_loss`` (aggregated, before the weight), ``fkl`` (token mean), ``is_weight``
  (token mean of the tilted, truncated weight a), ``is_trunc_frac`` (tokens whose
  pi_ref / pi_old exceeded ``cap``), ``tilt_zero_frac`` (tokens of responses given no reference
  mass)."""
  _check_rapo(tilt=tilt, cap=cap)
  mask = mask.astype(logp.dtype)
  old_logp = batch.get("old_logp")
  old_logp = jax.lax.stop_gradient(logp if old_logp is None else old_logp)
  adv = jax.lax.stop_gradient(_check_shapes(logp, old_logp, batch["advantages"], mask))
  g = reward_tilt(adv, strength=tilt)  # [N, T]
  value, weight, truncated = rapo_forward_kl(logp, old_logp, batch["ref_logp"], g, cap=cap)
  loss = aggregate(value, mask, agg_mode, global_tokens=global_tokens, global_seqs=global_seqs)
  tsum = lambda x: _token_sum(jax.lax.stop_gradient(x), mask, global_tokens)
  metrics = {"fkl_loss": loss, "fkl": tsum(value), "is_weight": tsum(weight),
             "is_trunc_frac": tsum(truncated), "tilt_zero_frac": tsum((g <= 0).astype(logp.dtype))}
  return loss, {k: jax.lax.stop_gradient(v) for k, v in metrics.items()}


aux_rapo_forward_kl.needs = ("ref_logp",)
aux_rapo_forward_kl.check = _check_rapo


def masked_quantile(x: Float[Array, "N T"], mask: Float[Array, "N T"], q) -> Float[Array, ""]:
  """The ``q`` quantile (lower value, no interpolation) of ``x`` over the entries where mask > 0;
  jittable (sorts all entries, invalid ones pushed to +inf)."""
  flat = jnp.where(mask > 0, x, jnp.inf).reshape(-1)
  count = jnp.sum(mask > 0)
  k = jnp.clip(jnp.floor(q * (count - 1)).astype(jnp.int32), 0, flat.shape[0] - 1)
  return jnp.sort(flat)[k]
