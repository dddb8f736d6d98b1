"""Sampling-based evaluation metrics: unbiased pass@k, maj@k, greedy accuracy, eval.json summary.

Catalog section 2.9 ("Evaluation metrics the library must ship").

* pass@k (Chen et al., 2021, arXiv:2107.03374, eq. 1): with n samples per problem of which c are
  correct, the probability that a uniformly random k-subset holds at least one correct sample is
  ``1 - C(n-c, k) / C(n, k)``. The ratio is computed as ``prod_{i=n-c+1}^{n} (1 - k/i)``, which
  never forms the huge binomials (n = 1024 in the Limit-of-RLVR curves, Yue et al., 2025,
  arXiv:2504.13837).
* CoT-pass@k (docs/papers.md 2.9; Wen et al., 2025, "RLVR implicitly incentivizes correct
  reasoning in base LLMs"): pass@k where a sample counts only if its answer is correct AND its
  reasoning steps check out (``summarize(..., steps_ok=...)``; the step checker is task-specific
  and lives with the task).
* maj@k (self-consistency, Wang et al., 2022, arXiv:2203.11171): a majority vote over the first k
  sampled answers; the problem counts as solved when the winning answer is correct.
  Vote rules: ``None`` answers (nothing extracted) abstain; answers are compared as exact strings,
  so normalise them first; ties go to the tied answer that appears first among the k samples; the
  winner's correctness is ``correct`` at its first occurrence; a problem where all k abstain is
  unsolved.
* expected maj@k: the same vote averaged over all k-subsets (uniformly random order), computed
  exactly. The first-occurrence tie rule becomes a uniform tie break under a random order, so this
  is the mean of maj@k over random permutations of the n samples, with no sampling noise.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from jaxtyping import Bool, Float, Int


def pass_at_k(num_samples: Int[np.ndarray, "P"] | int, num_correct: Int[np.ndarray, "P"] | int,
              k: int) -> Float[np.ndarray, "P"]:
    """Unbiased per-problem pass@k = 1 - C(n-c, k)/C(n, k), in a numerically stable product form."""
    n = np.asarray(num_samples, np.int64)
    c = np.asarray(num_correct, np.int64)
    n, c = np.broadcast_arrays(n, c)
    if k < 1:
        raise ValueError(f"pass@k needs k >= 1, got k={k}")
    if np.any(c < 0) or np.any(c > n):
        raise ValueError("pass@k needs 0 <= num_correct <= num_samples for every problem")
    if np.any(n < k):
        raise ValueError(f"pass@{k} needs at least k={k} samples per problem (min n={n.min()})")
    out = np.ones(n.shape, np.float64)  # [P]
    for idx in np.ndindex(n.shape):
        ni, ci = int(n[idx]), int(c[idx])
        if ni - ci >= k:  # otherwise every k-subset holds a correct sample
            i = np.arange(ni - ci + 1, ni + 1, dtype=np.float64)  # [c]
            out[idx] = 1.0 - np.prod(1.0 - k / i)
    return out


def mean_pass_at_k(correct: Bool[np.ndarray, "P n"], k: int) -> float:
    """pass@k averaged over problems, from a [P, n] correctness matrix."""
    correct = _as_bool_matrix(correct)
    return float(np.mean(pass_at_k(correct.shape[1], correct.sum(axis=1), k)))


def mean_accuracy(correct: Bool[np.ndarray, "P n"]) -> float:
    """Mean correctness over all samples (avg@n; equals pass@1)."""
    return float(np.mean(_as_bool_matrix(correct)))


def greedy_accuracy(correct: Bool[np.ndarray, "P"] | Bool[np.ndarray, "P 1"]) -> float:
    """Accuracy of one greedy (temperature 0) answer per problem."""
    correct = np.asarray(correct, bool)
    if correct.ndim == 2 and correct.shape[1] == 1:
        correct = correct[:, 0]
    if correct.ndim != 1 or correct.size == 0:
        raise ValueError(f"greedy_accuracy wants correct of shape [P] or [P, 1], got {correct.shape}")
    return float(np.mean(correct))


def majority_vote(answers: Sequence[str | None]) -> int | None:
    """Index of the first occurrence of the winning answer (rules in the module docstring)."""
    counts: dict[str, int] = {}
    first: dict[str, int] = {}
    for j, answer in enumerate(answers):
        if answer is None:
            continue
        counts[answer] = counts.get(answer, 0) + 1
        first.setdefault(answer, j)
    if not counts:
        return None
    # max over (count, -first index): most votes, then earliest first appearance.
    winner = max(counts, key=lambda a: (counts[a], -first[a]))
    return first[winner]


def maj_at_k(correct: Bool[np.ndarray, "P n"], answers: Sequence[Sequence[str | None]],
             k: int) -> float:
    """Fraction of problems whose majority answer over the first k samples is correct."""
    correct = _as_bool_matrix(correct)
    _check_answers(answers, correct.shape)
    if not 1 <= k <= correct.shape[1]:
        raise ValueError(f"maj@{k} needs 1 <= k <= n={correct.shape[1]}")
    solved = []
    for p in range(correct.shape[0]):
        j = majority_vote(list(answers[p][:k]))
        solved.append(j is not None and bool(correct[p, j]))
    return float(np.mean(solved))


def _vote_classes(correct_row, answers_row) -> tuple[list[int], list[bool], int]:
    """Per distinct answer: its count and its correctness (at first occurrence); abstentions."""
    counts: dict[str, int] = {}
    verdict: dict[str, bool] = {}
    abstain = 0
    for answer, ok in zip(answers_row, correct_row):
        if answer is None:
            abstain += 1
            continue
        counts[answer] = counts.get(answer, 0) + 1
        verdict.setdefault(answer, bool(ok))
    return list(counts.values()), [verdict[a] for a in counts], abstain


def expected_vote_accuracy(counts: Sequence[int], is_correct: Sequence[bool], abstain: int,
                           k: int) -> float:
    """P(a correct answer wins the vote of a uniformly random k-subset), ties broken uniformly.

    Subset counts follow a multivariate hypergeometric law. Weighting every class by
    ``Binomial(y; n_j, p)`` with p = k/n turns it into a product of binomial factors divided by
    ``Binomial(k; n, p)`` (the ``p^y (1-p)^(n-y)`` terms cancel), which keeps all numbers in [0, 1].
    For a correct class A getting x votes, classes with fewer than x members can never tie or win
    and pool into one ``Binomial(sum n_j, p)`` factor; each larger class contributes a factor
    truncated at x votes that also counts ties (column t of the [s, t] table), each tie dividing
    the win by (t + 1). Cost ~ sum over x of (n / x) convolutions: fine for n up to a few hundred.
    """
    from scipy import signal, stats  # here, not at the top: scipy.stats costs ~0.3 s to import

    counts = np.asarray(counts, np.int64)
    n = int(counts.sum()) + int(abstain)
    if not 1 <= k <= n:
        raise ValueError(f"expected maj@{k} needs 1 <= k <= n={n}")
    p = k / n
    total = 0.0
    for a in np.flatnonzero(np.asarray(is_correct, bool)):
        others = np.delete(counts, a)  # [C-1]
        for x in range(1, min(int(counts[a]), k) + 1):
            rem = k - x  # votes left for the other classes and abstentions
            big = others[others >= x]
            pooled = int(others[others < x].sum()) + int(abstain)
            table = np.zeros((rem + 1, len(big) + 1))  # [s, t]: s votes used, t classes tied at x
            table[:, 0] = stats.binom.pmf(np.arange(rem + 1), pooled, p)
            for size in big:
                w = stats.binom.pmf(np.arange(x + 1), int(size), p)  # [x+1]
                kernel = np.zeros((x + 1, 2))
                kernel[:x, 0] = w[:x]  # fewer than x votes: no tie
                kernel[x, 1] = w[x]  # exactly x votes: one more tie
                table = signal.convolve2d(table, kernel)[: rem + 1, : table.shape[1]]
            win = np.sum(table[rem] / np.arange(1, table.shape[1] + 1))
            total += stats.binom.pmf(x, int(counts[a]), p) * win
    return float(total / stats.binom.pmf(k, n, p))


def expected_maj_at_k(correct: Bool[np.ndarray, "P n"], answers: Sequence[Sequence[str | None]],
                      k: int) -> float:
    """maj@k averaged exactly over uniformly random k-subsets of each problem's n samples."""
    correct = _as_bool_matrix(correct)
    _check_answers(answers, correct.shape)
    values = []
    for p in range(correct.shape[0]):
        counts, is_correct, abstain = _vote_classes(correct[p], answers[p])
        values.append(expected_vote_accuracy(counts, is_correct, abstain, k) if any(is_correct)
                      else 0.0)
    return float(np.mean(values))


