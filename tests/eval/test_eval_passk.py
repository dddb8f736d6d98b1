"""pass@k / maj@k: hand-computed cases, exact binomial oracle, brute force, Monte Carlo."""
import itertools
import math

import numpy as np
import pytest

from rlvr_jax.eval import passk


def test_pass_at_k_hand_cases():
    # n=5, c=2, k=2: 1 - C(3,2)/C(5,2) = 1 - 3/10.
    assert passk.pass_at_k(5, 2, 2) == pytest.approx(0.7, abs=1e-15)
    assert passk.pass_at_k(5, 0, 3) == 0.0
    assert passk.pass_at_k(5, 3, 3) == 1.0  # n - c < k: every subset has a correct sample
    assert passk.pass_at_k(4, 1, 1) == pytest.approx(0.25)
    np.testing.assert_allclose(passk.pass_at_k(10, np.array([0, 1, 10]), 1), [0.0, 0.1, 1.0])
    with pytest.raises(ValueError, match="at least k=6"):
        passk.pass_at_k(5, 1, 6)
    with pytest.raises(ValueError, match="num_correct"):
        passk.pass_at_k(5, 6, 1)


def test_pass_at_k_matches_exact_binomials_for_large_n():
    # Exact integer arithmetic as the oracle; C(1024, 512) overflows float64 in the naive form.
    for n, c, k in [(1024, 3, 512), (1024, 100, 16), (256, 255, 2), (300, 1, 299)]:
        exact = 1 - math.comb(n - c, k) / math.comb(n, k)
        assert passk.pass_at_k(n, c, k) == pytest.approx(exact, rel=1e-12, abs=1e-15)


def test_pass_at_k_monte_carlo():
    rng = np.random.default_rng(0)
    n, k, draws = 12, 4, 40_000
    correct = rng.random((3, n)) < np.array([[0.1], [0.3], [0.6]])
    subsets = np.argsort(rng.random((draws, n)), axis=1)[:, :k]  # uniform k-subsets
    for p in range(3):
        mc = correct[p][subsets].any(axis=1).mean()
        exact = passk.pass_at_k(n, correct[p].sum(), k)
        assert abs(mc - exact) < 4 * math.sqrt(exact * (1 - exact) / draws) + 1e-9


def test_majority_vote_rules():
    assert passk.majority_vote(["b", "a", "a", "b"]) == 0  # tie: earliest first occurrence wins
    assert passk.majority_vote([None, "x", None, "y", "y"]) == 3  # abstentions do not vote
    assert passk.majority_vote([None, None]) is None


def test_maj_at_k_hand_case():
    answers = [["1", "2", "2", "1", "1"],   # first 3: "2" wins (wrong); all 5: "1" (right)
               ["7", None, None, "8", "8"],
               [None, None, None, None, None]]
    correct = np.array([[a == g for a in row] for row, g in zip(answers, ["1", "8", "0"])])
    assert passk.maj_at_k(correct, answers, 1) == pytest.approx(1 / 3)  # "1" right, "7" wrong
    assert passk.maj_at_k(correct, answers, 3) == 0.0
    assert passk.maj_at_k(correct, answers, 5) == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match="k <= n"):
        passk.maj_at_k(correct, answers, 6)


def _brute_force_expected_maj(answers, verdict, k):
    """Average over all k-subsets; ties split uniformly (a random order's first occurrence)."""
    total, count = 0.0, 0
    for subset in itertools.combinations(range(len(answers)), k):
        votes = {}
        for j in subset:
            if answers[j] is not None:
                votes[answers[j]] = votes.get(answers[j], 0) + 1
        count += 1
        if votes:
            top = max(votes.values())
            tied = [a for a, v in votes.items() if v == top]
            total += sum(verdict[a] for a in tied) / len(tied)
    return total / count


def test_expected_maj_at_k_matches_brute_force():
    rng = np.random.default_rng(1)
    pool = ["a", "b", "c", "d", None]
    for _ in range(25):
        n = int(rng.integers(1, 9))
        k = int(rng.integers(1, n + 1))
        answers = [pool[i] for i in rng.integers(0, 5, n)]
        verdict = {"a": True, "b": False, "c": bool(rng.integers(2)), "d": False}
        correct = np.array([[verdict.get(a, False) for a in answers]])
        got = passk.expected_maj_at_k(correct, [answers], k)
        assert got == pytest.approx(_brute_force_expected_maj(answers, verdict, k), abs=1e-12)


