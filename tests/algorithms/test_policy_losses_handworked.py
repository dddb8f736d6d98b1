"""Policy losses, KL estimators and aggregation modes against hand-worked cases and properties."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from rlvr_jax import algorithms as alg

_STATIC = ("agg_mode", "kl_estimator", "clip_low", "clip_high", "dual_clip", "kl_coef", "entropy_coef")
_loss = jax.jit(alg.policy_loss, static_argnums=0, static_argnames=_STATIC)
_loss_grad = jax.jit(
    jax.value_and_grad(alg.policy_loss, argnums=1, has_aux=True), static_argnums=0, static_argnames=_STATIC
)

# Five tokens (one sequence), old_logp = 0 so the ratio is exp(logp).
RATIOS = np.array([[1.5, 0.5, 0.5, 5.0, 1.1]], np.float32)
ADVS = np.array([[1.0, 1.0, -1.0, -1.0, -2.0]], np.float32)
ONES = np.ones_like(RATIOS)


def test_ppo_clip_higher_and_dual_clip_by_hand():
  # eps_lo = 0.2, eps_hi = 0.28, c = 3. Per token, loss = max(-A rho, -A clip(rho)), then
  # min(., -c A) for A < 0:
  #   (1.5, +1): max(-1.5, -1.28) = -1.28   clipped high, zero gradient
  #   (0.5, +1): max(-0.5, -0.8)  = -0.5    unclipped, dloss/dlogp = -A rho = -0.5
  #   (0.5, -1): max(0.5, 0.8)    = 0.8     clipped low, zero gradient
  #   (5.0, -1): max(5.0, 1.28) = 5, min(5, 3) = 3   dual-clipped, zero gradient
  #   (1.1, -2): max(2.2, 2.2)    = 2.2     unclipped, dloss/dlogp = -A rho = 2.2
  (loss, metrics), grad = _loss_grad(
      "ppo_clip", jnp.log(RATIOS), jnp.zeros_like(RATIOS), ADVS, ONES,
      clip_low=0.2, clip_high=0.28, dual_clip=3.0,
  )
  np.testing.assert_allclose(loss, (-1.28 - 0.5 + 0.8 + 3.0 + 2.2) / 5, rtol=1e-6)
  np.testing.assert_allclose(grad, [[0.0, -0.5 / 5, 0.0, 0.0, 2.2 / 5]], atol=1e-6)
  np.testing.assert_allclose(metrics["clip_frac_high"], 1 / 5, rtol=1e-6)
  np.testing.assert_allclose(metrics["clip_frac_low"], 1 / 5, rtol=1e-6)
  np.testing.assert_allclose(metrics["clip_frac_dual"], 1 / 5, rtol=1e-6)
  np.testing.assert_allclose(metrics["clip_frac"], 2 / 5, rtol=1e-6)
  np.testing.assert_allclose(metrics["ratio_mean"], (1.5 + 0.5 + 0.5 + 5.0 + 1.1) / 5, rtol=1e-6)
  np.testing.assert_allclose(metrics["ratio_max"], 5.0, rtol=1e-6)
  np.testing.assert_allclose(metrics["ratio_min"], 0.5, rtol=1e-6)
  # approx_kl = mean(rho - 1 - log rho) (k3 of KL(pi_old || pi_theta) on pi_old samples).
  want_kl = np.mean(RATIOS - 1 - np.log(RATIOS))
  np.testing.assert_allclose(metrics["approx_kl"], want_kl, rtol=1e-5)


def test_symmetric_clip_default_and_no_dual_clip():
  # clip_low only: clip_high falls back to it. Token (5.0, -1) is then unbounded: loss 5.
  loss, metrics = _loss("ppo_clip", jnp.log(RATIOS), jnp.zeros_like(RATIOS), ADVS, ONES, clip_low=0.2)
  np.testing.assert_allclose(loss, (-1.2 - 0.5 + 0.8 + 5.0 + 2.2) / 5, rtol=1e-6)
  assert "clip_frac_dual" not in metrics


def test_gspo_matches_sequence_level_objective():
  # Sequence 1: log-ratios (0.1, 0.3) -> s = exp(0.2); sequence 2: (-0.4, masked) -> s = exp(-0.4).
  logp = jnp.array([[0.1, 0.3], [-0.4, 7.0]]) - 1.0
  old = jnp.full((2, 2), -1.0)
  mask = jnp.array([[1.0, 1.0], [1.0, 0.0]])
  adv = jnp.array([1.0, -1.0])

  def sequence_gspo(logp):
    # GSPO's own sequence-level form: mean_i -min(s_i A_i, clip(s_i) A_i), eps = 0.3.
    s = jnp.exp(jnp.sum((logp - old) * mask, -1) / jnp.sum(mask, -1))
    return jnp.mean(-jnp.minimum(s * adv, jnp.clip(s, 0.7, 1.3) * adv))

  (loss, _), grad = _loss_grad(
      "gspo", logp, old, adv, mask, clip_low=0.3, clip_high=0.3, agg_mode="seq-mean-token-mean"
  )
  # Hand value: s1 = e^0.2 = 1.2214 (inside [0.7, 1.3]) -> -1.2214; s2 = e^-0.4 = 0.6703 < 0.7,
  # A < 0 -> max(0.6703, 0.7) = 0.7.
  np.testing.assert_allclose(loss, (-math.exp(0.2) + 0.7) / 2, rtol=1e-6)
  np.testing.assert_allclose(loss, sequence_gspo(logp), rtol=1e-6)
  np.testing.assert_allclose(grad, jax.grad(sequence_gspo)(logp), atol=1e-6)


def test_cispo_keeps_gradient_outside_the_trust_region():
  # dloss/dlogp = -sg(clip(rho, 1 - 1, 1 + 0.28)) * A: rho 1.5 -> weight 1.28 (PPO would give 0),
  # rho 0.5 -> 0.5, rho 5.0 -> 1.28, rho 1.1 -> 1.1.
  logp = jnp.log(RATIOS)
  (loss, metrics), grad = _loss_grad("cispo", logp, jnp.zeros_like(logp), ADVS, ONES, clip_low=1.0, clip_high=0.28)
  weights = np.array([1.28, 0.5, 0.5, 1.28, 1.1])
  np.testing.assert_allclose(grad, [-weights * ADVS[0] / 5], rtol=1e-6)
  np.testing.assert_allclose(loss, np.mean(-weights * ADVS[0] * np.log(RATIOS[0])), rtol=1e-5)
  np.testing.assert_allclose(metrics["clip_frac_high"], 2 / 5, rtol=1e-6)
  with pytest.raises(ValueError, match="cispo has no dual clip"):
    alg.policy_loss("cispo", logp, logp, ADVS, ONES, dual_clip=3.0)


# ------------------------------------------------------------------------------------------------
# KL estimators and regularisers.

P, Q = math.log(0.5), math.log(0.25)  # log pi_theta, log pi_ref of one token


def test_kl_estimators_by_hand():
  logp, ref = jnp.array([[P]]), jnp.array([[Q]])
  # log r = log(pi_ref / pi_theta) = log 0.5.
  want = {
      "k1": math.log(2),
      "k2": 0.5 * math.log(2) ** 2,
      "k3": 0.5 - math.log(0.5) - 1,
      "k3+": 0.5 - math.log(0.5) - 1,
  }
  for name, value in want.items():
    np.testing.assert_allclose(alg.kl_estimate(name, logp, ref), [[value]], rtol=1e-6, err_msg=name)
  grad = lambda name: jax.grad(lambda lp: alg.kl_estimate(name, lp, ref).sum())(logp)
  # d k3 / d logp = 1 - r = 0.5; k3+ takes k2's gradient, logp - ref = log 2.
  np.testing.assert_allclose(grad("k3"), [[0.5]], rtol=1e-6)
  np.testing.assert_allclose(grad("k3+"), [[math.log(2)]], rtol=1e-6)
  np.testing.assert_allclose(grad("k2"), [[math.log(2)]], rtol=1e-6)
  np.testing.assert_allclose(grad("k1"), [[1.0]], rtol=1e-6)
  # verl's clamp: k3 saturates at 10 for a collapsed token.
  np.testing.assert_allclose(alg.kl_estimate("k3", jnp.array([[-30.0]]), jnp.array([[0.0]])), [[10.0]])


def test_forward_divergences_by_hand():
  # Rehearsal token sampled from pi_0 with pi_0 = 0.5 and pi_theta = 0.25: u = 0.5.
  logp, init = jnp.array([[Q]]), jnp.array([[P]])
  u = 0.5
  want = {
      "k1": math.log(2),
      "k3": u - 1 - math.log(u),
      "js": 0.5 * (u * math.log(u) - (1 + u) * math.log((1 + u) / 2)),
  }
  for name, value in want.items():
    np.testing.assert_allclose(alg.forward_divergence(name, logp, init), [[value]], rtol=1e-5, err_msg=name)
  loss, metrics = alg.forward_kl_loss(logp, init, jnp.ones((1, 1)), coef=0.5, divergence="k1")
  np.testing.assert_allclose(loss, 0.5 * math.log(2), rtol=1e-6)
  np.testing.assert_allclose(metrics["fkl"], math.log(2), rtol=1e-6)
  # Forward KL's gradient is -grad log pi_theta on the rehearsal token (likelihood).
  g = jax.grad(lambda lp: alg.forward_kl_loss(lp, init, jnp.ones((1, 1)))[0])(logp)
  np.testing.assert_allclose(g, [[-1.0]], rtol=1e-6)


def test_kl_in_loss_and_entropy_bonus_by_hand():
  # Two tokens at ratio 1, A = 0: only the regularisers contribute.
  logp = jnp.array([[P, P]])
  ref = jnp.array([[Q, P]])
  ent = jnp.array([[2.0, 1.0]])
  loss, metrics = _loss(
      "ppo_clip", logp, logp, jnp.zeros(1), jnp.ones((1, 2)), ref_logp=ref, kl_coef=0.1,
      kl_estimator="k1", entropy=ent, entropy_coef=0.01,
  )
  kl_mean = (math.log(2) + 0.0) / 2
  np.testing.assert_allclose(loss, 0.1 * kl_mean - 0.01 * 1.5, rtol=1e-6)
  np.testing.assert_allclose(metrics["kl"], kl_mean, rtol=1e-6)
  np.testing.assert_allclose(metrics["entropy"], 1.5, rtol=1e-6)
  np.testing.assert_allclose(metrics["pg_loss"], 0.0, atol=1e-7)
  with pytest.raises(ValueError, match="needs ref_logp"):
    alg.policy_loss("ppo_clip", logp, logp, jnp.zeros(1), jnp.ones((1, 2)), kl_coef=0.1)


def test_kl_in_reward_by_hand():
  scores = jnp.array([1.0, 2.0])
  logp = jnp.array([[P, P, 0.0], [Q, 0.0, 0.0]])
  ref = jnp.array([[Q, P, 0.0], [P, 0.0, 0.0]])
  mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
  # k1 per token: row 1 (log 2, 0), row 2 (-log 2). Score on the last valid token.
  want = [[-0.5 * math.log(2), 1.0, 0.0], [2.0 + 0.5 * math.log(2), 0.0, 0.0]]
  got = alg.kl_in_reward(scores, logp, ref, mask, kl_coef=0.5, kl_estimator="k1")
  np.testing.assert_allclose(got, want, rtol=1e-6)
  seq = alg.sequence_reward_minus_kl(scores, logp, ref, mask, kl_coef=0.5, kl_estimator="k1")
  np.testing.assert_allclose(seq, [1.0 - 0.5 * math.log(2), 2.0 + 0.5 * math.log(2)], rtol=1e-6)


def test_aggregation_modes_by_hand():
  loss = jnp.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [9.0, 9.0, 9.0]])
  mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])  # row 3 is padding
  want = {
      "token-mean": (1 + 2 + 4) / 3,
      "seq-mean-token-mean": ((1 + 2) / 2 + 4 / 1) / 2,
      "seq-mean-token-sum": (3 + 4) / 2,
      "seq-mean-token-sum-norm": 7 / (2 * 3),
  }
  for mode, value in want.items():
    np.testing.assert_allclose(alg.aggregate(loss, mask, mode), value, rtol=1e-6, err_msg=mode)
  np.testing.assert_allclose(
      alg.aggregate(loss, mask, "seq-mean-token-sum-norm", norm_constant=10.0), 7 / 20, rtol=1e-6
  )
  np.testing.assert_allclose(alg.aggregate(loss, mask, "token-mean", global_tokens=14.0), 7 / 14, rtol=1e-6)
  counts = alg.global_normalizers(mask)
  assert float(counts["global_tokens"]) == 3.0 and float(counts["global_seqs"]) == 2.0
  with pytest.raises(ValueError, match="unknown agg_mode 'mean'"):
    alg.aggregate(loss, mask, "mean")


def test_shape_errors_name_the_tensor():
  x = jnp.zeros((2, 3))
  with pytest.raises(ValueError, match="mask has shape"):
    alg.policy_loss("ppo_clip", x, x, jnp.zeros(2), jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="advantages has shape"):
    alg.policy_loss("ppo_clip", x, x, jnp.zeros(3), x)
  with pytest.raises(ValueError, match="unknown policy loss"):
    alg.policy_loss("ppo", x, x, jnp.zeros(2), x)
  with pytest.raises(ValueError, match="dual_clip must be > 1"):
    alg.policy_loss("ppo_clip", x, x, jnp.zeros(2), x, dual_clip=0.5)


# ------------------------------------------------------------------------------------------------
# Properties (fixed shapes so each jitted function compiles once).

_N, _T = 3, 4
_floats = lambda lo, hi: st.lists(
    st.floats(lo, hi, allow_nan=False, width=32), min_size=_N * _T, max_size=_N * _T
)


@jax.jit
def _all_losses_and_grads(logp, old_logp, adv, mask):
  # Every (loss, agg_mode) pair in one compiled function: one compile instead of twelve.
  out = {}
  for name in ["ppo_clip", "gspo", "cispo"]:
    for mode in alg.AGGREGATIONS:
      (loss, _), grad = jax.value_and_grad(alg.policy_loss, argnums=1, has_aux=True)(
          name, logp, old_logp, adv, mask, agg_mode=mode
      )
      out[name, mode] = (loss, grad)
  return out


@settings(max_examples=15, deadline=None)
@given(_floats(-3.0, -0.0625), st.lists(st.integers(0, _T), min_size=_N, max_size=_N))
def test_zero_gradient_at_ratio_one_and_zero_advantage(logp, lengths):
  logp = jnp.array(logp, jnp.float32).reshape(_N, _T)
  mask = (jnp.arange(_T)[None] < jnp.array(lengths)[:, None]).astype(jnp.float32)
  for (name, mode), (loss, grad) in _all_losses_and_grads(logp, logp, jnp.zeros(_N), mask).items():
    np.testing.assert_allclose(grad, 0.0, atol=1e-7, err_msg=f"{name} {mode}")
    # PPO-style values are -A rho = 0; CISPO's -w A logp is 0 too.
    np.testing.assert_allclose(loss, 0.0, atol=1e-7, err_msg=f"{name} {mode}")
  # Sanity: the same inputs with a non-zero advantage do move the policy.
  if float(mask.sum()) > 0:
    moved = _all_losses_and_grads(logp, logp, jnp.ones(_N), mask)
    for key, (_, grad) in moved.items():
      assert float(jnp.abs(grad).max()) > 0, key


_EPS_LO, _EPS_HI, _C = 0.2, 0.28, 3.0


@jax.jit
def _ppo_token_loss_and_grad(log_ratio, adv):
  def per_token(lr):
    return alg.POLICY_LOSSES["ppo_clip"](
        lr, jnp.zeros_like(lr), adv, jnp.ones_like(lr), clip_low=_EPS_LO, clip_high=_EPS_HI, dual_clip=_C
    )[0]

  # Each token's loss depends only on its own log-ratio, so grad of the sum is per-token.
  return per_token(log_ratio), jax.grad(lambda lr: per_token(lr).sum())(log_ratio)


@settings(max_examples=25, deadline=None)
@given(_floats(-2.5, 2.5), _floats(-3.0, 3.0))
def test_clipping_bounds_the_ratio_term(log_ratio, adv):
  log_ratio = jnp.array(log_ratio, jnp.float32).reshape(_N, _T)
  adv = jnp.array(adv, jnp.float32).reshape(_N, _T)
  eps_lo, eps_hi, c = _EPS_LO, _EPS_HI, _C
  loss, grad = _ppo_token_loss_and_grad(log_ratio, adv)
  objective, grad = -np.asarray(loss), np.asarray(grad)
  rho, a = np.exp(np.asarray(log_ratio)), np.asarray(adv)
  tol = 1e-5 * (1 + np.abs(a) * rho)
  # PPO (Schulman et al. 2017, eq. 7): the objective never exceeds (1 + eps_hi) A for A > 0 ...
  assert np.all(objective[a > 0] <= (1 + eps_hi) * a[a > 0] + tol[a > 0])
  # ... is a pessimistic bound of rho A except where the dual clip raises it to c A ...
  assert np.all((objective <= rho * a + tol) | ((a < 0) & (rho > c)))
  # ... and dual-clip (Ye et al. 2020) bounds it below by c A for A < 0.
  assert np.all(objective[a < 0] >= c * a[a < 0] - tol[a < 0])
  # Clipped tokens get no gradient; unclipped tokens get -A rho.
  clipped = ((a > 0) & (rho > 1 + eps_hi)) | ((a < 0) & (rho < 1 - eps_lo)) | ((a < 0) & (rho > c))
  np.testing.assert_allclose(grad[clipped], 0.0, atol=1e-7)
  np.testing.assert_allclose(grad[~clipped], (-a * rho)[~clipped], rtol=1e-5, atol=1e-6)


def test_per_token_advantages_hook():
  # [N, T] advantages that repeat the [N] value give the same loss; a token-level estimator's
  # output (REINFORCE++ on KL-in-reward token rewards) plugs in directly.
  logp = jnp.log(jnp.array([[0.5, 0.25, 0.5], [0.125, 0.5, 0.5]]))
  old = logp - 0.1
  mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
  adv = jnp.array([1.0, -0.5])
  seq, _ = _loss("ppo_clip", logp, old, adv, mask)
  tok, _ = _loss("ppo_clip", logp, old, jnp.broadcast_to(adv[:, None], (2, 3)), mask)
  np.testing.assert_allclose(tok, seq, rtol=1e-6)
  # Hand value: rho = e^0.1 = 1.105 < 1.2 for every token, so loss = -mean_t(A_t rho).
  np.testing.assert_allclose(seq, -math.exp(0.1) * (2 * 1.0 + 3 * -0.5) / 5, rtol=1e-6)
  token_rewards = alg.kl_in_reward(jnp.array([1.0, 0.0]), old, old - 0.2, mask, kl_coef=0.1)
  token_adv = alg.token_advantages("reinforce_pp", token_rewards, mask)
  log_ratio = jnp.array([[0.1, 0.05, 0.0], [0.0, 0.15, -0.1]])  # all inside the clip range
  loss, _ = _loss("ppo_clip", logp, logp - log_ratio, token_adv, mask)
  want = -np.sum(np.asarray(token_adv) * np.exp(np.asarray(log_ratio)) * np.asarray(mask)) / 5
  assert abs(want) > 1e-3
  np.testing.assert_allclose(loss, want, rtol=1e-5)


def test_forking_tokens_80_20_mask_by_hand():
  # 2 rows x 5 tokens, the last token of row 1 padding: 9 valid entropies.
  entropy = jnp.array([[0.1, 0.9, 0.5, 0.3, 0.8], [0.7, 0.2, 0.6, 0.4, 5.0]])
  mask = jnp.array([[1.0] * 5, [1.0] * 4 + [0.0]])
  logp = jnp.zeros((2, 5))  # on-policy: ratio 1, the clipped loss is -A on every token
  adv = jnp.array([1.0, -3.0])
  prepare = alg.POLICY_LOSSES["forking_tokens"].prepare
  # rho = 0.2: sorted valid entropies .1 .2 .3 .4 .5 .6 .7 .8 .9; the 0.8 quantile (no
  # interpolation) is index floor(0.8 * 8) = 6 -> 0.7; kept: 0.9, 0.8, 0.7 (3 of 9 tokens); the
  # padded 5.0 never counts.
  stats = prepare(logp=logp, entropy=entropy, mask=mask, old_logp=logp, advantages=adv, rho=0.2,
                  normalize="kept")
  assert float(stats["threshold"]) == pytest.approx(0.7)
  assert float(stats["scale"]) == pytest.approx(9 / 3)
  total, metrics = alg.policy_loss("forking_tokens", logp, logp, adv, mask, agg_mode="token-mean",
                                   entropy=entropy, batch_stats=stats, rho=0.2, normalize="kept")
  # token-mean over the kept tokens: row 0 keeps 0.9, 0.8 (loss -1 each), row 1 keeps 0.7 (+3).
  assert float(total) == pytest.approx((-1 - 1 + 3) / 3)
  assert float(metrics["forking_kept"]) == pytest.approx(3 / 9)
  # The bottom control trains the complement (6 tokens): row 0 three at -1, row 1 three at +3.
  low = prepare(logp=logp, entropy=entropy, mask=mask, old_logp=logp, advantages=adv, rho=0.2,
                keep="bottom", normalize="kept")
  total, metrics = alg.policy_loss("forking_tokens", logp, logp, adv, mask, agg_mode="token-mean",
                                   entropy=entropy, batch_stats=low, rho=0.2, keep="bottom",
                                   normalize="kept")
  assert float(total) == pytest.approx((-3 + 9) / 6)
  assert float(metrics["forking_kept"]) == pytest.approx(6 / 9)
  # normalize="all" (the default): the same kept tokens divided by all 9.
  flat = prepare(logp=logp, entropy=entropy, mask=mask, old_logp=logp, advantages=adv, rho=0.2)
  total, _ = alg.policy_loss("forking_tokens", logp, logp, adv, mask, agg_mode="token-mean",
                             entropy=entropy, batch_stats=flat, rho=0.2)
  assert float(total) == pytest.approx((-1 - 1 + 3) / 9)
  # No token kept (an empty mini-batch): zero loss, not NaN.
  empty = prepare(logp=logp, entropy=entropy, mask=jnp.zeros((2, 5)), old_logp=logp,
                  advantages=adv, rho=0.2)
  total, metrics = alg.policy_loss("forking_tokens", logp, logp, adv, jnp.zeros((2, 5)),
                                   entropy=entropy, batch_stats=empty, rho=0.2)
  assert float(total) == 0.0 and float(metrics["forking_kept"]) == 0.0


@pytest.mark.parametrize("options, named", [({"rho": 0.0}, "rho=0.0"), ({"rho": 1.5}, "rho=1.5"),
                                            ({"keep": "middle"}, "keep='middle'")])
def test_forking_tokens_options_outside_their_range_are_named(options, named):
  with pytest.raises(ValueError, match=named):
    alg.check_loss_options("forking_tokens", options)


# Clip-Cov / KL-Cov: 2 rows x 3 tokens, A = [2, -1] (mean 0.5), log pi mean -7/6.
# cov = (A - 0.5)(log pi + 7/6): row 0: 1.75, 0.25, -1.25; row 1: 2.75, -1.75, -0.25.
COV_LOGP = jnp.array([[0.0, -1.0, -2.0], [-3.0, 0.0, -1.0]])
COV_ADV = jnp.array([2.0, -1.0])
COV_MASK = jnp.ones((2, 3))


def _cov_loss(name, old, **options):
  stats = alg.POLICY_LOSSES[name].prepare(logp=COV_LOGP, entropy=None, mask=COV_MASK,
                                          old_logp=old, advantages=COV_ADV, **options)
  fn = lambda lp: alg.policy_loss(name, lp, old, COV_ADV, COV_MASK, batch_stats=stats, **options)
  (total, metrics), grad = jax.value_and_grad(fn, has_aux=True)(COV_LOGP)
  return float(total), metrics, np.asarray(grad)


def test_clip_cov_detaches_high_covariance_tokens_by_hand():
  # Band (1, 5): tokens (0, 0) cov 1.75 and (1, 0) cov 2.75 are eligible. On-policy the loss is
  # -A per token: sum -6 + 3 = -3 over 6 tokens.
  total, metrics, grad = _cov_loss("clip_cov", COV_LOGP, ratio=0.34)  # budget 2: both detached
  assert total == pytest.approx((-3 + 2 - 1) / 6)
  assert float(metrics["cov_detached"]) == pytest.approx(2 / 6)
  assert grad[0, 0] == 0.0 and grad[1, 0] == 0.0 and grad[0, 1] != 0.0
  total, metrics, grad = _cov_loss("clip_cov", COV_LOGP, ratio=1 / 6)  # budget 1: one of the two
  assert float(metrics["cov_detached"]) == pytest.approx(1 / 6)
  assert total in (pytest.approx((-3 + 2) / 6), pytest.approx((-3 - 1) / 6))
  assert (grad[0, 0] == 0.0) != (grad[1, 0] == 0.0)
  # No token in the band: nothing detached, plain PPO-clip.
  total, metrics, _ = _cov_loss("clip_cov", COV_LOGP, ratio=0.34, cov_low=3.0, cov_high=5.0)
  assert total == pytest.approx(-3 / 6) and float(metrics["cov_detached"]) == 0.0


def test_kl_cov_penalises_the_top_covariance_tokens_by_hand():
  old = COV_LOGP - 0.5  # |log pi - log pi_old| = 0.5, ratio e^0.5 on every token
  total, metrics, _ = _cov_loss("kl_cov", old, ratio=0.34, cov_coef=1.0)  # top 2: (1,0), (0,0)
  assert total == pytest.approx((math.exp(0.5) * (-6 + 3) + 2 * 0.5) / 6, rel=1e-5)
  assert float(metrics["cov_penalised"]) == pytest.approx(2 / 6)
  # A planted sign flip (penalising the lowest covariance) would pick (0, 2) and (1, 1) instead:
  # the penalised set is the top of the covariance order.
  stats = alg.POLICY_LOSSES["kl_cov"].prepare(logp=COV_LOGP, entropy=None, mask=COV_MASK,
                                              old_logp=old, advantages=COV_ADV, ratio=0.34)
  assert float(stats["cov_threshold"]) == pytest.approx(1.75)


@pytest.mark.parametrize("name, options, named", [
    ("clip_cov", {"ratio": 0.0}, "ratio=0.0"), ("clip_cov", {"cov_low": 5.0}, "cov_low=5.0"),
    ("kl_cov", {"cov_coef": -1.0}, "cov_coef=-1.0")])
def test_cov_options_outside_their_range_are_named(name, options, named):
  with pytest.raises(ValueError, match=named):
    alg.check_loss_options(name, options)


def test_dispo_four_bounds_mask_outside_tokens_by_hand():
  # Row 0 correct (A = +1), row 1 incorrect (A = -1); old log-prob 0 so rho = exp(logp).
  rho = np.array([[1.2, 1.5, 0.7], [0.9, 1.3, 0.75]], np.float32)
  logp = jnp.log(jnp.asarray(rho))
  adv = jnp.array([1.0, -1.0])
  bounds = dict(pos_low=0.2, pos_high=0.28, neg_low=0.2, neg_high=0.28)
  fn = lambda lp: alg.policy_loss("dispo", lp, jnp.zeros_like(lp), adv, jnp.ones((2, 3)),
                                  agg_mode="token-mean", **bounds)
  (_, metrics), grad = jax.value_and_grad(fn, has_aux=True)(logp)
  # Inside [0.8, 1.28]: (0, 0) and (1, 0). The gradient of -sg(rho) A logp is -rho A / 6 there.
  np.testing.assert_allclose(np.asarray(grad), [[-1.2 / 6, 0, 0], [0.9 / 6, 0, 0]], rtol=1e-5)
  assert float(metrics["clip_frac_high"]) == pytest.approx(2 / 6)  # 1.5 and 1.3
  assert float(metrics["clip_frac_low"]) == pytest.approx(2 / 6)  # 0.7 and 0.75
  # The bounds follow the sign: room above 1 for correct responses only (a planted swap of the
  # signs would keep (1, 1) and drop (0, 0)).
  wide_pos = dict(pos_low=0.2, pos_high=0.6, neg_low=0.2, neg_high=0.1)
  fn = lambda lp: alg.policy_loss("dispo", lp, jnp.zeros_like(lp), adv, jnp.ones((2, 3)),
                                  agg_mode="token-mean", **wide_pos)
  (_, _), grad = jax.value_and_grad(fn, has_aux=True)(logp)
  kept = np.asarray(grad) != 0
  np.testing.assert_array_equal(kept, [[True, True, False], [True, False, False]])
  with pytest.raises(ValueError, match="neg_high=-0.1"):
    alg.check_loss_options("dispo", {"neg_high": -0.1})


def test_ace_scales_confident_errors_by_hand():
  old = jnp.log(jnp.full((2, 2), 0.5))
  ref = old - jnp.array([[0.0, 0.0], [0.5, 0.5]])  # row 1: log-ratio 0.5 per token, c = 1.0
  adv = jnp.array([1.0, -1.0])
  total, metrics = alg.policy_loss("ace", old, old, adv, jnp.ones((2, 2)), agg_mode="token-mean",
                                   ref_logp=ref, alpha=1.0)
  factor = 1.0 + math.log1p(math.e)  # 1 + softplus(1)
  assert float(total) == pytest.approx((-2.0 + 2 * factor) / 4, rel=1e-5)
  assert float(metrics["ace_scale"]) == pytest.approx((2 + 2 * factor) / 4, rel=1e-5)
  # Positive advantages are never scaled, however confident: with the signs flipped, row 1
  # (c = 1, now A = +1) keeps -1 per token and row 0 (c = 0, A = -1) gets 1 + softplus(0) = 1 + ln 2.
  total, _ = alg.policy_loss("ace", old, old, -adv, jnp.ones((2, 2)), agg_mode="token-mean",
                             ref_logp=ref, alpha=1.0)
  assert float(total) == pytest.approx((2 * (1 + math.log(2)) - 2) / 4, rel=1e-5)


def test_lp_reg_by_hand():
  # One incorrect response (A = -1), on-policy; old max prob 0.6 everywhere, kept mass 0.8.
  probs = np.array([[0.5, 0.01, 0.001, 0.2]], np.float32)
  logp = jnp.log(jnp.asarray(probs))
  adv = jnp.array([-1.0])
  side = dict(old_max_logp=jnp.log(jnp.full((1, 4), 0.6)),
              old_minp_logmass=jnp.log(jnp.full((1, 4), 0.8)))
  opts = dict(kappa=0.01, neg_frac=0.5, beta=1.0)  # cut 0.006: 0.001 is filtered out
  stats = alg.POLICY_LOSSES["lp_reg"].prepare(logp=logp, entropy=None, mask=jnp.ones((1, 4)),
                                              old_logp=logp, advantages=adv, **opts)
  # Candidates: the lowest half of the negative tokens, 0.001 and 0.01 (threshold log 0.01).
  assert float(stats["neg_threshold"]) == pytest.approx(math.log(0.01), rel=1e-5)
  fn = lambda lp: alg.policy_loss("lp_reg", lp, logp, adv, jnp.ones((1, 4)), agg_mode="token-mean",
                                  batch_stats=stats, **side, **opts)
  (total, metrics), grad = jax.value_and_grad(fn, has_aux=True)(logp)
  # Only 0.01 is regularised: proxy 0.01 / 0.8 = 0.0125 > 0.01, k3 = 1.25 - 1 - ln 1.25.
  k3 = 0.25 - math.log(1.25)
  assert float(total) == pytest.approx((4.0 + k3) / 4, rel=1e-5)
  assert float(metrics["lp_reg_frac"]) == pytest.approx(1 / 4)
  # Its gradient: -A + beta * (1 - 1.25) = 0.75 (token-mean / 4); the others: -A = 1 (/ 4).
  np.testing.assert_allclose(np.asarray(grad), [[0.25, 0.75 / 4, 0.25, 0.25]], rtol=1e-5)
  # A positive response is left alone at pos_frac = 0 (the default).
  (total, metrics), _ = jax.value_and_grad(
      lambda lp: alg.policy_loss("lp_reg", lp, logp, -adv, jnp.ones((1, 4)), batch_stats=stats,
                                 **side, **opts), has_aux=True)(logp)
  assert float(metrics["lp_reg_frac"]) == 0.0
  with pytest.raises(ValueError, match="kappa=1.5"):
    alg.check_loss_options("lp_reg", {"kappa": 1.5})


def test_minp_logmass_matches_the_materialised_distribution():
  rng = np.random.default_rng(0)
  hidden = jnp.asarray(rng.normal(size=(6, 8)), jnp.float32)
  weight = jnp.asarray(rng.normal(size=(8, 50)), jnp.float32)
  targets = jnp.asarray(rng.integers(0, 50, size=6))
  logits = hidden @ weight / 0.7
  logprobs = jax.nn.log_softmax(logits, axis=-1)
  logp = jnp.take_along_axis(logprobs, targets[:, None], axis=-1)[:, 0]
  max_logp = alg.max_logprob_from_logp(hidden, weight, targets, logp, 0.7, block_vocab=16)
  np.testing.assert_allclose(max_logp, logprobs.max(-1), atol=1e-5)
  mass = alg.minp_logmass_from_logp(hidden, weight, targets, logp, max_logp, 0.05, 0.7,
                                    block_vocab=16)
  p = np.exp(np.asarray(logprobs))
  want = np.log((p * (p >= 0.05 * p.max(-1, keepdims=True))).sum(-1))
  np.testing.assert_allclose(mass, want, atol=1e-5)


def test_ppo_clip_tis_by_hand():
  """EAD's loss on-policy (rho = 1): token 0 has pi_old = 0.5 under a sampler that gave it 0.25
  (weight 2, capped at C = 1.5); token 1 has 0.2 vs 0.4 (weight 0.5). A = +1, token-mean over 2:
  loss = -(1.5 + 0.5) / 2 = -1; d loss / d logp = -w A / 2 = (-0.75, -0.25)."""
  old = jnp.log(jnp.array([[0.5, 0.2]]))
  behaviour = jnp.log(jnp.array([[0.25, 0.4]]))
  adv, mask = jnp.array([1.0]), jnp.ones((1, 2))
  fn = lambda lp: alg.policy_loss("ppo_clip_tis", lp, jax.lax.stop_gradient(lp), adv, mask,
                                  behaviour_logp=behaviour, tis_cap=1.5)
  (loss, metrics), grad = jax.value_and_grad(fn, has_aux=True)(old)
  np.testing.assert_allclose(loss, -1.0, rtol=1e-6)
  np.testing.assert_allclose(grad, [[-0.75, -0.25]], rtol=1e-6)
  np.testing.assert_allclose(metrics["tis_weight"], 1.0, rtol=1e-6)  # (1.5 + 0.5) / 2
  np.testing.assert_allclose(metrics["tis_capped"], 0.5)
  with pytest.raises(ValueError, match="tis_cap=0.5 must be a number >= 1"):
    alg.check_loss_options("ppo_clip_tis", {"tis_cap": 0.5})
