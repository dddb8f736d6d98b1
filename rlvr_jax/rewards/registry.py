"""The reward registry and ``compute_rewards``, which combines weighted terms and never dies.

A reward function scores N = P * G completions (samples of one prompt adjacent):

    fn(completions: Sequence[str], examples: Sequence[Mapping], **options)
        -> np.ndarray float32 [N]  or  RewardOutput(scores [N], token_scores [N, T] | None, metrics)

``examples[i]`` is the data row of completion i: at least ``question`` and ``answer`` (gold, str),
optionally ``metadata`` (dict) and ``task`` (reasoning-gym dataset name). A NaN score marks an item
that failed (error or timeout inside the function): ``compute_rewards`` turns it into 0 and counts
it. ``compute_rewards`` also passes the context keywords ``group_size``, ``group_ids``, ``token_stats``,
``lengths`` and ``max_len`` to every function whose signature names them (or takes ``**kwargs``),
unless the term's options set them. Options a function does not accept are a ``RewardConfigError``.
A function raises ``RewardConfigError`` for setup mistakes (missing context or options), which
propagate; any other exception while scoring costs that term a zero score and a counted failure.
"""
from __future__ import annotations

import inspect
import threading
from typing import Any, Callable, Mapping, NamedTuple, Sequence

import numpy as np
from absl import logging


class RewardConfigError(ValueError):
  """A reward was called without what it needs (missing context, bad options). Unlike an error
  while scoring, this is a bug in the run's setup, so ``compute_rewards`` re-raises it."""


class RewardOutput(NamedTuple):
  """Full result of a reward function: scores [N] (NaN = failed item), optional per-token scores
  [N, T], and extra metrics (floats; ``compute_rewards`` reports them as ``<key>/<label>``)."""

  scores: np.ndarray
  token_scores: np.ndarray | None = None
  metrics: Mapping[str, float] | None = None


RewardFn = Callable[..., "np.ndarray | RewardOutput"]

REWARDS: dict[str, RewardFn] = {}

_CONTEXT_KEYS = ("group_size", "group_ids", "token_stats", "lengths", "max_len")


def register_reward(name: str) -> Callable[[RewardFn], RewardFn]:
  """Adds ``fn(completions, examples, **options)`` to ``REWARDS``."""

  def wrap(fn: RewardFn) -> RewardFn:
    if name in REWARDS:
      raise ValueError(f"reward {name!r} is already registered")
    REWARDS[name] = fn
    return fn

  return wrap


def _call_kwargs(fn: RewardFn, label: str, options: Mapping[str, Any], context: Mapping[str, Any]):
  """The term's options plus the context keywords its signature accepts (options win)."""
  params = inspect.signature(fn).parameters
  takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
  unknown = [k for k in options if k not in params and not takes_any]
  if unknown:
    # A typo in an option would otherwise surface as a TypeError, i.e. a silently zeroed reward.
    accepted = [k for k in params if k not in ("completions", "examples")]
    raise RewardConfigError(f"reward {label!r} got unknown options {unknown}; it accepts {accepted}")
  kwargs = dict(options)
  for key, value in context.items():
    if key not in kwargs and (takes_any or key in params):
      kwargs[key] = value
  return kwargs


# Seconds one call of a reward term may take (the whole batch) before its items count as failed
# (``reward_timeout/<label>``) and the run goes on; a term's ``timeout_s`` overrides it (None: no
# limit). Process-pool rewards (math_verify) also have their own per-item timeouts.
DEFAULT_TIMEOUT_S = 600.0


class _Abandoned:
  """Reward calls still running after their timeout (their threads cannot be killed)."""
  threads: list = []


