"""Label-free rewards: majority vote over the group (TTRL), TraPO's semi-supervised vote, and
policy-confidence rewards (Intuitor).

The confidence rewards read per-token statistics the trainer computes on device
(``rlvr_jax.algorithms.token_stats``) and passes as ``token_stats``, numpy arrays [N, T]:

* ``mask``            1 on response tokens (required by all of them)
* ``self_certainty``  sc_t = logsumexp(z_t) - mean_v z_{t,v} - log V   (``self_certainty``)
* ``entropy``         H_t of the policy's next-token distribution     (``neg_entropy``)
* ``logp``            log pi(y_t | x, y_<t) of the sampled token       (``mean_logp``)

all under the sampling temperature's logits z_t / tau.
"""
from __future__ import annotations

import collections
from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.rewards.extract import extract_answer, normalize_answer
from rlvr_jax.rewards.registry import REWARDS, RewardConfigError, RewardOutput, register_reward


def majority_answers(answers: Sequence[str | None]) -> tuple[str | None, int]:
  """The most common non-None answer and its count; ties go to the answer seen first."""
  counts = collections.Counter(a for a in answers if a is not None)
  if not counts:
    return None, 0
  return counts.most_common(1)[0]  # most_common is stable: first-seen wins a tie


# Rewards computed without the gold answer: the trainer logs their agreement with the ground truth
# ("reward_accuracy") when a correctness reward is configured (EpisodeContext.score).
LABEL_FREE = frozenset({"majority_vote", "consensus", "self_certainty", "neg_entropy",
                        "mean_logp"})
# Rewards that never read a gold answer (test-time RL accepts only these; majority_vote only
# without ``hybrid``). A verifier that re-derives the answer from the question is not among them.
GOLD_FREE = LABEL_FREE | {"format", "overlong"}


