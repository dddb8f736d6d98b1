"""Answer extraction, format / overlong shaping, label-free rewards and compute_rewards."""
import ml_collections
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rlvr_jax import rewards
from rlvr_jax.rewards import REWARDS, RewardConfigError, RewardOutput, compute_rewards, register_reward


# ------------------------------------------------------------------------------------------------
# Extraction and normalisation.


@pytest.mark.parametrize(
    "text, mode, want",
    [
        ("<answer> 42 </answer>", "answer_tag", "42"),
        ("<answer>1</answer> then <answer>2</answer>", "answer_tag", "2"),
        ("no tags", "answer_tag", None),
        ("so \\boxed{\\frac{1}{2}} and \\boxed{x^{2}}", "boxed", "x^{2}"),
        ("\\fbox{7}", "boxed", "7"),
        ("\\boxed 5 is it", "boxed", "5"),
        ("\\boxed{unbalanced", "boxed", None),
        ("we get -3.5 then 1,000 apples", "last_number", "1000"),
        ("ratio 3/4.", "last_number", "3/4"),
        ("nothing", "last_number", None),
        ("<answer>the value is \\boxed{9}</answer>", "auto", "9"),
        ("<answer>nine</answer> \\boxed{9}", "auto", "nine"),
        ("thus \\boxed{9}. Also 10", "auto", "9"),
        ("maybe 12 or 13", "auto", "13"),
    ],
)
def test_extract_answer(text, mode, want):
  assert rewards.extract_answer(text, mode) == want


@pytest.mark.parametrize(
    "raw, want",
    [
        ("$1,000.$", "1000"),
        ("0.50", "0.5"),
        ("\\text{ 12 }", "12"),
        ("\\dfrac{3}{4}", "3/4"),
        ("\\boxed{-2}", "-2"),
        ("  Paris. ", "paris"),
        ("\\left( 1, 2 \\right)", "( 1, 2 )"),
        (None, None),
    ],
)
def test_normalize_answer(raw, want):
  assert rewards.normalize_answer(raw) == want


def test_unknown_extractor_is_an_error():
  with pytest.raises(ValueError, match="unknown answer extractor 'xml'"):
    rewards.extract_answer("x", "xml")


# ------------------------------------------------------------------------------------------------
# Shaping.


def test_format_reward():
  good = "<think>a</think>\n<answer>b</answer>"
  cases = [good, "<answer>b</answer>", "<think>a</think><answer>b</answer><answer>c</answer>",
           "x <think>a</think><answer>b</answer>", "<think>a</think>\n\n<answer>multi\nline</answer>\n"]
  np.testing.assert_array_equal(REWARDS["format"](cases, [{}] * 5), [1, 0, 0, 0, 1])


def test_overlong_penalty_dapo_numbers():
  # DAPO: L_max = 20480, L_buf = 4096, f = 1: zero up to 16384, then linear to -1 at 20480.
  lengths = np.array([100, 16384, 18432, 20480, 20481])
  want = [0.0, 0.0, -0.5, -1.0, -1.0]
  np.testing.assert_allclose(rewards.overlong_penalty(lengths, 20480, 4096, 1.0), want)
  scores, metrics = compute_rewards(
      [{"name": "overlong", "options": {"buffer_len": 4096, "penalty_factor": 0.5}}],
      ["x"] * 5, [{}] * 5, group_size=1, lengths=lengths, max_len=20480,
  )
  np.testing.assert_allclose(scores, 0.5 * np.array(want))
  # Options override the context keywords (here max_len).
  scores, _ = compute_rewards(
      [{"name": "overlong", "options": {"buffer_len": 4096, "max_len": 18432}}],
      ["x"] * 2, [{}] * 2, group_size=1, lengths=np.array([14336, 16384]), max_len=20480,
  )
  np.testing.assert_allclose(scores, [0.0, -0.5])
  with pytest.raises(RewardConfigError, match="needs lengths"):
    compute_rewards(["overlong"], ["x"], [{}], group_size=1)


# ------------------------------------------------------------------------------------------------
# Label-free rewards.