def _call_with_timeout(fn: Callable, args: tuple, kwargs: dict, timeout: float | None,
                       label: str) -> Any:
  """``fn(*args, **kwargs)`` in a daemon thread, waiting at most ``timeout`` seconds.

  Raises ``TimeoutError`` when the call has not returned by then; the call keeps running in its
  thread (Python cannot stop it) and is abandoned. None: called inline.
  """
  if timeout is None:
    return fn(*args, **kwargs)
  box: dict[str, Any] = {}

  def target():
    try:
      box["value"] = fn(*args, **kwargs)
    except BaseException as e:  # pylint: disable=broad-except  (re-raised in the caller)
      box["error"] = e

  thread = threading.Thread(target=target, name=f"reward:{label}", daemon=True)
  thread.start()
  thread.join(timeout)
  if thread.is_alive():
    _Abandoned.threads = [t for t in _Abandoned.threads if t.is_alive()] + [thread]
    raise TimeoutError(f"reward {label!r} did not return within {timeout:g} s "
                       f"({len(_Abandoned.threads)} abandoned reward call(s) still running)")
  if "error" in box:
    raise box["error"]
  return box["value"]


def parse_spec(spec) -> list[dict[str, Any]]:
  """Normalises a reward spec to ``[{name, weight, options, label, timeout_s}]``.

  Accepted forms: a list of dicts ``{"name", "weight"=1.0, "options"={}, "label"=name,
  "timeout_s"=DEFAULT_TIMEOUT_S}``; a mapping
  ``{name: weight}`` or ``{name: {"weight", "options", "label"}}``; an ``ml_collections.ConfigDict``
  of either (converted with ``to_dict``); a reward name or a list of names (weight 1).
  """
  if hasattr(spec, "to_dict"):
    spec = spec.to_dict()
  if isinstance(spec, str):
    spec = [{"name": spec}]
  if isinstance(spec, Mapping):
    if "name" in spec:
      spec = [spec]
    else:
      spec = [
          {"name": k, **(dict(v) if isinstance(v, Mapping) else {"weight": v})}
          for k, v in spec.items()
      ]
  terms = []
  for i, term in enumerate(spec):
    if hasattr(term, "to_dict"):
      term = term.to_dict()
    if isinstance(term, str):
      term = {"name": term}
    if not isinstance(term, Mapping) or "name" not in term:
      raise ValueError(f"reward spec entry {i} must be a dict with a 'name' key, got {term!r}")
    unknown = set(term) - {"name", "weight", "options", "label", "timeout_s"}
    if unknown:
      raise ValueError(f"reward spec entry {i} ({term['name']!r}) has unknown keys {sorted(unknown)}")
    if term["name"] not in REWARDS:
      raise ValueError(
          f"reward spec entry {i}: unknown reward {term['name']!r}; choose one of {sorted(REWARDS)}"
      )
    options = term.get("options") or {}
    if hasattr(options, "to_dict"):
      options = options.to_dict()
    timeout = term.get("timeout_s", DEFAULT_TIMEOUT_S)
    if timeout is not None and not (isinstance(timeout, (int, float)) and timeout > 0):
      raise ValueError(f"reward spec entry {i} ({term['name']!r}): timeout_s={timeout!r} must be "
                       "a number of seconds > 0, or None for no limit")
    terms.append({
        "name": term["name"],
        "weight": float(term.get("weight", 1.0)),
        "options": dict(options),
        "label": term.get("label", term["name"]),
        "timeout_s": None if timeout is None else float(timeout),
    })
  labels = [t["label"] for t in terms]
  if len(set(labels)) != len(labels):
    raise ValueError(f"reward spec uses a label twice {labels}; give repeated rewards a 'label'")
  return terms


def _as_output(value, n: int, label: str) -> RewardOutput:
  if not isinstance(value, RewardOutput):
    value = RewardOutput(np.asarray(value))
  scores = np.asarray(value.scores, dtype=np.float32)
  if scores.shape != (n,):
    raise ValueError(f"reward {label!r} returned scores of shape {scores.shape}, expected ({n},)")
  token_scores = value.token_scores
  if token_scores is not None:
    token_scores = np.asarray(token_scores, dtype=np.float32)
    if token_scores.ndim != 2 or token_scores.shape[0] != n:
      raise RewardConfigError(f"reward {label!r} returned token_scores of shape {token_scores.shape}, expected ({n}, T)")
  return RewardOutput(scores, token_scores, dict(value.metrics or {}))


