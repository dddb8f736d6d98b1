"""Paper claims as data: which arms to run, which metric decides, in which direction.

A `Claim` names its paper and the sentence it tests, a base config, the arms (config overrides),
the metric that decides (``Metric``: a training column averaged over the last steps, the change of
a training column from the first to the last steps, or an entry of the final ``eval.json``), the
expected direction between two arms, and a ``quick`` set of overrides that shrinks every arm to a
CI-sized pipeline check (which tests the plumbing, never the effect).

``experiments/claims.py`` runs a claim over seeds and writes ``summary.json`` and plots;
``verdict`` turns per-seed values into "reproduced" / "not reproduced" / "inconclusive".
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Sequence

import numpy as np

METRIC_KINDS = ("train_last", "train_change", "eval")


def column(rows: Sequence[Mapping[str, Any]], key: str) -> str:
  """The metrics.jsonl column of ``key``: itself, or ``episode/<key>`` when only an episode logs it
  (e.g. cross_view's label_accuracy)."""
  if not any(key in r for r in rows) and any(f"episode/{key}" in r for r in rows):
    return f"episode/{key}"
  return key


@dataclasses.dataclass(frozen=True)
class Metric:
  """``kind``: ``train_last`` (mean of metrics.jsonl column ``key`` over the last ``window`` steps),
  ``train_change`` (that mean minus the mean over the first ``window`` steps; a key an episode
  logs as ``episode/<key>`` is found by its bare name) or ``eval`` (the
  final eval.json entry ``key`` of ``after``, e.g. ``pass@8``; ``before`` with ``stage``)."""

  kind: str
  key: str
  window: int = 10
  stage: str = "after"

  def __post_init__(self):
    if self.kind not in METRIC_KINDS:
      raise ValueError(f"Metric kind={self.kind!r}; choose one of {METRIC_KINDS}")

  @property
  def label(self) -> str:
    if self.kind == "eval":
      return f"{self.stage}/{self.key}"
    return f"{self.key} ({'last' if self.kind == 'train_last' else 'change over'} {self.window} steps)"

  def value(self, rows: Sequence[Mapping[str, Any]], eval_summary: Mapping[str, Any]) -> float:
    if self.kind == "eval":
      stage = eval_summary.get(self.stage) or {}
      if self.key not in stage:
        raise KeyError(f"eval.json has no {self.stage}[{self.key!r}]; keys: {sorted(stage)}")
      return float(stage[self.key])
    key = column(rows, self.key)
    values = [float(r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    if not values:
      raise KeyError(f"metrics.jsonl has no numeric column {self.key!r}")
    last = float(np.mean(values[-self.window:]))
    if self.kind == "train_last":
      return last
    return last - float(np.mean(values[:self.window]))


@dataclasses.dataclass(frozen=True)
class Claim:
  """One paper's qualitative claim. ``expect``: ``(arm_a, ">" or "<", arm_b)`` on ``metric``."""

  name: str
  paper: str
  sentence: str
  config: str  # "configs/x.py" or "configs/x.py:arg"
  arms: Mapping[str, Mapping[str, Any]]
  metric: Metric
  expect: tuple[str, str, str]
  quick: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  quick_config: str | None = None
  # Per-arm overrides applied after the arm's own in --quick runs (an arm that changes a size,
  # e.g. its warm-start steps, gets a CI-sized value here).
  quick_arms: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
  also: tuple[Metric, ...] = ()  # further metrics reported (not deciding)
  curves: tuple[str, ...] = ("reward_mean", "accuracy", "entropy", "response_len")
  notes: str = ""

  def __post_init__(self):
    unknown = sorted(set(self.quick_arms) - set(self.arms))
    if unknown:
      raise ValueError(f"claim {self.name!r}: quick_arms names unknown arms {unknown}")
    a, op, b = self.expect
    if op not in (">", "<") or a not in self.arms or b not in self.arms:
      raise ValueError(f"claim {self.name!r}: expect must be (arm, '>' or '<', arm) over arms "
                       f"{sorted(self.arms)}, got {self.expect}")


CLAIMS: dict[str, Claim] = {}


def register_claim(claim: Claim) -> Claim:
  if claim.name in CLAIMS:
    raise ValueError(f"claim {claim.name!r} is already registered")
  CLAIMS[claim.name] = claim
  return claim


def get_claim(name: str) -> Claim:
  if name not in CLAIMS:
    raise ValueError(f"unknown claim {name!r}; choose one of {sorted(CLAIMS)}")
  return CLAIMS[name]


def mean_stderr(values: Sequence[float]) -> tuple[float, float]:
  v = np.asarray(values, np.float64)
  se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else float("nan")
  return float(v.mean()), se


def verdict(claim: Claim, per_arm: Mapping[str, Sequence[float]], *, margin_se: float = 2.0) -> dict:
  """The claimed direction tested on per-seed values: the difference of arm means, its standard
  error (independent arms), and the verdict: "reproduced" when the difference has the claimed
  sign by at least ``margin_se`` standard errors, "not reproduced" when it has the opposite sign
  by that much, else "inconclusive" (also with a single seed: no error bar)."""
  a, op, b = claim.expect
  (ma, sa), (mb, sb) = mean_stderr(per_arm[a]), mean_stderr(per_arm[b])
  diff = ma - mb if op == ">" else mb - ma  # positive when the claim holds
  se = math.sqrt(sa ** 2 + sb ** 2) if not (math.isnan(sa) or math.isnan(sb)) else float("nan")
  z = diff / se if se and not math.isnan(se) else float("nan")
  if math.isnan(z):
    word = "inconclusive"
  elif z >= margin_se:
    word = "reproduced"
  elif z <= -margin_se:
    word = "not reproduced"
  else:
    word = "inconclusive"
  out = {"expect": f"{a} {op} {b}", "difference": diff, "stderr": se, "margin_se": z,
         "verdict": word}
  if len(per_arm[a]) == len(per_arm[b]) > 1:
    # Arms of one seed share the warm start, so the per-seed differences are the sharper test:
    # the seed-to-seed spread of the warm start cancels. Reported beside the unpaired verdict.
    d = np.asarray(per_arm[a], np.float64) - np.asarray(per_arm[b], np.float64)
    d = d if op == ">" else -d
    md, sd = mean_stderr(d)
    zp = md / sd if sd > 0 else float("inf") * np.sign(md) if md else float("nan")
    out["paired"] = {"differences": d.tolist(), "difference": md, "stderr": sd, "margin_se": zp,
                     "verdict": ("reproduced" if zp >= margin_se else "not reproduced"
                                 if zp <= -margin_se else "inconclusive")}
  return out


from rlvr_jax.claims import declared  # noqa: E402,F401  (registers the claims)