def test_majority_vote_two_groups_by_hand():
  completions = [
      "<answer>5</answer>", "\\boxed{5}", "7", "no answer",  # group 1: 5 wins (2 votes), 1 unparseable
      "3", "4", "4.0", "3",  # group 2: tie 3 vs 4 (2 each) -> 3, seen first
  ]
  examples = [{"question": "q", "answer": "5"}] * 4 + [{"question": "q", "answer": "4"}] * 4
  scores, metrics = compute_rewards(["majority_vote"], completions, examples, group_size=4)
  np.testing.assert_array_equal(scores, [1, 1, 0, 0, 1, 0, 0, 1])
  assert metrics["label_accuracy/majority_vote"] == 0.5  # group 1 right, group 2 wrong
  assert metrics["majority_ratio/majority_vote"] == 0.5  # 2/4 in both groups
  with pytest.raises(ValueError, match="group_size=3 does not divide"):
    compute_rewards(["majority_vote"], completions, examples, group_size=3)


def _self_certainty_numpy(logits):
  # Oracle: KL(U || softmax(z)) = sum_v (1/V) log((1/V) / p_v), straight from the definition.
  p = np.exp(logits - logits.max(-1, keepdims=True))
  p /= p.sum(-1, keepdims=True)
  v = logits.shape[-1]
  return np.sum((1.0 / v) * np.log((1.0 / v) / p), axis=-1)


