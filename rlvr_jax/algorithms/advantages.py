"""Advantage estimators: rewards [P, G] (P prompts, G samples each) -> advantages [P, G].

All estimators here are pure jnp and jittable; they see the whole rollout batch (compute them before
splitting into micro-batches or gather rewards across hosts first, since the REINFORCE++ estimators
normalise over the batch). The result reshaped to [P * G] is the per-sequence advantage that
``policy_loss`` broadcasts over tokens; estimators that need per-token rewards (KL in the reward,
process rewards) live in ``TOKEN_ADVANTAGES`` and return [N, T] directly.

Degenerate groups (all rewards equal, or G = 1) give exactly 0 for the group-baseline estimators
(grpo, dr_grpo, rloo, reinforce_pp_baseline), never NaN and never a rounding residue divided by a
tiny std. Deviation: verl's GRPO uses mean 0 / std 1 for G = 1 (advantage = reward); we return 0,
since a single sample carries no within-group signal.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Mapping, NamedTuple

import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

AdvFn = Callable[..., Float[Array, "P G"]]
TokenAdvFn = Callable[..., Float[Array, "N T"]]

ADVANTAGES: dict[str, AdvFn] = {}
TOKEN_ADVANTAGES: dict[str, TokenAdvFn] = {}


LAYOUTS = ("group", "batch", None)


def register_advantage(name: str, *, layout: str | None = None) -> Callable[[AdvFn], AdvFn]:
  """Adds an estimator to ``ADVANTAGES``, in one of two forms:

  * rectangle form ``fn(rewards [P, G], **options) -> [P, G]`` (the public ``compute_advantages``
    contract). ``layout`` says how the trainer runs it on ragged groups: ``"group"`` (each group's
    advantages depend on that group only: groups are run by size), ``"batch"`` (groups are ignored:
    run on [1, N]), or None (rectangular batches only; a ragged batch is an error).
  * row form ``fn(rewards [N], *, group_ids [N], **side_inputs_and_options)``, recognised by a
    ``group_ids`` parameter. It receives the side inputs its signature names (``SIDE_INPUTS``) and
    returns advantages [N] or [N, T], or an `AdvantageOutput`.
  """
  if layout not in LAYOUTS:
    raise ValueError(f"layout={layout!r}; choose one of {LAYOUTS}")

  def wrap(fn: AdvFn) -> AdvFn:
    if name in ADVANTAGES:
      raise ValueError(f"advantage estimator {name!r} is already registered")
    fn.layout = layout
    ADVANTAGES[name] = fn
    return fn

  return wrap


def register_token_advantage(name: str) -> Callable[[TokenAdvFn], TokenAdvFn]:
  """Adds ``fn(token_rewards [N, T], mask [N, T], **options) -> [N, T]`` to ``TOKEN_ADVANTAGES``."""

  def wrap(fn: TokenAdvFn) -> TokenAdvFn:
    if name in TOKEN_ADVANTAGES:
      raise ValueError(f"token advantage estimator {name!r} is already registered")
    TOKEN_ADVANTAGES[name] = fn
    return fn

  return wrap


def _check_rewards(rewards) -> Float[Array, "P G"]:
  rewards = jnp.asarray(rewards)
  if rewards.ndim != 2:
    raise ValueError(
        f"rewards must be [P, G] (prompts x samples per prompt), got shape {rewards.shape}; "
        "reshape a flat [P * G] vector with rewards.reshape(P, G)"
    )
  return rewards.astype(jnp.promote_types(rewards.dtype, jnp.float32))


def _degenerate(rewards: Float[Array, "P G"]) -> Float[Array, "P 1"]:
  # True where a group has no spread: all equal rewards, which includes every G = 1 group.
  spread = jnp.max(rewards, axis=-1, keepdims=True) - jnp.min(rewards, axis=-1, keepdims=True)
  return spread == 0


def group_std(rewards: Float[Array, "P G"], ddof: int = 1) -> Float[Array, "P 1"]:
  """Per-group standard deviation with ``ddof`` (1: unbiased n-1 estimator, as torch.std / verl)."""
  g = rewards.shape[-1]
  centered = rewards - jnp.mean(rewards, axis=-1, keepdims=True)  # [P, G]
  var = jnp.sum(jnp.square(centered), axis=-1, keepdims=True) / max(g - ddof, 1)  # [P, 1]
  return jnp.sqrt(var)


@register_advantage("grpo", layout="group")
def grpo(
    rewards: Float[Array, "P G"], *, scale_by_std: bool = True, std_ddof: int = 1, eps: float = 1e-6
) -> Float[Array, "P G"]:
  """GRPO outcome advantage (DeepSeekMath, arXiv 2402.03300, sec. 4.1.2):

  A_i = (r_i - mean_j r_j) / (std_j r_j + eps).

  ``std_ddof=1`` is the unbiased (n-1) estimator that verl's ``torch.std`` uses (the paper does not
  say which); ``std_ddof=0`` gives the population std. ``scale_by_std=False`` is Dr. GRPO.
  """
  rewards = _check_rewards(rewards)
  centered = rewards - jnp.mean(rewards, axis=-1, keepdims=True)  # [P, G]
  if scale_by_std:
    centered = centered / (group_std(rewards, std_ddof) + eps)
  return jnp.where(_degenerate(rewards), 0.0, centered)


@register_advantage("dr_grpo", layout="group")
def dr_grpo(rewards: Float[Array, "P G"]) -> Float[Array, "P G"]:
  """Dr. GRPO (arXiv 2503.20783, sec. 3.2): A_i = r_i - mean_j r_j, no std division.

  Pair it with ``agg_mode="seq-mean-token-sum-norm"`` to remove GRPO's length bias as well.
  """
  return grpo(rewards, scale_by_std=False)


@register_advantage("rloo", layout="group")
def rloo(rewards: Float[Array, "P G"]) -> Float[Array, "P G"]:
  """RLOO (Ahmadian et al., arXiv 2402.14740, eq. 5; Kool et al. 2019):

  A_i = r_i - 1/(G-1) sum_{j != i} r_j = G/(G-1) (r_i - mean_j r_j).
  """
  rewards = _check_rewards(rewards)
  g = rewards.shape[-1]
  loo_mean = (jnp.sum(rewards, axis=-1, keepdims=True) - rewards) / max(g - 1, 1)  # [P, G]
  return jnp.where(_degenerate(rewards), 0.0, rewards - loo_mean)


def _whiten(x, mask, eps):
  """(x - mean) / (std + eps) over the entries where mask is 1 (population std, as OpenRLHF)."""
  count = jnp.maximum(jnp.sum(mask), 1.0)
  mean = jnp.sum(x * mask) / count
  centered = (x - mean) * mask
  std = jnp.sqrt(jnp.sum(jnp.square(centered)) / count)
  spread = jnp.max(jnp.where(mask > 0, x, -jnp.inf)) - jnp.min(jnp.where(mask > 0, x, jnp.inf))
  return jnp.where(spread > 0, centered / (std + eps), 0.0)


@register_advantage("reinforce_pp", layout="batch")
def reinforce_pp(rewards: Float[Array, "P G"], *, eps: float = 1e-6) -> Float[Array, "P G"]:
  """REINFORCE++ (Hu et al., arXiv 2501.03262, eq. 7-8) with outcome rewards: the advantage is the
  reward normalised over the *whole batch*, A = (r - mean_batch r) / (std_batch r + eps).

  There is no group baseline, so a group with equal rewards gets a non-zero advantage unless the
  whole batch is constant; use ``reinforce_pp_baseline`` for the group-aware variant.
  """
  rewards = _check_rewards(rewards)
  return _whiten(rewards, jnp.ones_like(rewards), eps)


@register_advantage("reinforce_pp_baseline")
def reinforce_pp_baseline(rewards: Float[Array, "P G"], *, eps: float = 1e-6) -> Float[Array, "P G"]:
  """REINFORCE++-baseline (Hu et al., arXiv 2501.03262 v3+, sec. 3): subtract the group mean, then
  divide by the std of those centred rewards over the whole batch. Degenerate groups give 0.
  """
  rewards = _check_rewards(rewards)
  centered = jnp.where(_degenerate(rewards), 0.0, rewards - jnp.mean(rewards, -1, keepdims=True))
  count = centered.size
  std = jnp.sqrt(jnp.sum(jnp.square(centered - jnp.mean(centered))) / count)
  return centered / (std + eps)


def compute_advantages(name: str, rewards: Float[Array, "P G"], **options) -> Float[Array, "P G"]:
  """Advantages of rewards [P, G] with estimator ``ADVANTAGES[name]`` and its keyword ``options``."""
  if name not in ADVANTAGES:
    raise ValueError(f"unknown advantage estimator {name!r}; choose one of {sorted(ADVANTAGES)}")
  return ADVANTAGES[name](rewards, **options)


# ---------------------------------------------------------------------------------------------
# Per-token advantages (the hook for token-level rewards: KL in the reward, process rewards).


def returns_to_go(
    token_rewards: Float[Array, "N T"], mask: Float[Array, "N T"], gamma: float = 1.0
) -> Float[Array, "N T"]:
  """G_t = sum_{s >= t} gamma^(s - t) r_s over valid tokens (masked positions contribute 0)."""
  r = token_rewards * mask  # [N, T]
  if gamma == 1.0:
    # Reverse cumulative sum: exact and parallel.
    return jnp.flip(jnp.cumsum(jnp.flip(r, -1), axis=-1), -1) * mask
  t = jnp.arange(r.shape[-1], dtype=r.dtype)
  # G_t = gamma^-t * sum_{s>=t} gamma^s r_s; fine for the short horizons and gamma near 1 used here.
  disc = gamma ** t  # [T]
  tail = jnp.flip(jnp.cumsum(jnp.flip(r * disc, -1), axis=-1), -1)  # [N, T]
  return tail / disc * mask


@register_token_advantage("returns")
def token_returns(token_rewards, mask, *, gamma: float = 1.0):
  """Plain REINFORCE: the advantage of token t is its return-to-go (no baseline)."""
  return returns_to_go(token_rewards, mask.astype(token_rewards.dtype), gamma)


@register_token_advantage("reinforce_pp")
def token_reinforce_pp(token_rewards, mask, *, gamma: float = 1.0, eps: float = 1e-6):
  """REINFORCE++ (Hu et al., arXiv 2501.03262, eq. 6-8): per-token rewards (score on the last token
  minus the per-token KL, see ``kl_in_reward``), returns-to-go with discount gamma, then whitened
  over all valid tokens of the batch."""
  mask = mask.astype(token_rewards.dtype)
  return _whiten(returns_to_go(token_rewards, mask, gamma), mask, eps) * mask


def token_advantages(
    name: str, token_rewards: Float[Array, "N T"], mask: Float[Array, "N T"], **options
) -> Float[Array, "N T"]:
  """Per-token advantages [N, T] with ``TOKEN_ADVANTAGES[name]``; pass them to ``policy_loss``."""
  if name not in TOKEN_ADVANTAGES:
    raise ValueError(
        f"unknown token advantage estimator {name!r}; choose one of {sorted(TOKEN_ADVANTAGES)}"
    )
  if token_rewards.shape != mask.shape:
    raise ValueError(
        f"token_rewards {token_rewards.shape} and mask {mask.shape} must both be [N, T]"
    )
  return TOKEN_ADVANTAGES[name](token_rewards, mask, **options)


# ---------------------------------------------------------------------------------------------
# The trainer's entry point: rewards of a rollout record (any group layout) plus side inputs.

# Side inputs a row-form estimator may name in its signature (the trainer passes those it has):
#   group_ids [N] dense group index; lengths [N]; roles [N]; turns [N]; correct [N] bool;
#   seq_logp [N] behaviour log-prob of each completion; mask [N, T] loss mask; scores [N] rewards
#   before any KL penalty; kl_penalty [N, T] beta * per-token KL to the reference (0 without one);
#   token_rewards [N, T] per-token reward terms (or None); meta dict of per-row arrays;
#   state: the estimator's own slot of the run's algorithm state (a dict it may mutate; saved in
#   every checkpoint as JSON).
SIDE_INPUTS = ("group_ids", "lengths", "roles", "turns", "correct", "seq_logp", "mask", "scores",
               "kl_penalty", "token_rewards", "meta", "state")


class AdvantageOutput(NamedTuple):
  """What a row-form estimator may return instead of a bare array: advantages [N] or [N, T] and
  metrics (floats, logged as ``adv/<key>``)."""

  advantages: Any
  metrics: Mapping[str, float] | None = None


def is_row_form(fn: Callable) -> bool:
  return "group_ids" in inspect.signature(fn).parameters


def estimator_options(name: str) -> list[str]:
  """The options ``name`` accepts (for config validation)."""
  fn = ADVANTAGES[name]
  skip = ("rewards",) + (SIDE_INPUTS if is_row_form(fn) else ())
  return [k for k, p in inspect.signature(fn).parameters.items()
          if k not in skip and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def estimate(name: str, rewards: np.ndarray, *, group_ids: np.ndarray, rectangular: int | None,
             side: Mapping[str, Any], options: Mapping[str, Any]) -> tuple[np.ndarray, dict]:
  """Advantages [N] or [N, T] of a record's rewards [N] with ``ADVANTAGES[name]``.

  Rectangle-form estimators get the [P, G] matrix when ``rectangular`` (= G) is set, which is
  exactly the computation of ``compute_advantages``; on ragged groups they run as their
  ``layout`` says. Row-form estimators get ``rewards`` [N], ``group_ids`` and the side inputs they
  name. Returns (advantages as numpy, metrics).
  """
  if name not in ADVANTAGES:
    raise ValueError(f"unknown advantage estimator {name!r}; choose one of {sorted(ADVANTAGES)}")
  fn = ADVANTAGES[name]
  unknown = sorted(set(options) - set(estimator_options(name)))
  if unknown and not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(fn).parameters.values()):
    raise ValueError(f"advantage {name!r} got unknown options {unknown}; it accepts "
                     f"{estimator_options(name)}")
  if is_row_form(fn):
    params = inspect.signature(fn).parameters
    kwargs = {k: v for k, v in side.items() if k in params and k != "group_ids"}
    out = fn(rewards, group_ids=group_ids, **kwargs, **options)
    if isinstance(out, AdvantageOutput):
      return np.asarray(out.advantages, np.float32), dict(out.metrics or {})
    return np.asarray(out, np.float32), {}
  if rectangular:
    return np.asarray(fn(rewards.reshape(-1, rectangular), **options)).reshape(-1), {}
  layout = getattr(fn, "layout", None)
  if layout == "batch":
    return np.asarray(fn(jnp.asarray(rewards).reshape(1, -1), **options)).reshape(-1), {}
  if layout != "group":
    raise ValueError(f"advantage {name!r} needs groups of equal size (a [P, G] batch) but this "
                     "batch has ragged groups; use an estimator registered with layout='group' "
                     "or 'batch', or a row-form one (see register_advantage)")
  rewards = np.asarray(rewards)
  adv = np.zeros(rewards.shape, np.float32)
  # Ragged groups, run by size: stack the groups of each size into one [P_k, G_k] matrix.
  dense = np.asarray(group_ids)
  members = [np.flatnonzero(dense == g) for g in range(int(dense.max(initial=-1)) + 1)]
  for size in sorted({len(m) for m in members if len(m)}):
    rows = np.stack([m for m in members if len(m) == size])  # [P_k, G_k] row indices
    adv[rows] = np.asarray(fn(jnp.asarray(rewards[rows]), **options))
  return adv, {}


@register_advantage("reinforce_pp_token")
def reinforce_pp_token(rewards, *, group_ids, mask, scores, kl_penalty, gamma: float = 1.0,
                       eps: float = 1e-6):
  """REINFORCE++ with per-token rewards (Hu et al., arXiv 2501.03262, eq. 6-8): the outcome score
  sits on the last response token, every token pays beta * KL_t to the reference
  (``config.algo.kl_in_reward``), advantages are the returns-to-go whitened over every valid token
  of the batch. Returns [N, T]. ``rewards`` (which already have the summed KL subtracted) are not
  used: ``scores`` and ``kl_penalty`` place each term on its own token."""
  del rewards, group_ids
  mask = jnp.asarray(mask, jnp.float32)
  last = jnp.maximum(jnp.sum(mask > 0, axis=-1) - 1, 0)  # [N] index of the last trained token
  # (a response's trained tokens are a prefix of its row for the episodes that use this estimator)
  onehot = (jnp.arange(mask.shape[1])[None, :] == last[:, None]).astype(jnp.float32)
  token_rewards = onehot * jnp.asarray(scores, jnp.float32)[:, None] - jnp.asarray(kl_penalty)
  return token_reinforce_pp(token_rewards * mask, mask, gamma=gamma, eps=eps)


@register_advantage("role_baseline")
def role_baseline(rewards, *, group_ids, roles, state, decay: float = 0.95):
  """Role-conditioned advantage estimation, RAE (SPIRAL, arXiv 2506.24119; docs/papers.md 2.3,
  from the reference code): every role p keeps an EMA baseline b_p (initially 0). Games
  (``group_ids``) are taken in order; for game g with return R_p for role p, every row of that
  role gets A = R_p - b_p (the baseline read before the update), then
  b_p <- decay * b_p + (1 - decay) R_p. The baselines live in the run's algorithm state:
  checkpointed and restored on resume. The return of a role in a game is the mean reward of its
  rows (zero-sum games give every row of a role the same reward)."""
  rewards = np.asarray(rewards, np.float32)
  roles = np.asarray(roles)
  group_ids = np.asarray(group_ids)
  base = state.setdefault("baseline", {})
  adv = np.zeros_like(rewards)
  for g in dict.fromkeys(group_ids.tolist()):
    in_game = group_ids == g
    for role in dict.fromkeys(roles[in_game].tolist()):
      rows = in_game & (roles == role)
      key = str(int(role))
      ret = float(rewards[rows].mean())
      b = float(base.get(key, 0.0))
      adv[rows] = ret - b
      base[key] = decay * b + (1.0 - decay) * ret
  return AdvantageOutput(adv, {f"baseline_role{k}": float(v) for k, v in sorted(base.items())})


def _grpo_groups(rewards, group_ids, std_ddof: int, eps: float):
  """GRPO advantages of ragged groups in numpy (mean / std per group, 0 for a group of one or of
  equal rewards) and the (rows, advantages) of every group that has spread, for re-weighting."""
  rewards = np.asarray(rewards, np.float64)
  group_ids = np.asarray(group_ids)
  adv = np.zeros_like(rewards)
  spread = []
  for g in np.unique(group_ids):
    rows = np.flatnonzero(group_ids == g)
    r = rewards[rows]
    if len(rows) < 2 or np.ptp(r) == 0:
      continue
    adv[rows] = (r - r.mean()) / (r.std(ddof=min(int(std_ddof), len(rows) - 1)) + eps)
    spread.append(rows)
  return adv, spread


@register_advantage("entropy_reshaped")
def entropy_reshaped(rewards, *, group_ids, seq_logp, lengths, alpha: float = 1.0,
                     w_min: float = 0.5, w_max: float = 2.0, std_ddof: int = 1,
                     eps: float = 1e-6):
  """ETTRL's entropy-based advantage reshaping, EAR (arXiv 2508.11356), as read from its abstract
  ("entropy-based advantage reshaping" against the over-confidence of early pseudo-labels); the
  paper's equation was not available offline, so this is the inferred form:

      A_i = GRPO advantage of r_i in its group (mean / std, ``std_ddof``),
      h_i = -seq_logp_i / |y_i|   (mean surprisal of the sampled tokens under the sampler: a
                                   one-sample estimate of the response's token entropy),
      w_i = clip((h_i / mean_{j in group} h_j) ** alpha, w_min, w_max),   A'_i = w_i A_i.

  Confident (low-entropy) responses get smaller updates in either direction, exploratory ones
  larger, so the majority's confident answers are not sharpened as fast. ``alpha`` = 0 is GRPO.
  Groups with one sample or equal rewards get 0. Metrics: ``weight_mean`` and ``weight_pos``
  (the mean weight of rows with a positive advantage).
  """
  if not 0.0 < float(w_min) <= 1.0 <= float(w_max):
    raise ValueError(f"entropy_reshaped: need 0 < w_min={w_min} <= 1 <= w_max={w_max}")
  if float(alpha) < 0:
    raise ValueError(f"entropy_reshaped alpha={alpha}: need alpha >= 0")
  h = -np.asarray(seq_logp, np.float64) / np.maximum(np.asarray(lengths, np.float64), 1.0)
  adv, spread = _grpo_groups(rewards, group_ids, std_ddof, eps)
  weight = np.ones_like(adv)
  for rows in spread:
    mean_h = h[rows].mean()
    if mean_h > 0:
      weight[rows] = np.clip((np.maximum(h[rows], 0.0) / mean_h) ** float(alpha),
                             float(w_min), float(w_max))
  out = (adv * weight).astype(np.float32)
  pos = adv > 0
  return AdvantageOutput(out, {"weight_mean": float(weight.mean()),
                               "weight_pos": float(weight[pos].mean()) if pos.any() else 1.0})


@register_advantage("confidence_reweighted")
def confidence_reweighted(rewards, *, group_ids, seq_logp, lengths, beta: float = 1.0,
                          std_ddof: int = 1, eps: float = 1e-6):
  """ProGRPO's Advantage Re-weighting Mechanism, ARM ("Back to Basics: Revisiting Exploration in
  RL for LLM Reasoning via Generative Probabilities"), as read from its abstract: GRPO advantages
  whose positive part is spread across the group's correct responses by their confidence, so the
  most likely correct path is attenuated and under-explored correct paths gain:

      A_i = GRPO advantage (mean / std in the group),
      c_i = seq_logp_i / |y_i|   (answer confidence: mean log-prob of the sampled tokens),
      for the rows with A_i > 0:  w_i = n_+ softmax_j(-beta c_j)  (mean 1 over those rows),
      A'_i = w_i A_i  (rows with A_i <= 0 unchanged).

  The paper also uses the prompt's perplexity; prompt log-probs are not part of the rollout rows
  here, so that term is left out [inferred from abstract; beta = 1 chosen here]. Metric
  ``weight_max``: the largest weight given to a correct response.
  """
  if float(beta) < 0:
    raise ValueError(f"confidence_reweighted beta={beta}: need beta >= 0")
  conf = np.asarray(seq_logp, np.float64) / np.maximum(np.asarray(lengths, np.float64), 1.0)
  adv, spread = _grpo_groups(rewards, group_ids, std_ddof, eps)
  weight = np.ones_like(adv)
  for rows in spread:
    pos = rows[adv[rows] > 0]
    if len(pos) > 1:
      logits = -float(beta) * conf[pos]
      soft = np.exp(logits - logits.max())
      weight[pos] = len(pos) * soft / soft.sum()
  return AdvantageOutput((adv * weight).astype(np.float32),
                         {"weight_max": float(weight.max()) if len(weight) else 1.0})