def default_ks(n: int) -> list[int]:
    """Powers of two up to n, and n itself."""
    ks = [1 << i for i in range(n.bit_length()) if (1 << i) <= n]
    return ks if ks[-1] == n else ks + [n]


def summarize(correct: Bool[np.ndarray, "P n"], answers: Sequence[Sequence[str | None]],
              gold: Sequence[Any], *, ks: Sequence[int] | None = None,
              greedy_correct: Bool[np.ndarray, "P"] | None = None,
              max_expected_k: int = 64, per_problem: bool = False,
              steps_ok: Bool[np.ndarray, "P n"] | None = None) -> dict:
    """Flat JSON-ready metrics for eval.json.

    Keys: num_problems, num_samples, mean_accuracy, ``pass@k`` and ``maj@k`` (first k) for each k,
    ``maj@k_expected`` for k <= max_expected_k, ``greedy_accuracy`` when ``greedy_correct`` is
    given, and with ``per_problem=True`` a list of {gold, majority, num_correct} rows.

    ``steps_ok`` [P, n]: whether each sample's reasoning steps check out (a step checker's verdict).
    With it, ``cot_pass@k`` is pass@k counting only samples whose answer AND steps are correct
    (CoT-pass@k, docs/papers.md 2.9), and ``cot_mean_accuracy`` is their share.
    """
    correct = _as_bool_matrix(correct)
    num_problems, n = correct.shape
    _check_answers(answers, correct.shape)
    if steps_ok is not None:
        steps_ok = _as_bool_matrix(steps_ok)
        if steps_ok.shape != correct.shape:
            raise ValueError(f"summarize: steps_ok has shape {steps_ok.shape}, correct has "
                             f"{correct.shape}; pass one verdict per sample")
    if len(gold) != num_problems:
        raise ValueError(f"summarize: gold has {len(gold)} entries for {num_problems} problems")
    ks = default_ks(n) if ks is None else sorted(set(int(k) for k in ks))
    bad = [k for k in ks if not 1 <= k <= n]
    if bad:
        raise ValueError(f"summarize: ks {bad} outside [1, n={n}]")
    num_correct = correct.sum(axis=1)  # [P]
    out: dict[str, Any] = {"num_problems": int(num_problems), "num_samples": int(n),
                           "mean_accuracy": mean_accuracy(correct)}
    for k in ks:
        out[f"pass@{k}"] = float(np.mean(pass_at_k(n, num_correct, k)))
    if steps_ok is not None:
        cot_correct = correct & steps_ok  # [P, n]
        out["cot_mean_accuracy"] = mean_accuracy(cot_correct)
        for k in ks:
            out[f"cot_pass@{k}"] = float(np.mean(pass_at_k(n, cot_correct.sum(axis=1), k)))
    for k in ks:
        out[f"maj@{k}"] = maj_at_k(correct, answers, k)
    for k in ks:
        if k <= max_expected_k:
            out[f"maj@{k}_expected"] = expected_maj_at_k(correct, answers, k)
    if greedy_correct is not None:
        out["greedy_accuracy"] = greedy_accuracy(greedy_correct)
    if per_problem:
        rows = []
        for p in range(num_problems):
            j = majority_vote(list(answers[p]))
            rows.append({"gold": str(gold[p]), "majority": None if j is None else answers[p][j],
                         "num_correct": int(num_correct[p])})
        out["per_problem"] = rows
    return out


def _as_bool_matrix(correct) -> np.ndarray:
    correct = np.asarray(correct)
    if correct.ndim != 2 or correct.shape[0] == 0 or correct.shape[1] == 0:
        raise ValueError(f"correct must be a non-empty [P, n] matrix, got shape {correct.shape}")
    if correct.dtype != bool:
        if not np.isin(correct, (0, 1)).all():
            raise ValueError("correct must hold booleans (or 0/1); threshold partial rewards first")
        correct = correct.astype(bool)
    return correct


def _check_answers(answers, shape) -> None:
    if len(answers) != shape[0]:
        raise ValueError(f"answers has {len(answers)} rows for {shape[0]} problems")
    for p, row in enumerate(answers):
        if len(row) != shape[1]:
            raise ValueError(f"answers row {p} has {len(row)} entries, correct has {shape[1]}")
