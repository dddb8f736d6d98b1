"""Sampling frequencies match the model's (filtered) softmax: chi-square tests, and exact log-probs."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from rlvr_jax.sampling import candidate_logits, generate, row_keys
from rlvr_jax.sampling.processing import NEG_INF, gumbel_argmax
from tests.sampling.sampling_helpers import last_logits, tiny_model

VOCAB = 16
G = 4096  # draws per prompt; detects ~6% relative deviations of a cell of probability 1/16
PROMPTS = [[1, 2, 3, 4], [5, 6, 7]]


def reference_probs(logits, *, temperature=1.0, top_k=0, top_p=1.0, min_p=0.0) -> np.ndarray:
  """The sampling distribution in float64 numpy, written independently of processing.py."""
  z = np.asarray(logits, np.float64) / temperature
  order = np.argsort(-z, kind="stable")
  keep = np.zeros(z.shape, bool)
  k = top_k if top_k > 0 else z.size
  keep[order[:k]] = True
  p = np.where(keep, np.exp(z - z.max()), 0.0)
  p /= p.sum()
  if top_p < 1.0:
    mass, nucleus = 0.0, np.zeros(z.shape, bool)
    for i in order:
      if not keep[i] or mass >= top_p:
        break
      nucleus[i], mass = True, mass + p[i]
    p = np.where(nucleus, p, 0.0)
    p /= p.sum()
  if min_p > 0:
    p = np.where(p >= min_p * p.max(), p, 0.0)
    p /= p.sum()
  return p


def _chi2_pvalue(counts, probs) -> float:
  """Pearson chi-square p-value over the support, pooling cells with expected count < 5."""
  n = counts.sum()
  assert counts[probs == 0].sum() == 0, "sampled a token outside the support"
  exp, obs = probs[probs > 0] * n, counts[probs > 0]
  small = exp < 5
  if small.any():
    exp = np.append(exp[~small], exp[small].sum())
    obs = np.append(obs[~small], obs[small].sum())
  if exp.size < 2:
    return 1.0
  return float(stats.chisquare(obs, exp).pvalue)


SETTINGS = {
    "plain": dict(temperature=1.0),
    "top_k": dict(temperature=0.7, top_k=5),
    "top_p": dict(temperature=1.0, top_p=0.6),
    "top_k_top_p_min_p": dict(temperature=1.3, top_k=10, top_p=0.9, min_p=0.2),
}


@pytest.fixture(scope="module")
def model():
  return tiny_model(vocab_size=VOCAB)


@functools.lru_cache(maxsize=None)
def _draws(model, name):
  """One generate call per setting (each setting is one compiled program), shared between tests."""
  return generate(model, PROMPTS, max_new_tokens=2, num_samples=G, seed=3, **SETTINGS[name])


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_two_token_frequencies_match_softmax(model, name):
  kw = SETTINGS[name]
  out = _draws(model, name)
  pvalues = []
  first_logits = last_logits(model, PROMPTS)  # [P, V], by a plain full forward
  for p, prompt in enumerate(PROMPTS):
    rows = slice(p * G, (p + 1) * G)
    tok0, tok1 = out.tokens[rows, 0], out.tokens[rows, 1]
    probs0 = reference_probs(first_logits[p], **kw)
    pvalues.append(_chi2_pvalue(np.bincount(tok0, minlength=VOCAB), probs0))
    np.testing.assert_allclose(out.logprobs[rows, 0], np.log(probs0[tok0]), atol=2e-4, rtol=0)
    # Second token, conditioned on the first: one test per first token drawn often enough.
    firsts = [t for t in np.unique(tok0) if (tok0 == t).sum() >= 400]
    second_logits = last_logits(model, [prompt + [int(t)] for t in firsts])
    for t, logits in zip(firsts, second_logits):
      sel = tok0 == t
      probs1 = reference_probs(logits, **kw)
      pvalues.append(_chi2_pvalue(np.bincount(tok1[sel], minlength=VOCAB), probs1))
      np.testing.assert_allclose(out.logprobs[rows, 1][sel], np.log(probs1[tok1[sel]]), atol=2e-4, rtol=0)
  assert len(pvalues) >= 4
  # Fixed seed, so this is deterministic; 1e-3 per test keeps the family-wise false alarm rate low.
  assert min(pvalues) > 1e-3, pvalues
  assert (out.lengths == 2).all()


def test_sampler_is_not_a_constant_distribution(model):
  """Power check: the chi-square above rejects a wrong temperature on the same draws."""
  out = _draws(model, "plain")
  counts = np.bincount(out.tokens[:G, 0], minlength=VOCAB)
  wrong = reference_probs(last_logits(model, PROMPTS[:1])[0], temperature=1.5)
  assert _chi2_pvalue(counts, wrong) < 1e-6


def test_candidate_logits_match_reference_filters():
  rng = np.random.RandomState(0)
  logits = rng.randn(6, 40).astype(np.float32) * 2
  for kw in [dict(top_k=7), dict(top_p=0.5), dict(top_k=12, top_p=0.8), dict(min_p=0.1),
             dict(top_p=0.95, min_p=0.05)]:
    kw = dict(dict(temperature=0.8, top_k=0, top_p=1.0, min_p=0.0), **kw)
    values, ids = jax.jit(lambda x: candidate_logits(x, **kw))(jnp.asarray(logits))
    values = np.asarray(values, np.float64)
    ids = np.broadcast_to(np.arange(40), values.shape) if ids is None else np.asarray(ids)
    for b in range(6):
      got = np.zeros(40)
      np.add.at(got, ids[b], np.exp(values[b] - values[b].max()))
      np.testing.assert_allclose(got / got.sum(), reference_probs(logits[b], **kw), atol=1e-6, rtol=0)


def test_two_level_gumbel_draw_is_exact():
  """`gumbel_argmax` on more than 64 candidates (blocks, a padded last block, filtered entries)."""
  c, draws = 300, 100_000
  rng = np.random.RandomState(1)
  values = (rng.randn(c) * 2).astype(np.float32)
  values[rng.rand(c) < 0.3] = NEG_INF  # filtered candidates, as top-p / min-p leave them
  values[17 * 16:] = NEG_INF  # a whole block and the padded tail block filtered
  picks = jax.jit(lambda v, k: gumbel_argmax(jnp.broadcast_to(v, (draws, c)), row_keys(k, 0, draws)))(
      jnp.asarray(values), jax.random.key(5))
  probs = np.where(values > NEG_INF / 2, np.exp(values.astype(np.float64) - values.max()), 0.0)
  probs /= probs.sum()
  pvalue = _chi2_pvalue(np.bincount(np.asarray(picks), minlength=c), probs)
  assert pvalue > 1e-3, pvalue
