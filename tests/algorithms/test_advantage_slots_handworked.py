"""The trainer-facing advantage entry point: rectangles equal compute_advantages, ragged groups run
by size, row-form estimators get side inputs and keep state (RAE, hand-worked), and the per-token
REINFORCE++ form (hand-worked)."""
from __future__ import annotations

import numpy as np
import pytest

from rlvr_jax import algorithms


def test_rectangle_is_compute_advantages_and_ragged_runs_per_group():
  r = np.array([1.0, 0.0, 0.0, 1.0, 1.0, 0.0], np.float32)
  groups = np.array([0, 0, 0, 1, 1, 1])
  adv, _ = algorithms.estimate("grpo", r, group_ids=groups, rectangular=3, side={}, options={})
  np.testing.assert_array_equal(adv, np.asarray(algorithms.compute_advantages(
      "grpo", r.reshape(2, 3))).reshape(-1))
  ragged = np.array([0, 0, 1, 1, 1, 2], np.int32)  # sizes 2, 3, 1
  adv, _ = algorithms.estimate("rloo", r, group_ids=ragged, rectangular=None, side={}, options={})
  # rloo by hand: group 0 [1, 0] -> [1, -1]; group 1 [0, 1, 1] -> [-1, 0.5, 0.5]; singleton -> 0
  np.testing.assert_allclose(adv, [1.0, -1.0, -1.0, 0.5, 0.5, 0.0], atol=1e-6)
  with pytest.raises(ValueError, match="ragged"):
    algorithms.estimate("reinforce_pp_baseline", r, group_ids=ragged, rectangular=None, side={},
                        options={})
  with pytest.raises(ValueError, match=r"unknown options \['scale'\]"):
    algorithms.estimate("grpo", r, group_ids=groups, rectangular=3, side={}, options={"scale": 1})


def test_role_baseline_is_spirals_rae_and_keeps_its_state():
  state = {}
  # game 0: seat 0 wins (2 rows), seat 1 loses (1 row); game 1: seat 1 wins.
  rewards = np.array([1.0, -1.0, 1.0, -1.0, 1.0], np.float32)
  roles = np.array([0, 1, 0, 0, 1])
  games = np.array([0, 0, 0, 1, 1])
  adv, metrics = algorithms.estimate("role_baseline", rewards, group_ids=games, rectangular=None,
                                     side={"roles": roles, "state": state},
                                     options={"decay": 0.5})
  # b0: 0 -> A = 1 - 0, b0 = 0.5; b1: 0 -> A = -1, b1 = -0.5; game 1: seat 0 A = -1 - 0.5,
  # b0 = 0.5 * 0.5 - 0.5 = -0.25; seat 1 A = 1 - (-0.5) = 1.5, b1 = 0.25.
  np.testing.assert_allclose(adv, [1.0, -1.0, 1.0, -1.5, 1.5])
  assert state["baseline"] == {"0": -0.25, "1": 0.25}
  assert metrics == {"baseline_role0": -0.25, "baseline_role1": 0.25}
  adv2, _ = algorithms.estimate("role_baseline", np.array([1.0], np.float32),
                                group_ids=np.array([0]), rectangular=None,
                                side={"roles": np.array([0]), "state": state},
                                options={"decay": 0.5})
  np.testing.assert_allclose(adv2, [1.25])  # the baseline carried over from the previous call


def test_reinforce_pp_token_places_score_and_kl_on_their_tokens():
  mask = np.array([[1, 1, 1], [1, 1, 0]], np.float32)
  scores = np.array([1.0, 0.0], np.float32)
  kl = np.array([[0.1, 0.0, 0.2], [0.0, 0.3, 0.0]], np.float32)
  adv, _ = algorithms.estimate(
      "reinforce_pp_token", scores, group_ids=np.array([0, 1]), rectangular=None,
      side={"mask": mask, "scores": scores, "kl_penalty": kl}, options={})
  # returns-to-go: row 0 [1 - 0.3, 1 - 0.2, 1 - 0.2] = [0.7, 0.8, 0.8]; row 1 [-0.3, -0.3, -]
  returns = np.array([0.7, 0.8, 0.8, -0.3, -0.3])
  want = (returns - returns.mean()) / (returns.std() + 1e-6)
  np.testing.assert_allclose(adv[mask > 0], want, rtol=1e-5)
  assert adv[1, 2] == 0.0 and adv.shape == (2, 3)