def test_expected_maj_at_k_monte_carlo_of_first_k_rule():
    # The expectation equals the first-k maj@k averaged over random sample orders.
    rng = np.random.default_rng(2)
    n, k, draws = 40, 9, 3000
    answers = [str(x) for x in rng.choice(6, size=n, p=[0.3, 0.25, 0.2, 0.1, 0.1, 0.05])]
    answers[5] = None
    correct = np.array([[a == "1" for a in answers]])
    exact = passk.expected_maj_at_k(correct, [answers], k)
    wins = []
    for _ in range(draws):
        perm = rng.permutation(n)
        wins.append(passk.maj_at_k(correct[:, perm], [[answers[j] for j in perm]], k))
    se = math.sqrt(exact * (1 - exact) / draws)
    assert abs(np.mean(wins) - exact) < 4 * se + 1e-9 and 0.05 < exact < 0.95


def test_summarize_keys_and_values():
    answers = [["3", "3", "4", "5"], ["1", None, "2", "2"]]
    gold = ["3", "1"]
    correct = np.array([[a == g for a in row] for row, g in zip(answers, gold)])
    out = passk.summarize(correct, answers, gold, greedy_correct=np.array([True, False]),
                          per_problem=True)
    assert out["num_problems"] == 2 and out["num_samples"] == 4
    assert out["mean_accuracy"] == pytest.approx(3 / 8) == out["pass@1"]
    # problem 0: c=2 -> pass@2 = 1 - C(2,2)/C(4,2) = 5/6; problem 1: c=1 -> 1 - C(3,2)/C(4,2) = 1/2.
    assert out["pass@2"] == pytest.approx((5 / 6 + 1 / 2) / 2)
    assert out["pass@4"] == 1.0
    assert out["maj@4"] == pytest.approx(0.5)  # "3" wins (right); "2" wins (wrong)
    assert out["maj@1_expected"] == pytest.approx(out["pass@1"])
    assert out["greedy_accuracy"] == 0.5
    assert out["per_problem"][1] == {"gold": "1", "majority": "2", "num_correct": 1}
    assert set(out) >= {"pass@1", "pass@2", "pass@4", "maj@1", "maj@2", "maj@4"}
    with pytest.raises(ValueError, match="gold"):
        passk.summarize(correct, answers, ["3"])
    with pytest.raises(ValueError, match="row 1"):
        passk.summarize(correct, [answers[0], answers[1][:3]], gold)
    assert passk.default_ks(6) == [1, 2, 4, 6]


def test_summarize_cot_pass_at_k_hand_case():
    # Problem 0: answers right on samples 0, 1, steps right on 1, 2 -> only sample 1 counts (c=1).
    # Problem 1: answers right on 0..3, steps right on 0, 3 -> c=2. n = 4.
    correct = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    steps_ok = np.array([[0, 1, 1, 0], [1, 0, 0, 1]], bool)
    answers = [["a", "a", "b", "c"], ["d", "d", "d", "d"]]
    out = passk.summarize(correct, answers, ["a", "d"], ks=[1, 2], steps_ok=steps_ok)
    # cot_pass@1 = (1/4 + 2/4) / 2 = 3/8.
    assert out["cot_pass@1"] == pytest.approx(3 / 8) == out["cot_mean_accuracy"]
    # cot_pass@2: problem 0 (c=1): 1 - C(3,2)/C(4,2) = 1 - 3/6 = 1/2;
    # problem 1 (c=2): 1 - C(2,2)/C(4,2) = 1 - 1/6 = 5/6. Mean (1/2 + 5/6) / 2 = 2/3.
    assert out["cot_pass@2"] == pytest.approx(2 / 3)
    # Plain pass@2 ignores the steps: problem 0 (c=2) 5/6, problem 1 (c=4) 1 -> 11/12.
    assert out["pass@2"] == pytest.approx(11 / 12)
    assert "cot_pass@1" not in passk.summarize(correct, answers, ["a", "d"], ks=[1])
    with pytest.raises(ValueError, match="steps_ok"):
        passk.summarize(correct, answers, ["a", "d"], steps_ok=steps_ok[:, :3])