@register_reward("majority_vote")
def majority_vote_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    group_size: int,
    extract: str = "auto",
    hybrid: bool = False,
    equivalence: str = "string",
    max_distinct: int = 16,
    timeout: float = 5.0,
) -> RewardOutput:
  """TTRL (arXiv 2504.16084, sec. 3): per prompt, the pseudo-label is the majority answer of its G
  samples, y* = mode(ans(y_1..y_G)) over parseable answers, and r_i = 1[ans(y_i) = y*].

  Answers are compared after ``extract_answer`` + ``normalize_answer`` (string equality; TTRL's
  code compares with its math grader). A group with no parseable answer scores 0. TTRL votes
  with N = 64 samples and trains on the first n = 32: sample G = N and subsample in the trainer.
  Metrics: ``label_accuracy`` (fraction of groups whose pseudo-label equals the gold answer, over
  rows that have a non-empty gold), ``majority_ratio`` (mean count(y*) / G), ``unparsed_frac``
  (samples with no parseable answer) and ``no_vote_frac`` (groups where no sample parsed: all 0).

  ``equivalence="math"``: answers that math-verify finds equal (``1/2`` and ``0.5``, ``\\frac{1}{2}``)
  vote together, as TTRL's grader does; the ``max_distinct`` most frequent distinct answers of a
  group are compared pairwise in the shared math-verify pool (``timeout`` seconds per pair; a pair
  that times out or fails counts as different, ``equivalence_timeout``), the rest by string.

  ``hybrid`` (TTRL's repository option; docs/papers.md 2.2): a group where some sample matches the
  gold answer is rewarded against the gold (r_i = 1[ans(y_i) = gold]); only groups with no correct
  sample fall back to the vote. It reads the gold, so it is semi-supervised, not label-free
  (``hybrid_frac``: the fraction of groups rewarded against the gold).
  """
  n = len(completions)
  if group_size is None or group_size < 1 or n % group_size:
    raise RewardConfigError(f"group_size={group_size} does not divide {n} completions")
  if equivalence not in ("string", "math"):
    raise RewardConfigError(f"majority_vote equivalence={equivalence!r}; choose 'string' or 'math'")
  answers = [normalize_answer(extract_answer(text, extract)) for text in completions]
  eq_timeouts = 0
  if equivalence == "math":
    answers, eq_timeouts = _merge_equivalent(answers, group_size, max_distinct, timeout)
  scores = np.zeros(n, np.float32)
  hits, labelled, ratios, gold_groups = 0, 0, [], 0
  for start in range(0, n, group_size):
    group = answers[start : start + group_size]
    label, count = majority_answers(group)
    ratios.append(count / group_size)
    gold = str(examples[start].get("answer", "") or "")
    gold_norm = normalize_answer(gold) if gold else None
    if hybrid and gold_norm is None:
      raise RewardConfigError(f"majority_vote(hybrid=True) needs the gold answer; example "
                              f"{examples[start].get('id')!r} has none")
    if hybrid and any(a == gold_norm for a in group):
      scores[start : start + group_size] = [a == gold_norm for a in group]
      gold_groups += 1
    elif label is not None:
      scores[start : start + group_size] = [a == label for a in group]
    if gold:
      labelled += 1
      hits += label is not None and label == gold_norm
  metrics = {"majority_ratio": float(np.mean(ratios)) if ratios else 0.0,
             # counted, not fatal: samples with no parseable answer, groups with nothing to vote on
             "unparsed_frac": float(np.mean([a is None for a in answers])) if answers else 0.0,
             "no_vote_frac": float(np.mean([r == 0 for r in ratios])) if ratios else 0.0}
  if labelled:
    metrics["label_accuracy"] = hits / labelled
  if hybrid:
    metrics["hybrid_frac"] = gold_groups / max(1, n // group_size)
  if equivalence == "math":
    metrics["equivalence_timeout"] = float(eq_timeouts)
  return RewardOutput(scores, None, metrics)


@register_reward("consensus")
def consensus_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    group_size: int,
    extract: str = "auto",
    choices: Sequence[str] | None = None,
) -> RewardOutput:
  """KnowRL's consensus reward (Oct 2025; docs/papers.md 1.1, from the abstract: "stability of
  self-knowledge assessment is reinforced through internal agreement") [inferred from abstract]:
  a sample is rewarded by the share of the *other* samples of its group that give the same answer,

      r_i = (#{j != i : ans(y_j) = ans(y_i)}) / (G - 1),   0 when ans(y_i) is unparsed.

  Unlike the 0/1 majority vote, every answer shared by several samples earns something, in
  proportion to its support. ``choices`` (e.g. ``["feasible", "infeasible"]``, compared after
  normalisation) restricts the answers that count; others are unparsed. Metrics: ``agreement``
  (mean r), ``unparsed_frac``, and ``label_accuracy`` (the group's most common answer against the
  gold, over groups that have one; diagnostics only, the reward never reads the gold).
  """
  n = len(completions)
  if group_size is None or group_size < 2 or n % group_size:
    raise RewardConfigError(f"consensus needs groups of >= 2 samples; group_size={group_size} "
                            f"for {n} completions")
  allowed = None if choices is None else {normalize_answer(c) for c in choices}
  answers = [normalize_answer(extract_answer(t, extract)) for t in completions]
  if allowed is not None:
    answers = [a if a in allowed else None for a in answers]
  scores = np.zeros(n, np.float32)
  hits, graded = 0, 0
  for start in range(0, n, group_size):
    group = answers[start:start + group_size]
    counts = collections.Counter(a for a in group if a is not None)
    scores[start:start + group_size] = [
        (counts[a] - 1) / (group_size - 1) if a is not None else 0.0 for a in group]
    gold = str(examples[start].get("answer", "") or "")
    if gold:
      graded += 1
      hits += majority_answers(group)[0] == normalize_answer(gold)
  metrics = {"agreement": float(scores.mean()) if n else 0.0,
             "unparsed_frac": float(np.mean([a is None for a in answers])) if n else 0.0}
  if graded:
    metrics["label_accuracy"] = hits / graded
  return RewardOutput(scores, None, metrics)


