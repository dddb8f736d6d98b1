"""Advantage estimators against hand-worked 2x4 reward grids, plus invariance properties."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rlvr_jax import algorithms as alg

# Two prompts, G = 4. Group 1: two right, two wrong. Group 2: three right, one wrong.
# Jitted once per (estimator, options, shape): far cheaper on CPU than op-by-op dispatch.
_adv = jax.jit(
    alg.compute_advantages, static_argnums=0, static_argnames=("eps", "std_ddof", "scale_by_std")
)

GRID = np.array([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 0.0]], np.float32)


def test_grpo_unbiased_std_by_hand():
  # Group 1: mean 1/2, deviations +-1/2, unbiased var = (4 * 1/4) / 3 = 1/3.
  # Group 2: mean 3/4, deviations (1/4, 1/4, 1/4, -3/4), unbiased var = (3/16 + 9/16) / 3 = 1/4.
  s1, s2 = math.sqrt(1 / 3), 0.5
  want = [[0.5 / s1, -0.5 / s1, -0.5 / s1, 0.5 / s1], [0.25 / s2, 0.25 / s2, 0.25 / s2, -0.75 / s2]]
  got = _adv("grpo", GRID, eps=0.0)
  np.testing.assert_allclose(got, want, rtol=1e-6)
  # The default eps = 1e-6 only perturbs the 6th digit.
  np.testing.assert_allclose(_adv("grpo", GRID), want, rtol=1e-5)


def test_grpo_population_std_by_hand():
  # Population std: group 1 -> 1/2, group 2 -> sqrt(3/16).
  s2 = math.sqrt(3 / 16)
  want = [[1.0, -1.0, -1.0, 1.0], [0.25 / s2, 0.25 / s2, 0.25 / s2, -0.75 / s2]]
  got = _adv("grpo", GRID, std_ddof=0, eps=0.0)
  np.testing.assert_allclose(got, want, rtol=1e-6)


def test_dr_grpo_and_grpo_without_std_by_hand():
  want = [[0.5, -0.5, -0.5, 0.5], [0.25, 0.25, 0.25, -0.75]]
  np.testing.assert_allclose(_adv("dr_grpo", GRID), want, atol=1e-7)
  np.testing.assert_allclose(_adv("grpo", GRID, scale_by_std=False), want, atol=1e-7)


def test_rloo_by_hand():
  # A_i = r_i - mean of the other three. Group 1, i=1: 1 - (0+0+1)/3 = 2/3. Group 2, i=4: 0 - 1 = -1.
  want = [[2 / 3, -2 / 3, -2 / 3, 2 / 3], [1 / 3, 1 / 3, 1 / 3, -1.0]]
  np.testing.assert_allclose(_adv("rloo", GRID), want, rtol=1e-6)


def test_reinforce_pp_batch_normalised_by_hand():
  # All eight rewards: mean 5/8, population var = (5 * (3/8)^2 + 3 * (5/8)^2) / 8 = 15/64.
  std = math.sqrt(15 / 64)
  hi, lo = (1 - 5 / 8) / std, (0 - 5 / 8) / std
  want = [[hi, lo, lo, hi], [hi, hi, hi, lo]]
  np.testing.assert_allclose(_adv("reinforce_pp", GRID, eps=0.0), want, rtol=1e-6)


def test_reinforce_pp_baseline_by_hand():
  # Group-centred: (1/2, -1/2, -1/2, 1/2, 1/4, 1/4, 1/4, -3/4), batch mean 0,
  # population var = (4/4 + 3/16 + 9/16) / 8 = 7/32.
  std = math.sqrt(7 / 32)
  want = np.array([[0.5, -0.5, -0.5, 0.5], [0.25, 0.25, 0.25, -0.75]]) / std
  got = _adv("reinforce_pp_baseline", GRID, eps=0.0)
  np.testing.assert_allclose(got, want, rtol=1e-6)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
def test_degenerate_groups_give_exact_zero(name):
  # 0.1 is not exactly representable: a naive (r - mean) / (std + eps) leaves rounding residue
  # divided by 1e-6. G = 1 groups are degenerate too.
  rewards = jnp.array([[0.1, 0.1, 0.1], [0.7, 0.7, 0.7]], jnp.float32)
  got = _adv(name, rewards)
  assert np.all(np.asarray(got) == 0.0)
  single = _adv(name, jnp.array([[1.0], [0.0], [3.0]]))
  assert np.all(np.asarray(single) == 0.0)
  mixed = _adv(name, jnp.array([[0.3, 0.3], [0.0, 1.0]]))
  assert np.all(mixed[0] == 0.0) and np.all(np.isfinite(mixed))
  assert float(mixed[1, 1]) > 0 > float(mixed[1, 0])


def test_reinforce_pp_constant_batch_is_zero_not_nan():
  got = _adv("reinforce_pp", jnp.full((3, 4), 0.3))
  assert np.all(np.asarray(got) == 0.0)


def test_advantages_jit_and_errors():
  got = jax.jit(lambda r: alg.compute_advantages("grpo", r))(GRID)
  np.testing.assert_allclose(got, alg.compute_advantages("grpo", GRID), rtol=1e-6)
  with pytest.raises(ValueError, match="unknown advantage estimator 'nope'"):
    alg.compute_advantages("nope", GRID)
  with pytest.raises(ValueError, match=r"must be \[P, G\]"):
    alg.compute_advantages("grpo", GRID.reshape(-1))


def test_register_advantage_hook():
  name = "test_handworked_negated"
  if name not in alg.ADVANTAGES:

    @alg.register_advantage(name)
    def _negated(rewards):
      return -alg.compute_advantages("dr_grpo", rewards)

  np.testing.assert_allclose(alg.compute_advantages(name, GRID), -np.asarray(alg.compute_advantages("dr_grpo", GRID)))
  with pytest.raises(ValueError, match="already registered"):
    alg.register_advantage("grpo")(lambda r: r)


# ------------------------------------------------------------------------------------------------
# Per-token advantages.


def test_returns_to_go_by_hand():
  rewards = jnp.array([[0.0, 0.0, 1.0, 0.0], [0.5, 0.0, 0.0, 2.0]])
  mask = jnp.array([[1, 1, 1, 0], [1, 1, 1, 1]], jnp.float32)
  np.testing.assert_allclose(alg.returns_to_go(rewards, mask), [[1, 1, 1, 0], [2.5, 2, 2, 2]])
  # gamma = 0.5: row 1 -> (1/4, 1/2, 1, 0); row 2 -> (0.5 + 0.25, 0.25, 1, 2) with 2 * 0.5^3 = 0.25.
  np.testing.assert_allclose(
      alg.returns_to_go(rewards, mask, gamma=0.5), [[0.25, 0.5, 1, 0], [0.75, 0.5, 1, 2]], rtol=1e-6
  )


def test_token_reinforce_pp_by_hand():
  # Returns (1, 1, 1) and (2, 2): token mean 7/5, population var = (3 * 0.16 + 2 * 0.36) / 5 = 0.24.
  rewards = jnp.array([[0.0, 0.0, 1.0], [0.0, 2.0, 0.0]])
  mask = jnp.array([[1, 1, 1], [1, 1, 0]], jnp.float32)
  std = math.sqrt(0.24)
  want = [[-0.4 / std] * 3, [0.6 / std, 0.6 / std, 0.0]]
  got = alg.token_advantages("reinforce_pp", rewards, mask, eps=0.0)
  np.testing.assert_allclose(got, want, rtol=1e-5)
  np.testing.assert_allclose(alg.token_advantages("returns", rewards, mask), [[1, 1, 1], [2, 2, 0]])


# ------------------------------------------------------------------------------------------------
# Properties.

# A fixed [3, 4] shape and one jitted function for all estimators keep this to one compile;
# degenerate groups still occur (7 reward levels), G = 1 is covered by the hand-worked tests.
_rewards = st.lists(st.integers(0, 6).map(lambda k: k * 0.5), min_size=12, max_size=12)
_NAMES = ("grpo", "dr_grpo", "rloo", "reinforce_pp", "reinforce_pp_baseline")


@jax.jit
def _all_advantages(r):
  return {name: alg.compute_advantages(name, r) for name in _NAMES}


def _grid(values):
  return jnp.array(values, jnp.float32).reshape(3, 4)


@settings(max_examples=25, deadline=None)
@given(_rewards, st.integers(-20, 20).map(lambda k: k * 0.25))
def test_shift_invariance(rewards, shift):
  r = _grid(rewards)
  base, shifted = _all_advantages(r), _all_advantages(r + shift)
  for name in _NAMES:
    np.testing.assert_allclose(shifted[name], base[name], atol=2e-5, err_msg=name)


@settings(max_examples=25, deadline=None)
@given(_rewards, st.sampled_from([0.25, 0.5, 2.0, 3.0, 8.0]))
def test_scale_invariance_with_std_and_equivariance_without(rewards, scale):
  r = _grid(rewards)
  base, scaled = _all_advantages(r), _all_advantages(r * scale)
  for name in ["grpo", "reinforce_pp", "reinforce_pp_baseline"]:
    np.testing.assert_allclose(scaled[name], base[name], atol=1e-4, err_msg=name)
  for name in ["dr_grpo", "rloo"]:
    np.testing.assert_allclose(scaled[name], scale * base[name], atol=1e-5, err_msg=name)


@settings(max_examples=25, deadline=None)
@given(_rewards)
def test_group_baselines_have_zero_group_mean(rewards):
  adv = _all_advantages(_grid(rewards))
  for name in ["grpo", "dr_grpo", "rloo"]:
    assert np.all(np.isfinite(adv[name]))
    np.testing.assert_allclose(jnp.mean(adv[name], axis=-1), 0.0, atol=1e-5, err_msg=name)
