"""rlvr_jax.eval.metrics: every metric on a case worked out by hand in the comments."""
import numpy as np
import pytest

from rlvr_jax.eval import metrics


def test_per_problem_change_hand_case():
  base = np.array([[1, 0, 0, 0],   # 1/4 = 0.25
                   [1, 1, 0, 0],   # 2/4 = 0.5
                   [0, 0, 0, 0],   # 0
                   [1, 1, 1, 1]],  # 1
                  bool)
  new = np.array([[1, 1],   # 1.0  -> delta +0.75 (win)
                  [0, 1],   # 0.5  -> delta  0    (tie)
                  [0, 0],   # 0    -> delta  0    (tie)
                  [1, 0]],  # 0.5  -> delta -0.5  (loss)
                 bool)
  out = metrics.per_problem_change(base, new)
  np.testing.assert_allclose(out["base_acc"], [0.25, 0.5, 0.0, 1.0])
  np.testing.assert_allclose(out["new_acc"], [1.0, 0.5, 0.0, 0.5])
  np.testing.assert_allclose(out["delta"], [0.75, 0.0, 0.0, -0.5])
  assert (out["wins"], out["losses"], out["ties"], out["num_problems"]) == (1, 1, 2, 4)
  assert out["mean_delta"] == pytest.approx(0.0625)  # (0.75 - 0.5) / 4
  # deviations from 0.0625: 0.6875, -0.0625, -0.0625, -0.5625; squares sum to
  # 0.47265625 + 0.00390625 + 0.00390625 + 0.31640625 = 0.796875; var (ddof 1) = 0.796875 / 3;
  # se^2 = var / P = 0.796875 / 12 = 0.06640625.
  assert out["mean_delta_se"] ** 2 == pytest.approx(0.06640625)


def test_per_problem_change_ties_are_exact_and_errors():
  # 1/3 vs 2/6: equal accuracies from different n are a tie, not a float-rounding win or loss.
  out = metrics.per_problem_change(np.array([[1, 0, 0]]), np.array([[1, 1, 0, 0, 0, 0]]))
  assert (out["wins"], out["losses"], out["ties"]) == (0, 0, 1)
  assert np.isnan(out["mean_delta_se"])  # one problem: no spread to estimate
  with pytest.raises(ValueError, match="same problems"):
    metrics.per_problem_change(np.ones((2, 3), bool), np.ones((3, 3), bool))
  with pytest.raises(ValueError, match="booleans"):
    metrics.per_problem_change(np.full((1, 2), 0.5), np.ones((1, 2), bool))


def test_winner_take_all_default_bins():
  base_acc = np.array([0.0, 0.0, 0.25, 0.3, 0.5, 0.75, 0.8, 1.0, 1.0])
  delta = np.array([0.0, 0.5, 0.25, -0.1, 0.2, 0.25, 0.1, 0.0, -0.5])
  rows = {r["bin"]: r for r in metrics.winner_take_all(base_acc, delta)}
  assert list(rows) == ["=0", "(0, 0.25]", "(0.25, 0.5]", "(0.5, 0.75]", "(0.75, 1)", "=1"]
  # {0}: problems 0, 1 -> mean delta (0 + 0.5) / 2 = 0.25, one win.
  assert rows["=0"] == {"bin": "=0", "count": 2, "mean_base_acc": 0.0, "mean_delta": 0.25,
                        "wins": 1, "losses": 0}
  # (0, 0.25]: 0.25 is in (right-closed).
  assert rows["(0, 0.25]"]["count"] == 1 and rows["(0, 0.25]"]["mean_delta"] == 0.25
  # (0.25, 0.5]: 0.3 and 0.5 -> mean base 0.4, mean delta (-0.1 + 0.2) / 2 = 0.05, 1 win 1 loss.
  r = rows["(0.25, 0.5]"]
  assert r["count"] == 2 and r["mean_base_acc"] == pytest.approx(0.4)
  assert r["mean_delta"] == pytest.approx(0.05) and (r["wins"], r["losses"]) == (1, 1)
  assert rows["(0.5, 0.75]"]["count"] == 1 and rows["(0.5, 0.75]"]["mean_base_acc"] == 0.75
  assert rows["(0.75, 1)"]["count"] == 1 and rows["(0.75, 1)"]["mean_delta"] == pytest.approx(0.1)
  # {1}: problems 7, 8 -> mean delta (0 - 0.5) / 2 = -0.25, one loss.
  assert rows["=1"]["count"] == 2 and rows["=1"]["mean_delta"] == -0.25
  assert (rows["=1"]["wins"], rows["=1"]["losses"]) == (0, 1)
  assert sum(r["count"] for r in rows.values()) == base_acc.size


