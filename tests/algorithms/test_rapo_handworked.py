"""RAPO's forward KL to a reward-tilted reference (rlvr_jax/algorithms/kl.py, configs/rapo.py):
the estimator's expectation and gradient on a two-action categorical worked by hand, the reward
tilt's self-normalisation, truncation, and the aux loss."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rlvr_jax import algorithms
from rlvr_jax.algorithms import kl as kl_lib


def _expected(theta, old_probs, ref_probs, tilt, cap=1e9):
  """E_{y ~ pi_old}[f(y)] and its gradient in the logits theta of pi_theta = softmax(theta):
  one token per 'response', each action its own row, weighted by pi_old."""
  old_logp = jnp.log(old_probs)[:, None]  # [2, 1]
  ref_logp = jnp.log(ref_probs)[:, None]

  def value(th):
    logp = jax.nn.log_softmax(th)[:, None]  # row y holds log pi_theta(y)
    f, _, _ = kl_lib.rapo_forward_kl(logp, old_logp, ref_logp, tilt[:, None], cap=cap)
    return jnp.sum(old_probs * f[:, 0])

  return jax.value_and_grad(value)(theta)


def test_hand_worked_two_actions_on_policy():
  # pi_ref = (1/2, 1/2), rewards (1, 0); dr_grpo advantages under the reference are +-1/2, so with
  # tilt 1 g = (3/2, 1/2) and pi_ref' = (3/4, 1/4) (Z = 1). pi_theta = pi_old = (1/4, 3/4).
  # KL(pi_ref' || pi_theta) = 3/4 log 3 + 1/4 log(1/3) = (1/2) log 3 = 0.5493.
  # Weights a = g pi_ref / pi_old = (3, 1/3); f = a log a - a + 1 (rho = 1):
  #   f(0) = 3 log 3 - 2 = 1.2958, f(1) = (1/3) log(1/3) + 2/3 = 0.3005;
  #   E = 1/4 * 1.2958 + 3/4 * 0.3005 = 0.5493. Gradient in the logits: pi_theta - pi_ref'
  #   = (1/4 - 3/4, 3/4 - 1/4) = (-1/2, 1/2).
  g = kl_lib.reward_tilt(jnp.array([0.5, -0.5]), strength=1.0)
  np.testing.assert_allclose(g, [1.5, 0.5])
  theta = jnp.log(jnp.array([0.25, 0.75]))
  value, grad = _expected(theta, jnp.array([0.25, 0.75]), jnp.array([0.5, 0.5]), g)
  np.testing.assert_allclose(value, 0.5 * np.log(3.0), rtol=1e-5)
  np.testing.assert_allclose(grad, [-0.5, 0.5], atol=1e-6)


def test_unbiased_off_policy_on_three_actions():
  # At theta != theta_old the expectation under pi_old is still KL(pi_ref' || pi_theta) and its
  # gradient pi_theta - pi_ref' (compared with the exact KL of softmax(theta)).
  ref = jnp.array([0.5, 0.3, 0.2])
  g = jnp.array([2.0, 0.5, 0.25])
  target = ref * g / jnp.sum(ref * g)  # pi_ref'
  g_norm = g / jnp.sum(ref * g)  # the tilt with its normaliser 1 / Z folded in
  old = jnp.array([0.2, 0.5, 0.3])
  theta = jnp.array([0.3, -0.2, 0.1])
  value, grad = _expected(theta, old, ref, g_norm)
  exact = lambda th: jnp.sum(target * (jnp.log(target) - jax.nn.log_softmax(th)))
  np.testing.assert_allclose(value, exact(theta), rtol=1e-5)
  np.testing.assert_allclose(grad, jax.grad(exact)(theta), atol=1e-6)
  np.testing.assert_allclose(grad, jax.nn.softmax(theta) - target, atol=1e-6)


def test_truncation_caps_the_weight_and_values_stay_nonnegative():
  # pi_ref / pi_old = 0.9 / 0.05 = 18 > cap 10: a = g * 10, flagged as truncated.
  logp = jnp.log(jnp.array([[0.05, 0.5]]))
  ref_logp = jnp.log(jnp.array([[0.9, 0.25]]))
  value, a, trunc = kl_lib.rapo_forward_kl(logp, logp, ref_logp, jnp.array([[1.0, 1.0]]), cap=10.0)
  np.testing.assert_allclose(a, [[10.0, 0.5]], rtol=1e-5)
  np.testing.assert_allclose(trunc, [[1.0, 0.0]])
  # f = a log a - a + 1 at rho = 1: 10 log 10 - 9 and 0.5 log 0.5 + 0.5.
  np.testing.assert_allclose(value, [[10 * np.log(10) - 9, 0.5 * np.log(0.5) + 0.5]], rtol=1e-5)
  assert np.all(np.asarray(value) >= 0)
  # Zero tilt (a response given no reference mass): f = rho, no NaN from 0 log 0.
  value0, a0, _ = kl_lib.rapo_forward_kl(logp, logp, ref_logp, jnp.zeros((1, 2)))
  np.testing.assert_allclose(value0, [[1.0, 1.0]])
  np.testing.assert_allclose(a0, 0.0)


def test_on_policy_untilted_gradient_is_k3s():
  # rho = 1, g = 1, no truncation: d f = (1 - pi_ref / pi_theta) d log pi_theta, which is the
  # per-sample gradient of k3 = r - log r - 1 (r = pi_ref / pi_theta) in the loss.
  ref_logp = jnp.log(jnp.array([[0.3, 0.6, 0.1]]))
  logp0 = jnp.log(jnp.array([[0.5, 0.4, 0.2]]))
  ours = jax.grad(lambda lp: jnp.sum(kl_lib.rapo_forward_kl(
      lp, jax.lax.stop_gradient(lp), ref_logp, jnp.ones_like(lp))[0]))(logp0)
  k3 = jax.grad(lambda lp: jnp.sum(kl_lib.kl_k3(lp, ref_logp)))(logp0)
  np.testing.assert_allclose(ours, k3, rtol=1e-5)
  np.testing.assert_allclose(ours, 1.0 - jnp.exp(ref_logp - logp0), rtol=1e-5)


def test_reward_tilt_self_normalised_in_a_group():
  # Rewards (1, 0, 0, 0): dr_grpo advantages (3/4, -1/4, -1/4, -1/4); tilt 1 gives
  # g = (7/4, 3/4, 3/4, 3/4), mean exactly 1 (the correct response gets 7/3 the others' mass).
  adv = algorithms.compute_advantages("dr_grpo", jnp.array([[1.0, 0.0, 0.0, 0.0]]))[0]
  g = kl_lib.reward_tilt(adv, strength=1.0)
  np.testing.assert_allclose(g, [1.75, 0.75, 0.75, 0.75], rtol=1e-6)
  np.testing.assert_allclose(jnp.mean(g), 1.0, rtol=1e-6)
  # Equal rewards: A = 0, g = 1 (the plain forward KL to pi_ref).
  flat = algorithms.compute_advantages("grpo", jnp.ones((1, 4)))[0]
  np.testing.assert_allclose(kl_lib.reward_tilt(flat, strength=1.0), 1.0)
  # GRPO's std-scaled advantages of (1, 1, 1, 0): the wrong response's A = -sqrt(3) < -1 is
  # clipped to weight 0 at tilt 1 (then the group mean exceeds 1).
  adv = algorithms.compute_advantages("grpo", jnp.array([[1.0, 1.0, 1.0, 0.0]]))[0]
  g = kl_lib.reward_tilt(adv, strength=1.0)
  assert float(g[3]) == 0.0 and float(jnp.mean(g)) > 1.0


def test_aux_loss_value_gradient_and_micro_batches():
  rng = np.random.default_rng(0)
  logp = jnp.asarray(np.log(rng.uniform(0.05, 0.95, (4, 3))), jnp.float32)
  ref_logp = jnp.asarray(np.log(rng.uniform(0.05, 0.95, (4, 3))), jnp.float32)
  mask = jnp.array([[1, 1, 0], [1, 1, 1], [1, 0, 0], [1, 1, 1]], jnp.float32)
  adv = jnp.array([0.75, -0.25, -0.25, -0.25])
  fn = algorithms.AUX_LOSSES["rapo_forward_kl"]
  norms = algorithms.global_normalizers(mask)
  batch = {"ref_logp": ref_logp, "advantages": adv}

  def full(lp):
    return fn(lp, mask, batch, tilt=1.0, cap=10.0, agg_mode="token-mean", **norms)[0]

  # On-policy (no old_logp in the rows): rho = 1, the loss is the token mean of a log a - a + 1.
  a = np.asarray(kl_lib.reward_tilt(adv)[:, None] * jnp.minimum(jnp.exp(ref_logp - logp), 10.0))
  want = np.sum((a * np.log(a) - a + 1) * np.asarray(mask)) / np.sum(np.asarray(mask))
  np.testing.assert_allclose(full(logp), want, rtol=1e-5)
  # Gradient (1 - a) per token / global_tokens.
  np.testing.assert_allclose(jax.grad(full)(logp), (1 - a) * np.asarray(mask) / 9.0, atol=1e-6)
  # Micro-batches with global counts sum to the full-batch loss; metrics come back.
  parts = []
  for rows in (np.array([0, 2]), np.array([1, 3])):
    sub = {"ref_logp": ref_logp[rows], "advantages": adv[rows]}
    parts.append(fn(logp[rows], mask[rows], sub, tilt=1.0, cap=10.0, **norms))
  np.testing.assert_allclose(sum(p[0] for p in parts), full(logp), rtol=1e-5)
  metrics = algorithms.combine_metrics([p[1] for p in parts])
  assert set(metrics) == {"fkl_loss", "fkl", "is_weight", "is_trunc_frac", "tilt_zero_frac"}
  np.testing.assert_allclose(metrics["fkl"], want, rtol=1e-5)


def test_options_checked():
  fn = algorithms.AUX_LOSSES["rapo_forward_kl"]
  batch = {"ref_logp": jnp.zeros((1, 2)), "advantages": jnp.zeros((1,))}
  with pytest.raises(ValueError, match="cap"):
    fn(jnp.zeros((1, 2)), jnp.ones((1, 2)), batch, global_tokens=2.0, global_seqs=1.0, cap=0.5)
  with pytest.raises(ValueError, match="tilt"):
    fn(jnp.zeros((1, 2)), jnp.ones((1, 2)), batch, global_tokens=2.0, global_seqs=1.0, tilt=-1.0)