def strict_majority(answers: Sequence[str | None]) -> tuple[str | None, int]:
  """The most common non-None answer when no other answer ties it, else (None, count): TraPO's
  code gives a group whose top count is shared no pseudo-label."""
  counts = collections.Counter(a for a in answers if a is not None).most_common(2)
  if not counts or (len(counts) == 2 and counts[0][1] == counts[1][1]):
    return None, counts[0][1] if counts else 0
  return counts[0]


@register_reward("trapo")
def trapo_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    group_size: int,
    verifier: str = "math_verify",
    verifier_options: Mapping | None = None,
    extract: str = "auto",
    strict: bool = True,
) -> RewardOutput:
  """TraPO's semi-supervised reward (arXiv 2512.13106; code semi_ray_trainer.py;
  docs/papers.md 2.2).

  A row with ``labelled`` True is scored by the ``verifier`` reward against its gold answer. A row
  with ``labelled`` False is scored by the vote of its group: r_i = 1[ans(y_i) = y*], y* the
  majority answer; with ``strict`` (the code's rule) a tie for the top count gives no pseudo-label
  and every sample of the group 0. Unlabelled rows' gold answers are never read for the reward;
  they feed only the metrics ``label_accuracy`` (pseudo-labels of unlabelled groups that equal the
  gold, over groups that have one) and ``labelled_frac`` (labelled groups / groups).
  Rows need the ``labelled`` flag (``config.data.labelled_fraction`` adds it).
  """
  n = len(completions)
  if group_size is None or group_size < 1 or n % group_size:
    raise RewardConfigError(f"group_size={group_size} does not divide {n} completions")
  if verifier not in REWARDS or verifier in ("trapo", *LABEL_FREE):
    raise RewardConfigError(f"trapo verifier={verifier!r}: name a gold-answer reward (e.g. "
                            f"'math_verify', 'exact_match', 'reasoning_gym')")
  missing = [ex.get("id") for ex in examples if "labelled" not in ex]
  if missing:
    raise RewardConfigError(f"trapo needs a 'labelled' flag on every row (set "
                            f"config.data.labelled_fraction); rows without it: {missing[:3]}")
  labelled = np.array([bool(ex["labelled"]) for ex in examples])
  scores = np.zeros(n, np.float32)
  rows = np.flatnonzero(labelled)
  if len(rows):
    out = REWARDS[verifier]([completions[i] for i in rows], [examples[i] for i in rows],
                            **dict(verifier_options or {}))
    scores[rows] = np.asarray(out.scores if isinstance(out, RewardOutput) else out, np.float32)
  vote = strict_majority if strict else majority_answers
  hits, graded, groups = 0, 0, n // group_size
  for start in range(0, n, group_size):
    if labelled[start]:
      continue
    answers = [normalize_answer(extract_answer(t, extract))
               for t in completions[start:start + group_size]]
    label, _ = vote(answers)
    if label is not None:
      scores[start:start + group_size] = [a == label for a in answers]
    gold = str(examples[start].get("answer", "") or "")  # diagnostics only
    if gold:
      graded += 1
      hits += label is not None and label == normalize_answer(gold)
  metrics = {"labelled_frac": float(labelled[::group_size].mean()) if groups else 0.0}
  if graded:
    metrics["label_accuracy"] = hits / graded
  return RewardOutput(scores, None, metrics)