def test_max_logprob_matches_the_materialised_softmax():
  import jax
  import jax.numpy as jnp
  rng = np.random.default_rng(0)
  hidden = jnp.asarray(rng.normal(size=(5, 8)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(8, 23)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 23, size=5), jnp.int32)
  logits = hidden @ weight / 0.7
  logp_all = jax.nn.log_softmax(logits, axis=-1)
  logp = jnp.take_along_axis(logp_all, targets[:, None], axis=1)[:, 0]
  got = algorithms.max_logprob_from_logp(hidden, weight, targets, logp, 0.7, block_vocab=7)
  np.testing.assert_allclose(got, logp_all.max(-1), atol=1e-5)  # 23 = 3 tiles of 7 + a rest of 2


def test_entropy_reshaped_ear_by_hand():
  # One group of 4: rewards [1, 1, 0, 0] -> GRPO A = +-0.5 / std(ddof 1) = +-0.5 / 0.57735 = +-0.866.
  # Mean surprisal h = -seq_logp / len: [0.5, 1.5, 1.0, 1.0] (mean 1.0) -> weights (alpha 1)
  # [0.5, 1.5, 1.0, 1.0]; the confident correct answer moves half as much as the uncertain one.
  r = np.array([1.0, 1.0, 0.0, 0.0], np.float32)
  side = dict(seq_logp=np.array([-1.0, -3.0, -2.0, -4.0]), lengths=np.array([2, 2, 2, 4]))
  adv, metrics = algorithms.estimate("entropy_reshaped", r, group_ids=np.zeros(4, np.int32),
                                     rectangular=4, side=side, options={})
  a = 0.5 / np.std([1, 1, 0, 0], ddof=1)
  np.testing.assert_allclose(adv, [0.5 * a, 1.5 * a, -a, -a], rtol=1e-5)
  assert metrics["weight_pos"] == pytest.approx(1.0)  # (0.5 + 1.5) / 2
  # alpha = 0 is GRPO; the clip bounds the weights; an equal-reward group gets 0.
  grpo, _ = algorithms.estimate("grpo", r, group_ids=np.zeros(4, np.int32), rectangular=4,
                                side={}, options={})
  same, _ = algorithms.estimate("entropy_reshaped", r, group_ids=np.zeros(4, np.int32),
                                rectangular=4, side=side, options={"alpha": 0.0})
  np.testing.assert_allclose(same, grpo, rtol=1e-5)
  clipped, _ = algorithms.estimate("entropy_reshaped", r, group_ids=np.zeros(4, np.int32),
                                   rectangular=4, side=side, options={"alpha": 4.0})
  np.testing.assert_allclose(clipped[:2], [0.5 * a, 2.0 * a], rtol=1e-5)  # 0.0625 -> 0.5, 5.06 -> 2
  flat, _ = algorithms.estimate("entropy_reshaped", np.ones(4, np.float32),
                                group_ids=np.zeros(4, np.int32), rectangular=4, side=side,
                                options={})
  np.testing.assert_array_equal(flat, 0.0)
  with pytest.raises(ValueError, match="w_min=1.5"):
    algorithms.estimate("entropy_reshaped", r, group_ids=np.zeros(4, np.int32), rectangular=4,
                        side=side, options={"w_min": 1.5})


def test_confidence_reweighted_arm_by_hand():
  # Group of 4, rewards [1, 1, 1, 0]: GRPO A = (0.25, 0.25, 0.25, -0.75) / 0.5 = (0.5, 0.5, 0.5, -1.5).
  # Confidence (mean log-prob) of the correct ones: -0.1, -1.0, -1.0 -> weights 3 softmax(-c):
  # e^0.1, e^1, e^1 normalised -> the most confident path gets the least.
  r = np.array([1.0, 1.0, 1.0, 0.0], np.float32)
  side = dict(seq_logp=np.array([-0.2, -2.0, -3.0, -1.0]), lengths=np.array([2, 2, 3, 1]))
  adv, metrics = algorithms.estimate("confidence_reweighted", r, group_ids=np.zeros(4, np.int32),
                                     rectangular=4, side=side, options={})
  soft = np.exp([0.1, 1.0, 1.0])
  w = 3 * soft / soft.sum()
  np.testing.assert_allclose(adv, [0.5 * w[0], 0.5 * w[1], 0.5 * w[2], -1.5], rtol=1e-5)
  assert adv[0] < 0.5 < adv[1]  # attenuated vs boosted (a flipped sign would invert these)
  assert metrics["weight_max"] == pytest.approx(w[1])
  same, _ = algorithms.estimate("confidence_reweighted", r, group_ids=np.zeros(4, np.int32),
                                rectangular=4, side=side, options={"beta": 0.0})
  np.testing.assert_allclose(same, [0.5, 0.5, 0.5, -1.5], rtol=1e-5)  # beta 0 is GRPO