def test_winner_take_all_custom_bins_and_empty_bins():
  rows = metrics.winner_take_all(np.array([0.5, 0.6]), np.array([0.1, -0.1]), bins=(0.5,))
  # bins {0}, (0, 0.5], (0.5, 1), {1}: 0.5 -> second, 0.6 -> third; the ends are empty.
  assert [r["bin"] for r in rows] == ["=0", "(0, 0.5]", "(0.5, 1)", "=1"]
  assert [r["count"] for r in rows] == [0, 1, 1, 0]
  assert rows[0]["mean_delta"] is None and rows[0]["mean_base_acc"] is None
  with pytest.raises(ValueError, match="inside"):
    metrics.winner_take_all(np.array([0.5]), np.array([0.0]), bins=(0.5, 1.0))


def test_expected_calibration_error_hand_case():
  conf = np.array([0.2, 0.4, 0.5, 0.9, 1.0, 0.6])
  correct = np.array([0, 1, 0, 1, 1, 0], bool)
  out = metrics.expected_calibration_error(conf, correct, num_bins=2)
  # bin (0, 0.5]: 0.2, 0.4, 0.5 -> acc 1/3 = 10/30, conf 1.1/3 = 11/30, gap 1/30.
  # bin (0.5, 1]: 0.9, 1.0, 0.6 -> acc 2/3, conf 2.5/3 = 5/6, gap 1/6.
  # ECE = 3/6 * 1/30 + 3/6 * 1/6 = 1/60 + 5/60 = 0.1.
  assert out["ece"] == pytest.approx(0.1)
  lo, hi = out["table"]
  assert (lo["lo"], lo["hi"], lo["count"]) == (0.0, 0.5, 3)
  assert lo["accuracy"] == pytest.approx(1 / 3) and lo["confidence"] == pytest.approx(11 / 30)
  assert hi["gap"] == pytest.approx(1 / 6)


def test_expected_calibration_error_bin_edges():
  # Ten bins: 0 goes to the first bin, 0.3 to (0.2, 0.3] (index 2; Guo et al.'s bins are
  # right-closed), 1 to the last. Gaps: conf 0 wrong -> 0, conf 1 right -> 0, conf 0.3 wrong ->
  # 0.3 with weight 1/3: ECE = 0.1.
  out = metrics.expected_calibration_error(np.array([0.0, 0.3, 1.0]), np.array([0, 0, 1]), 10)
  counts = [r["count"] for r in out["table"]]
  assert counts == [1, 0, 1, 0, 0, 0, 0, 0, 0, 1]
  assert out["table"][1]["accuracy"] is None
  assert out["ece"] == pytest.approx(0.1)
  with pytest.raises(ValueError, match=r"\[0, 1\]"):
    metrics.expected_calibration_error(np.array([1.5]), np.array([True]))