def test_self_certainty_reward_and_device_helpers():
  import jax.numpy as jnp

  from rlvr_jax import algorithms as alg

  rng = np.random.default_rng(0)
  n, t, d, v = 3, 4, 5, 6
  hidden = rng.normal(size=(n * t, d)).astype(np.float32)
  weight = rng.normal(size=(d, v)).astype(np.float32)
  targets = rng.integers(0, v, size=n * t)
  logits = hidden @ weight
  sc = _self_certainty_numpy(logits.astype(np.float64))  # [n * t]
  np.testing.assert_allclose(alg.self_certainty_from_logits(jnp.asarray(logits)), sc, rtol=1e-4, atol=1e-5)
  logz = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
  logp = logz[np.arange(n * t), targets]
  got = alg.self_certainty_from_logp(jnp.asarray(hidden), jnp.asarray(weight), jnp.asarray(targets), jnp.asarray(logp))
  np.testing.assert_allclose(got, sc, rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(alg.self_certainty_from_logits(jnp.zeros((2, 7))), 0.0, atol=1e-6)  # uniform

  mask = np.array([[1, 1, 1, 0], [1, 0, 0, 0], [0, 0, 0, 0]], np.float32)
  stats = {"self_certainty": sc.reshape(n, t), "mask": mask, "entropy": np.ones((n, t)), "logp": logp.reshape(n, t)}
  scores, _ = compute_rewards(
      ["self_certainty", "neg_entropy", "mean_logp"], ["a", "b", "c"], [{}] * 3, group_size=1,
      token_stats=stats,
  )
  scr = sc.reshape(n, t)
  want_sc = [scr[0, :3].mean(), scr[1, 0], 0.0]  # the empty response scores 0
  want_lp = [logp.reshape(n, t)[0, :3].mean(), logp.reshape(n, t)[1, 0], 0.0]
  want_ne = [-1.0, -1.0, 0.0]
  np.testing.assert_allclose(scores, np.add(np.add(want_sc, want_lp), want_ne), rtol=1e-5)
  with pytest.raises(RewardConfigError, match=r"needs token_stats\['self_certainty'\]"):
    compute_rewards(["self_certainty"], ["a"], [{}], group_size=1, token_stats={"mask": mask[:1]})


# ------------------------------------------------------------------------------------------------
# compute_rewards: composition and failure accounting.

if "test_registry_raises" not in REWARDS:

  @register_reward("test_registry_raises")
  def _raises(completions, examples):
    raise RuntimeError("scorer crashed")

  @register_reward("test_registry_partial_nan")
  def _partial_nan(completions, examples, *, value=2.0):
    return np.array([np.nan if c == "bad" else value for c in completions], np.float32)

  @register_reward("test_registry_per_token")
  def _per_token(completions, examples, *, lengths):
    tokens = np.zeros((len(completions), 3), np.float32)
    tokens[:, 0] = 1.0
    return RewardOutput(np.asarray(lengths, np.float32), tokens, {"calls": 1.0})


def test_weighted_composition_and_failure_counts():
  completions = ["<think>a</think><answer>4</answer>", "bad", "4", "<answer>5</answer>"]
  examples = [{"question": "2+2", "answer": "4"}] * 4
  spec = [
      {"name": "exact_match", "weight": 1.0},
      {"name": "format", "weight": 0.5},
      {"name": "test_registry_raises", "weight": 3.0},
      {"name": "test_registry_partial_nan", "weight": 0.25, "options": {"value": 2.0}},
  ]
  scores, metrics = compute_rewards(spec, completions, examples, group_size=2)
  exact = np.array([1, 0, 1, 0])
  fmt = np.array([1, 0, 0, 0])
  partial = np.array([2, 0, 2, 2])  # the NaN item becomes 0
  np.testing.assert_allclose(scores, exact + 0.5 * fmt + 0.25 * partial)
  assert scores.dtype == np.float32 and scores.shape == (4,)
  assert metrics["reward_fail/test_registry_raises"] == 4.0  # the whole batch, never a dead run
  assert metrics["reward/test_registry_raises"] == 0.0
  assert metrics["reward_fail/test_registry_partial_nan"] == 1.0
  assert metrics["reward_fail/exact_match"] == 0.0
  np.testing.assert_allclose(metrics["reward/test_registry_partial_nan"], 1.5)
  np.testing.assert_allclose(metrics["reward/total"], scores.mean(), rtol=1e-6)


def test_spec_forms_labels_and_token_rewards():
  completions, examples = ["4", "5"], [{"question": "q", "answer": "4"}] * 2
  want, _ = compute_rewards([{"name": "exact_match", "weight": 2.0}], completions, examples, group_size=1)
  np.testing.assert_allclose(want, [2.0, 0.0])
  for spec in ({"exact_match": 2.0}, {"exact_match": {"weight": 2.0}},
               ml_collections.ConfigDict({"exact_match": {"weight": 2.0, "options": {}}})):
    got, _ = compute_rewards(spec, completions, examples, group_size=1)
    np.testing.assert_allclose(got, want)
  # The same reward twice needs distinct labels.
  two = [{"name": "exact_match", "label": "em_a"}, {"name": "exact_match", "label": "em_b", "weight": -1.0}]
  got, metrics = compute_rewards(two, completions, examples, group_size=1)
  np.testing.assert_allclose(got, [0.0, 0.0])
  assert "reward/em_a" in metrics and "reward/em_b" in metrics
  with pytest.raises(ValueError, match="label twice"):
    compute_rewards(["exact_match", "exact_match"], completions, examples, group_size=1)
  with pytest.raises(ValueError, match="unknown reward 'exactmatch'"):
    compute_rewards(["exactmatch"], completions, examples, group_size=1)
  with pytest.raises(ValueError, match="unknown keys"):
    compute_rewards([{"name": "exact_match", "wieght": 1}], completions, examples, group_size=1)
  with pytest.raises(RewardConfigError, match=r"unknown options \['extractor'\]"):
    compute_rewards([{"name": "exact_match", "options": {"extractor": "boxed"}}], completions, examples, group_size=1)
  with pytest.raises(ValueError, match="got 2 completions but 1 examples"):
    compute_rewards(["exact_match"], completions, examples[:1], group_size=1)
  # Per-token scores and extra metrics flow through with the term's weight.
  scores, tokens, metrics = compute_rewards(
      [{"name": "test_registry_per_token", "weight": 0.5}], completions, examples, group_size=1,
      lengths=np.array([3, 7]), return_token_rewards=True,
  )
  np.testing.assert_allclose(scores, [1.5, 3.5])
  np.testing.assert_allclose(tokens, [[0.5, 0, 0], [0.5, 0, 0]])
  assert metrics["calls/test_registry_per_token"] == 1.0


@settings(max_examples=20, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=1, max_size=6), st.floats(-3, 3, allow_nan=False))
def test_composition_is_linear_in_weights(values, weight):
  completions = [str(v) for v in values]
  examples = [{"question": "q", "answer": "0"}] * len(values)
  one, _ = compute_rewards([{"name": "exact_match"}], completions, examples, group_size=1)
  scaled, _ = compute_rewards([{"name": "exact_match", "weight": weight}], completions, examples, group_size=1)
  np.testing.assert_allclose(scaled, np.float32(weight) * one, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(one, [float(v == 0) for v in values])


def test_majority_vote_hybrid_uses_the_gold_only_where_a_sample_is_right():
  """TTRL's hybrid mode by hand. Group 0 (gold 5) answers 3, 3, 5, 3: a sample is right, so the
  rewards follow the gold: 0, 0, 1, 0. Group 1 (gold 8) answers 7, 7, 2, 9: none is right, so the
  vote decides (7): 1, 1, 0, 0. One group of two used the gold."""
  completions = ["3", "3", "5", "3", "7", "7", "2", "9"]
  examples = [{"answer": "5"}] * 4 + [{"answer": "8"}] * 4
  scores, metrics = compute_rewards(
      [dict(name="majority_vote", options=dict(extract="none", hybrid=True))], completions,
      examples, group_size=4)
  np.testing.assert_array_equal(scores, [0, 0, 1, 0, 1, 1, 0, 0])
  assert metrics["hybrid_frac/majority_vote"] == 0.5
  plain, _ = compute_rewards([dict(name="majority_vote", options=dict(extract="none"))],
                             completions, examples, group_size=4)
  np.testing.assert_array_equal(plain, [1, 1, 0, 1, 1, 1, 0, 0])  # without hybrid: the vote
  with pytest.raises(RewardConfigError, match="needs the gold"):
    compute_rewards([dict(name="majority_vote", options=dict(hybrid=True))], ["1", "2"],
                    [{"answer": ""}] * 2, group_size=2)


def test_majority_vote_without_parseable_answers_scores_zero_and_is_counted():
  # "auto" extraction finds no number in "abc" / "" / "xyz": group 0 has nothing to vote on (all 0);
  # group 1 votes 4 from "4", "4", "x" (2 of 3 samples parse): 4 unparsed of 6.
  completions = ["abc", "", "xyz", "4", "4", "x"]
  scores, metrics = compute_rewards(["majority_vote"], completions, [{"answer": "4"}] * 6,
                                    group_size=3)
  np.testing.assert_array_equal(scores, [0, 0, 0, 1, 1, 0])
  assert metrics["unparsed_frac/majority_vote"] == pytest.approx(4 / 6)
  assert metrics["no_vote_frac/majority_vote"] == 0.5
  assert metrics["reward_fail/majority_vote"] == 0.0  # not a failure: the documented reward


def test_majority_vote_math_equivalence_merges_equal_answers():
  """Answers 1/2, 0.5, 0.5, 3, 3, 3 (gold 0.5): by string, 3 wins (3 votes against 2 and 1); by
  math equivalence 1/2 is rewritten to 0.5, so the class {1/2, 0.5} has 3 votes and ties 3; ties go
  to the answer seen first, 0.5 (sample 0), which is the gold."""
  completions = ["1/2", "0.5", "0.5", "3", "3", "3"]
  examples = [{"answer": "0.5"}] * 6
  by_string, _ = compute_rewards([dict(name="majority_vote", options=dict(extract="none"))],
                                 completions, examples, group_size=6)
  np.testing.assert_array_equal(by_string, [0, 0, 0, 1, 1, 1])
  by_math, metrics = compute_rewards(
      [dict(name="majority_vote", options=dict(extract="none", equivalence="math"))],
      completions, examples, group_size=6)
  np.testing.assert_array_equal(by_math, [1, 1, 1, 0, 0, 0])
  assert metrics["label_accuracy/majority_vote"] == 1.0
  assert metrics["equivalence_timeout/majority_vote"] == 0.0