def _merge_equivalent(answers: list[str | None], group_size: int, max_distinct: int,
                      timeout: float) -> tuple[list[str | None], int]:
  """Rewrites each answer to the first-seen member of its math-equivalence class, per group."""
  from rlvr_jax.rewards import pool as pool_lib  # pylint: disable=import-outside-toplevel
  from rlvr_jax.rewards import verifiers  # pylint: disable=import-outside-toplevel
  pairs: dict[tuple[str, str, bool], list[int]] = {}
  groups = []
  for start in range(0, len(answers), group_size):
    counts = collections.Counter(a for a in answers[start:start + group_size] if a is not None)
    distinct = [a for a, _ in counts.most_common(max(0, int(max_distinct)))]
    groups.append(distinct)
    for i, a in enumerate(distinct):
      for b in distinct[i + 1:]:
        pairs.setdefault((a, b, True), []).append(len(groups) - 1)
  equal: set[tuple[str, str]] = set()
  timeouts = 0
  if pairs:
    pool = pool_lib.get_pool("math_verify", initializer=verifiers._init_math_worker)  # pylint: disable=protected-access
    keys = list(pairs)
    for key, (status, value) in zip(keys, pool.map(verifiers.math_verify_task, keys,
                                                   timeout=timeout)):
      if status == "ok" and value:
        equal.add(key[:2])
      elif status != "ok":
        timeouts += 1
  out = list(answers)
  for g, distinct in enumerate(groups):
    rep = {}
    for i, a in enumerate(distinct):  # most frequent first: the first equal earlier one represents
      rep[a] = next((rep[b] for b in distinct[:i] if (b, a) in equal), a)
    start = g * group_size
    out[start:start + group_size] = [rep.get(a, a) for a in answers[start:start + group_size]]
  return out, timeouts


def _masked_mean(token_stats: Mapping[str, np.ndarray] | None, key: str, reward: str) -> np.ndarray:
  if token_stats is None or key not in token_stats or "mask" not in token_stats:
    raise RewardConfigError(
        f"reward {reward!r} needs token_stats[{key!r}] and token_stats['mask'] ([N, T] arrays); "
        f"got keys {sorted(token_stats or {})}"
    )
  values = np.asarray(token_stats[key], np.float64)
  mask = np.asarray(token_stats["mask"], np.float64)
  if values.shape != mask.shape:
    raise RewardConfigError(f"token_stats[{key!r}] {values.shape} and mask {mask.shape} differ")
  count = mask.sum(-1)
  total = (values * mask).sum(-1)
  # An empty response has no confidence signal: score 0 rather than NaN (NaN would count as failure).
  return np.where(count > 0, total / np.maximum(count, 1.0), 0.0).astype(np.float32)


def _check_rows(scores: np.ndarray, completions: Sequence[str], reward: str) -> np.ndarray:
  if scores.shape != (len(completions),):
    raise RewardConfigError(f"reward {reward!r}: token_stats rows {scores.shape[0]} != {len(completions)}")
  return scores


@register_reward("self_certainty")
def self_certainty_reward(completions, examples, *, token_stats=None) -> np.ndarray:
  """Intuitor (arXiv 2505.19590, sec. 3): r = (1/|y|) sum_t sc_t, the mean over response tokens of
  KL(Uniform || pi(.|x, y_<t)). Needs ``token_stats["self_certainty"]`` and ``["mask"]``."""
  del examples
  return _check_rows(_masked_mean(token_stats, "self_certainty", "self_certainty"), completions, "self_certainty")


@register_reward("neg_entropy")
def neg_entropy_reward(completions, examples, *, token_stats=None) -> np.ndarray:
  """r = -(1/|y|) sum_t H_t (Intuitor's / TTRL's entropy sibling, as a confidence reward)."""
  del examples
  return _check_rows(-_masked_mean(token_stats, "entropy", "neg_entropy"), completions, "neg_entropy")


@register_reward("mean_logp")
def mean_logp_reward(completions, examples, *, token_stats=None) -> np.ndarray:
  """r = (1/|y|) sum_t log pi(y_t | x, y_<t) (length-normalised sequence log-likelihood)."""
  del examples
  return _check_rows(_masked_mean(token_stats, "logp", "mean_logp"), completions, "mean_logp")