def test_auroc_hand_case_with_ties():
  scores = np.array([0.1, 0.4, 0.35, 0.8, 0.4])
  labels = np.array([0, 0, 1, 1, 1], bool)
  # positives 0.35, 0.8, 0.4 vs negatives 0.1, 0.4; pairs won: 0.35>0.1, 0.8>0.1, 0.8>0.4,
  # 0.4>0.1 (4) plus the tie 0.4=0.4 (1/2); 0.35<0.4 loses: 4.5 / (3 * 2) = 0.75.
  assert metrics.auroc(scores, labels) == pytest.approx(0.75)
  assert metrics.auroc(np.array([0.1, 0.9]), np.array([False, True])) == 1.0
  assert metrics.auroc(np.array([0.9, 0.1]), np.array([False, True])) == 0.0
  with pytest.raises(ValueError, match="0 negative"):
    metrics.auroc(np.array([0.2, 0.3]), np.array([True, True]))


def test_f1_at_threshold_hand_case():
  scores = np.array([0.9, 0.6, 0.5, 0.4, 0.1])
  labels = np.array([1, 0, 1, 1, 0], bool)
  # threshold 0.55 predicts [1, 1, 0, 0, 0]: tp 1 (0.9), fp 1 (0.6), fn 2 (0.5, 0.4), tn 1.
  # precision 1/2, recall 1/3, F1 = 2 * (1/6) / (5/6) = 0.4.
  out = metrics.f1_at_threshold(scores, labels, threshold=0.55)
  assert (out["tp"], out["fp"], out["fn"], out["tn"]) == (1, 1, 2, 1)
  assert out["precision"] == pytest.approx(0.5) and out["recall"] == pytest.approx(1 / 3)
  assert out["f1"] == pytest.approx(0.4)
  # threshold 0.5 is inclusive: 0.5 counts as a positive prediction -> tp 2, fp 1, fn 1.
  assert metrics.f1_at_threshold(scores, labels)["f1"] == pytest.approx(2 / 3)
  # No positive prediction: 0/0 precision and then F1 are 0 by definition.
  none = metrics.f1_at_threshold(scores, labels, threshold=2.0)
  assert (none["precision"], none["recall"], none["f1"]) == (0.0, 0.0, 0.0)


def test_reward_accuracy_hand_case():
  proxy = np.array([0.9, 0.2, 0.7, 0.4, 0.6])
  truth = np.array([1, 1, 0, 0, 1], bool)
  # verdicts [1, 0, 1, 0, 1]: agree on samples 0, 3, 4 -> 3/5; sample 2 is a false positive
  # (1 of 2 incorrect samples rewarded), sample 1 a false negative (1 of 3 correct ones missed).
  out = metrics.reward_accuracy(proxy, truth, threshold=0.5)
  assert out["reward_accuracy"] == pytest.approx(0.6)
  assert out["false_positive_rate"] == pytest.approx(0.5)
  assert out["false_negative_rate"] == pytest.approx(1 / 3)
  assert (out["false_positives"], out["false_negatives"]) == (1, 1)
  # All samples correct: no negatives, FPR 0/0 = 0.
  assert metrics.reward_accuracy(np.array([1.0]), np.array([True]), 0.5)["false_positive_rate"] == 0


def test_label_accuracy_hand_case():
  # "3" == "3", None never matches, "5" == "5", "7" != "8": 2 of 4.
  assert metrics.label_accuracy(["3", None, "5", "7"], ["3", "4", "5", "8"]) == 0.5
  with pytest.raises(ValueError, match="one pseudo-label"):
    metrics.label_accuracy(["3"], ["3", "4"])


def test_mean_token_entropy_hand_case():
  entropy = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 99.0], [7.0, 7.0, 7.0]])
  mask = np.array([[1, 1, 1], [1, 0, 0], [0, 0, 0]])
  out = metrics.mean_token_entropy(entropy, mask)
  # tokens 1, 2, 3, 4 -> 10 / 4 = 2.5; per row: 6/3 = 2, 4/1 = 4, none -> NaN (99 is padding).
  assert out["token_mean"] == pytest.approx(2.5) and out["num_tokens"] == 4
  np.testing.assert_allclose(out["per_sequence"], [2.0, 4.0, np.nan])
  with pytest.raises(ValueError, match="no token"):
    metrics.mean_token_entropy(entropy, np.zeros_like(mask))
