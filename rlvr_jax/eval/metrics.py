"""Evaluation diagnostics beyond pass@k: per-problem change against a base model, calibration,
verifier quality, pseudo-label quality and token entropy. Pure numpy, host side.

Catalog section 2.9 ("Evaluation metrics the library must ship").

* Per-problem change and the winner-take-all split: the Limit-of-RLVR analysis (Yue et al., 2025,
  arXiv:2504.13837) and the reasoning-boundary-paradox / "RL squeezes" line of work compare a base
  and an RL-trained model problem by problem and group problems by the base model's accuracy:
  RLVR reinforces problems the base model already solves often and rarely lifts those it never
  solves.
* Expected calibration error (Guo et al., 2017, "On Calibration of Modern Neural Networks",
  arXiv:1706.04599, section 2) with its reliability table.
* AUROC / precision / recall / F1 of a verifier score against correctness (the self-verification
  diagnostics of LaSeR, arXiv:2510.14943, and RISE, arXiv:2505.13445).
* Reward accuracy and label accuracy of a label-free reward (TTRL, Zuo et al., 2025,
  arXiv:2504.16084): how often its verdict, or its pseudo-label, agrees with the ground truth.
* Mean token entropy of sampled responses (the entropy diagnostic of entropy-collapse analyses and
  of the 80/20 high-entropy-token paper, arXiv:2506.01939).

Ratios whose denominator is zero (precision with no positive prediction, a false-positive rate with
no negative sample, ...) are defined as 0, never NaN, so every value is valid JSON.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from jaxtyping import Bool, Float


# ------------------------------------------------------------------------------------------------
# Base vs new model, problem by problem
# ------------------------------------------------------------------------------------------------

def per_problem_change(base_correct: Bool[np.ndarray, "P n_base"],
                       new_correct: Bool[np.ndarray, "P n_new"]) -> dict[str, Any]:
  """Per-problem accuracy of a base and a new model on the same P problems, and its change.

  Returns ``base_acc``, ``new_acc``, ``delta`` = new - base (float arrays [P]); ``wins`` /
  ``losses`` / ``ties``: problems with delta > 0 / < 0 / = 0 (decided on the integer counts, so
  1/3 vs 2/6 is a tie exactly); ``mean_delta`` and ``mean_delta_se``, the standard error of the
  mean of the paired differences, std(delta, ddof=1) / sqrt(P) (NaN for P = 1).
  """
  base = _bool_matrix(base_correct, "base_correct")
  new = _bool_matrix(new_correct, "new_correct")
  if base.shape[0] != new.shape[0]:
    raise ValueError(f"per_problem_change: base has {base.shape[0]} problems, new has "
                     f"{new.shape[0]}; compare evaluations of the same problems")
  n_base, n_new = base.shape[1], new.shape[1]
  c_base, c_new = base.sum(axis=1), new.sum(axis=1)  # [P]
  sign = np.sign(c_new * n_base - c_base * n_new)  # [P], exact: no float comparison
  base_acc, new_acc = c_base / n_base, c_new / n_new
  delta = new_acc - base_acc
  p = delta.size
  return {"num_problems": int(p), "base_acc": base_acc, "new_acc": new_acc, "delta": delta,
          "wins": int(np.sum(sign > 0)), "losses": int(np.sum(sign < 0)),
          "ties": int(np.sum(sign == 0)), "mean_delta": float(np.mean(delta)),
          "mean_delta_se": float(np.std(delta, ddof=1) / np.sqrt(p)) if p > 1 else float("nan")}


DEFAULT_ACC_EDGES = (0.25, 0.5, 0.75)


def winner_take_all(base_acc: Float[np.ndarray, "P"], delta: Float[np.ndarray, "P"], *,
                    bins: Sequence[float] = DEFAULT_ACC_EDGES) -> list[dict[str, Any]]:
  """The winner-take-all split: problems grouped by base per-problem accuracy.

  ``bins`` are the interior edges; accuracy exactly 0 and exactly 1 always get bins of their own,
  the rest are right-closed: with the default edges (0.25, 0.5, 0.75) the bins are {0}, (0, 0.25],
  (0.25, 0.5], (0.5, 0.75], (0.75, 1), {1}. One row per bin: ``bin`` (its label), ``count``,
  ``mean_base_acc``, ``mean_delta`` (None for an empty bin), ``wins`` (delta > 0), ``losses``
  (delta < 0).
  """
  base_acc = np.asarray(base_acc, np.float64)
  delta = np.asarray(delta, np.float64)
  if base_acc.ndim != 1 or base_acc.shape != delta.shape:
    raise ValueError(f"winner_take_all wants base_acc and delta of one shape [P], got "
                     f"{base_acc.shape} and {delta.shape}")
  if np.any((base_acc < 0) | (base_acc > 1)):
    raise ValueError("winner_take_all: base_acc must lie in [0, 1]")
  edges = [float(e) for e in bins]
  if any(not 0 < e < 1 for e in edges) or edges != sorted(set(edges)):
    raise ValueError(f"winner_take_all: bins must be increasing edges strictly inside (0, 1), "
                     f"got {list(bins)}")
  bounds = [0.0] + edges + [1.0]
  groups = [("=0", base_acc == 0)]
  for i, (lo, hi) in enumerate(zip(bounds[:-1], bounds[1:])):
    last = i == len(bounds) - 2
    upper = base_acc < hi if last else base_acc <= hi  # (lo, hi] but (lo, 1) for the last
    groups.append((f"({lo:g}, {hi:g}{')' if last else ']'}", (base_acc > lo) & upper))
  groups.append(("=1", base_acc == 1))
  rows = []
  for label, sel in groups:
    count = int(sel.sum())
    rows.append({"bin": label, "count": count,
                 "mean_base_acc": float(base_acc[sel].mean()) if count else None,
                 "mean_delta": float(delta[sel].mean()) if count else None,
                 "wins": int(np.sum(delta[sel] > 0)), "losses": int(np.sum(delta[sel] < 0))})
  return rows


# ------------------------------------------------------------------------------------------------
# Confidence and verifier scores
# ------------------------------------------------------------------------------------------------

def expected_calibration_error(confidence: Float[np.ndarray, "M"], correct: Bool[np.ndarray, "M"],
                               num_bins: int = 10) -> dict[str, Any]:
  """ECE = sum_b |B_b| / M * |acc(B_b) - conf(B_b)| over equal-width bins (Guo et al., 2017).

  Bins are Guo et al.'s right-closed intervals ((b-1)/B, b/B], with confidence 0 put in the first.
  Returns ``ece`` and ``table``: per bin ``lo``, ``hi``, ``count``, ``accuracy`` and
  ``confidence`` (the bin means; None when empty) and ``gap`` = |accuracy - confidence|.
  """
  conf = np.asarray(confidence, np.float64)
  ok = _bool_vector(correct, "correct")
  if conf.ndim != 1 or conf.shape != ok.shape or conf.size == 0:
    raise ValueError(f"expected_calibration_error wants non-empty confidence and correct of one "
                     f"shape [M], got {conf.shape} and {ok.shape}")
  if np.any((conf < 0) | (conf > 1)) or not np.all(np.isfinite(conf)):
    raise ValueError("expected_calibration_error: confidence must lie in [0, 1]")
  if num_bins < 1:
    raise ValueError(f"expected_calibration_error needs num_bins >= 1, got {num_bins}")
  edges = np.arange(num_bins + 1) / num_bins  # b / B is exact where the literal is (0.3 == 3/10)
  index = np.clip(np.searchsorted(edges, conf, side="left") - 1, 0, num_bins - 1)  # [M]
  ece, table = 0.0, []
  for b in range(num_bins):
    sel = index == b
    count = int(sel.sum())
    row = {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": count, "accuracy": None,
           "confidence": None, "gap": None}
    if count:
      acc, mean_conf = float(ok[sel].mean()), float(conf[sel].mean())
      row.update(accuracy=acc, confidence=mean_conf, gap=abs(acc - mean_conf))
      ece += count / conf.size * abs(acc - mean_conf)
    table.append(row)
  return {"ece": float(ece), "table": table}


def auroc(scores: Float[np.ndarray, "M"], labels: Bool[np.ndarray, "M"]) -> float:
  """Area under the ROC curve = P(score of a random positive > that of a random negative), ties
  counting 1/2: the Mann-Whitney U statistic with average ranks for ties, U / (n_pos * n_neg)."""
  scores = np.asarray(scores, np.float64)
  labels = _bool_vector(labels, "labels")
  if scores.shape != labels.shape:
    raise ValueError(f"auroc: scores {scores.shape} and labels {labels.shape} differ in shape")
  n_pos, n_neg = int(labels.sum()), int((~labels).sum())
  if n_pos == 0 or n_neg == 0:
    raise ValueError(f"auroc is undefined with {n_pos} positive and {n_neg} negative labels; it "
                     "needs at least one of each")
  from scipy import stats  # here, not at the top: scipy.stats costs ~0.3 s to import
  ranks = stats.rankdata(scores)  # average ranks, 1-based
  u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2
  return float(u / (n_pos * n_neg))


def f1_at_threshold(scores: Float[np.ndarray, "M"], labels: Bool[np.ndarray, "M"],
                    threshold: float = 0.5) -> dict[str, float]:
  """Precision, recall and F1 of the prediction ``score >= threshold`` against ``labels``.

  0/0 is defined as 0: precision with no positive prediction, recall with no positive label, and
  F1 when precision + recall = 0. Also returns the confusion counts ``tp``, ``fp``, ``fn``, ``tn``.
  """
  scores = np.asarray(scores, np.float64)
  labels = _bool_vector(labels, "labels")
  if scores.shape != labels.shape:
    raise ValueError(f"f1_at_threshold: scores {scores.shape} and labels {labels.shape} differ")
  pred = scores >= threshold
  tp, fp = int(np.sum(pred & labels)), int(np.sum(pred & ~labels))
  fn, tn = int(np.sum(~pred & labels)), int(np.sum(~pred & ~labels))
  precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
  return {"precision": precision, "recall": recall,
          "f1": _ratio(2 * precision * recall, precision + recall),
          "tp": tp, "fp": fp, "fn": fn, "tn": tn}


# ------------------------------------------------------------------------------------------------
# Label-free rewards (TTRL diagnostics)
# ------------------------------------------------------------------------------------------------

def reward_accuracy(proxy_reward: Float[np.ndarray, "M"], true_correct: Bool[np.ndarray, "M"],
                    threshold: float) -> dict[str, float]:
  """How often a label-free reward's verdict (``proxy >= threshold``) equals the ground truth.

  TTRL's "reward accuracy". ``false_positive_rate`` = FP / (true negatives in the data), the share
  of incorrect samples the proxy rewards; ``false_negative_rate`` = FN / (correct samples), the
  share of correct samples it does not (0/0 = 0).
  """
  proxy = np.asarray(proxy_reward, np.float64)
  truth = _bool_vector(true_correct, "true_correct")
  if proxy.shape != truth.shape or proxy.size == 0:
    raise ValueError(f"reward_accuracy wants non-empty proxy_reward and true_correct of one shape "
                     f"[M], got {proxy.shape} and {truth.shape}")
  verdict = proxy >= threshold
  fp, fn = int(np.sum(verdict & ~truth)), int(np.sum(~verdict & truth))
  return {"reward_accuracy": float(np.mean(verdict == truth)),
          "false_positive_rate": _ratio(fp, int(np.sum(~truth))),
          "false_negative_rate": _ratio(fn, int(np.sum(truth))),
          "false_positives": fp, "false_negatives": fn}


def label_accuracy(pseudo_labels: Sequence[str | None], gold: Sequence[str]) -> float:
  """TTRL's "label accuracy": the share of problems whose pseudo-label (e.g. the majority-vote
  answer) equals the gold answer; compare normalised strings; None (no label) never matches."""
  if len(pseudo_labels) != len(gold) or not gold:
    raise ValueError(f"label_accuracy wants one pseudo-label per gold answer (non-empty), got "
                     f"{len(pseudo_labels)} and {len(gold)}")
  return float(np.mean([p is not None and p == g for p, g in zip(pseudo_labels, gold)]))


# ------------------------------------------------------------------------------------------------
# Entropy
# ------------------------------------------------------------------------------------------------

def mean_token_entropy(entropy: Float[np.ndarray, "R T"], mask: Float[np.ndarray, "R T"]
                       ) -> dict[str, Any]:
  """``token_mean``: entropy averaged over all valid tokens (mask > 0) of all rows;
  ``per_sequence``: [R] each row's own mean (NaN for a row without valid tokens); ``num_tokens``."""
  entropy = np.asarray(entropy, np.float64)
  mask = np.asarray(mask)
  if entropy.ndim != 2 or entropy.shape != mask.shape:
    raise ValueError(f"mean_token_entropy wants entropy and mask of one shape [R, T], got "
                     f"{entropy.shape} and {mask.shape}")
  valid = mask > 0  # [R, T]
  total = int(valid.sum())
  if total == 0:
    raise ValueError("mean_token_entropy: the mask selects no token")
  summed = np.where(valid, entropy, 0.0).sum(axis=1)  # [R]; padding may hold garbage
  counts = valid.sum(axis=1)  # [R]
  with np.errstate(invalid="ignore", divide="ignore"):
    per_sequence = np.where(counts > 0, summed / counts, np.nan)
  return {"token_mean": float(summed.sum() / total), "per_sequence": per_sequence,
          "num_tokens": total}


# ------------------------------------------------------------------------------------------------

def _ratio(num: float, den: float) -> float:
  return float(num / den) if den else 0.0


def _bool_vector(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.dtype != bool:
    if not np.isin(x, (0, 1)).all():
      raise ValueError(f"{name} must hold booleans (or 0/1)")
    x = x.astype(bool)
  if x.ndim != 1:
    raise ValueError(f"{name} must be a vector [M], got shape {x.shape}")
  return x


def _bool_matrix(x, name: str) -> np.ndarray:
  x = np.asarray(x)
  if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
    raise ValueError(f"{name} must be a non-empty [P, n] matrix, got shape {x.shape}")
  if x.dtype != bool:
    if not np.isin(x, (0, 1)).all():
      raise ValueError(f"{name} must hold booleans (or 0/1); threshold partial rewards first")
    x = x.astype(bool)
  return x