def compute_rewards(
    spec,
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    group_size: int | None,
    group_ids: np.ndarray | None = None,
    token_stats: Mapping[str, np.ndarray] | None = None,
    lengths: np.ndarray | None = None,
    max_len: int | None = None,
    return_token_rewards: bool = False,
    term_scores: dict | None = None,
):
  """Weighted sum of reward terms, robust to failing terms.

  Args:
    spec: reward terms (see ``parse_spec``), e.g.
      ``[{"name": "math_verify", "weight": 1.0}, {"name": "format", "weight": 0.1}]``.
    completions: N decoded responses, the G samples of a prompt adjacent.
    examples: N data rows (examples[i] belongs to completions[i]).
    group_size: G; N must be a multiple of it. None when groups are ragged (then ``group_ids``
      [N] says which rows share a prompt; terms that need a fixed G raise RewardConfigError).
    group_ids: dense group index per completion [N] (rows of one group adjacent or not).
    token_stats: per-token arrays [N, T] for self-rewards (``mask`` plus e.g. ``self_certainty``).
    lengths: response lengths in tokens [N] (overlong shaping).
    max_len: maximum response length in tokens (overlong shaping).
    return_token_rewards: also return the weighted sum of per-token scores [N, T] (None if no term
      produces any).
    term_scores: when a dict, filled with each term's own scores ``{label: [N] float32}`` before
      weighting (NaN where an item failed), e.g. to reuse a verifier's verdict as correctness.

  Returns:
    ``(rewards [N] float32, metrics)`` or ``(rewards, token_rewards, metrics)``. Metrics (floats):
    ``reward/<label>`` mean of each term (failed items as 0), ``reward_fail/<label>`` number of
    items that failed (raised, timed out, or NaN; the whole batch if the function raised),
    ``<key>/<label>`` for any extra metric a term reports, ``reward/total`` mean of the result.
  """
  n = len(completions)
  if len(examples) != n:
    raise ValueError(f"got {n} completions but {len(examples)} examples; pass one row per completion")
  if group_size is not None and (group_size < 1 or n % group_size):
    raise ValueError(f"group_size={group_size} does not divide the number of completions {n}")
  if group_ids is not None and len(group_ids) != n:
    raise ValueError(f"group_ids has {len(group_ids)} entries for {n} completions")
  context = {"group_size": group_size, "group_ids": group_ids, "token_stats": token_stats, "lengths": lengths, "max_len": max_len}
  total = np.zeros(n, np.float32)
  token_total = None
  metrics: dict[str, float] = {}
  for term in parse_spec(spec):
    fn, label = REWARDS[term["name"]], term["label"]
    kwargs = _call_kwargs(fn, label, term["options"], context)
    timed_out = 0
    try:
      out = _as_output(_call_with_timeout(fn, (completions, examples), kwargs, term["timeout_s"],
                                          label), n, label)
    except RewardConfigError:
      raise
    except TimeoutError as e:
      logging.warning("%s; scoring the batch 0", e)
      out, timed_out = RewardOutput(np.full(n, np.nan, np.float32), None, {}), n
    except Exception as e:  # pylint: disable=broad-except
      # A broken reward must not kill a long run: score 0, count it, and say why once per call.
      logging.warning("reward %r raised %s: %s; scoring the batch 0", label, type(e).__name__, e)
      out = RewardOutput(np.full(n, np.nan, np.float32), None, {})
    if timed_out:
      out.metrics["reward_timeout"] = float(out.metrics.get("reward_timeout", 0)) + timed_out
    failed = ~np.isfinite(out.scores)
    if term_scores is not None:
      term_scores[label] = np.asarray(out.scores, np.float32)
    scores = np.where(failed, 0.0, out.scores).astype(np.float32)
    total += term["weight"] * scores
    metrics[f"reward/{label}"] = float(scores.mean()) if n else 0.0
    metrics[f"reward_fail/{label}"] = float(failed.sum())
    for key, value in out.metrics.items():
      metrics[f"{key}/{label}"] = float(value)
    if out.token_scores is not None:
      tok = np.nan_to_num(out.token_scores, nan=0.0, posinf=0.0, neginf=0.0) * term["weight"]
      if token_total is not None and token_total.shape != tok.shape:
        raise ValueError(f"reward {label!r} token_scores {tok.shape} differ from {token_total.shape}")
      token_total = tok if token_total is None else token_total + tok
  metrics["reward/total"] = float(total.mean()) if n else 0.0
  if return_token_rewards:
    return total, token_total, metrics
  return total, metrics
