"""Per-position temperature schedules: the constant default is the old sampler, scheduled log-probs are
the model's log-softmax at each position's temperature, a flat schedule equals a constant temperature,
and bad settings raise naming the field."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rlvr_jax import models
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.parallel.sampler import MeshSampler
from rlvr_jax.sampling import (TEMPERATURE_SCHEDULES, TRACE_COUNTS, SamplerConfig, generate,
                               position_temperature)
from tests.sampling.sampling_helpers import _forward, tiny_model

VOCAB = 64
N = 6  # new tokens
PROMPTS = [[1, 2, 3], [4, 5, 6, 7, 8]]
BASE = dict(max_new_tokens=N, num_samples=3, seed=7)


@pytest.fixture(scope="module")
def model():
  return tiny_model(vocab_size=VOCAB, num_layers=1, max_position_embeddings=32)


def reference_temperature(schedule, t0, t1, t, n):
  """The schedule formulas, written out again in float64."""
  d = max(n - 1, 1)
  if schedule == "linear":
    return t0 + (t1 - t0) * t / d
  return t1 + (t0 - t1) * 0.5 * (1 + math.cos(math.pi * t / d))


def teacher_forced_logprobs(model, prompts, out, temperatures):
  """log_softmax(logits / T_t)[token t] by one full forward over prompt + sampled tokens (float32)."""
  g = out.num_samples
  seqs = [list(prompts[r // g]) + out.tokens[r, :out.lengths[r]].tolist() for r in range(len(out.tokens))]
  buf = np.zeros((len(seqs), max(map(len, seqs))), np.int32)  # right padded: invisible to causal rows
  for i, s in enumerate(seqs):
    buf[i, :len(s)] = s
  logits = np.asarray(_forward(model, jnp.asarray(buf)), np.float32)  # [R, T, V]
  want = np.zeros(out.logprobs.shape, np.float32)
  for r in range(len(seqs)):
    start = len(prompts[r // g]) - 1  # logits at the last prompt token predict new token 0
    for t in range(out.lengths[r]):
      z = logits[r, start + t] / np.float32(temperatures[t])
      z = z - z.max()
      want[r, t] = z[out.tokens[r, t]] - np.log(np.exp(z).sum())
  return want


def test_position_temperature_formulas():
  for schedule, t0, t1, n in [("linear", 1.5, 0.5, 6), ("cosine", 0.4, 1.2, 9), ("linear", 0.7, 1.1, 1),
                              ("cosine", 2.0, 0.5, 2)]:
    cfg = SamplerConfig(max_new_tokens=n, temperature=t0, temperature_end=t1, temperature_schedule=schedule)
    got = [float(position_temperature(cfg, t)) for t in range(n)]
    want = [reference_temperature(schedule, t0, t1, t, n) for t in range(n)]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    # The tuple form, and a traced t under jit, give the same float32 values (up to an ulp of cos).
    args = (t0, t1, schedule, n)
    traced = jax.jit(jax.vmap(lambda t: position_temperature(args, t)))(jnp.arange(n, dtype=jnp.int32))
    np.testing.assert_allclose(np.asarray(traced), np.asarray(got, np.float32), rtol=3e-7, atol=0)
    assert got[0] == pytest.approx(t0) and (n == 1 or got[-1] == pytest.approx(t1))
  cfg = SamplerConfig(max_new_tokens=5, temperature=1.0, temperature_end=0.5, temperature_schedule="cosine")
  assert float(position_temperature(cfg, 2)) == pytest.approx(0.75)  # cosine midpoint
  assert position_temperature(SamplerConfig(max_new_tokens=4, temperature=0.8), 3) == 0.8  # a Python float


def test_constant_schedule_is_the_unscheduled_sampler(model):
  plain = SamplerConfig(max_new_tokens=N, num_samples=3, temperature=0.9, top_k=20)
  for kw in [dict(temperature_schedule="constant"), dict(temperature_end=None),
             dict(temperature_end=0.9, temperature_schedule="constant")]:  # == temperature: normalised
    same = SamplerConfig(max_new_tokens=N, num_samples=3, temperature=0.9, top_k=20, **kw)
    assert same == plain and hash(same) == hash(plain) and same.temperature_end is None
  ref = generate(model, PROMPTS, temperature=0.9, top_k=20, **BASE)
  traces = sum(TRACE_COUNTS.values())
  got = generate(model, PROMPTS, temperature=0.9, top_k=20, temperature_end=None,
                 temperature_schedule="constant", **BASE)
  assert sum(TRACE_COUNTS.values()) == traces  # same config: the same compiled program, no retrace
  for name in ("tokens", "lengths", "logprobs", "finish_reason"):
    np.testing.assert_array_equal(getattr(got, name), getattr(ref, name))


@pytest.mark.parametrize("schedule, t0, t1", [("linear", 2.0, 0.25), ("cosine", 0.3, 1.8)])
def test_scheduled_logprobs_are_the_log_softmax_at_each_position_temperature(model, schedule, t0, t1):
  out = generate(model, PROMPTS, temperature=t0, temperature_end=t1, temperature_schedule=schedule, **BASE)
  assert (out.lengths == N).all()  # no stop ids: every position is checked
  temps = [reference_temperature(schedule, t0, t1, t, N) for t in range(N)]
  want = teacher_forced_logprobs(model, PROMPTS, out, temps)
  np.testing.assert_allclose(out.logprobs, want, atol=1e-5, rtol=0)
  # Power check: the log-probs at the constant start temperature are clearly different.
  wrong = teacher_forced_logprobs(model, PROMPTS, out, [t0] * N)
  assert np.abs(out.logprobs[:, 1:] - wrong[:, 1:]).max() > 1e-2


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_flat_schedule_equals_constant_temperature(model, schedule):
  kw = dict(temperature=0.8, top_p=0.9, **BASE)
  ref = generate(model, PROMPTS, **kw)
  got = generate(model, PROMPTS, temperature_end=0.8, temperature_schedule=schedule, **kw)
  np.testing.assert_array_equal(got.tokens, ref.tokens)
  np.testing.assert_array_equal(got.lengths, ref.lengths)
  np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=1e-6, rtol=0)


def test_mesh_sampler_passes_the_schedule(model):
  graphdef, params = nnx.split(model)
  mesh = mesh_lib.make_mesh({"data": 1})
  shardings = mesh_lib.param_shardings(params, models.logical_axes(model), mesh)
  sampler = MeshSampler(mesh, None, graphdef, shardings, model.config)
  kw = dict(temperature=1.5, temperature_end=0.5, temperature_schedule="linear", **BASE)
  got = sampler.generate(jax.device_put(params, shardings), PROMPTS, **kw)
  ref = generate(model, PROMPTS, **kw)
  np.testing.assert_array_equal(got.tokens, ref.tokens)
  np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=1e-6, rtol=0)
  with pytest.raises(ValueError, match="temperature_schedule='exp'"):
    sampler.generate(params, PROMPTS, max_new_tokens=N, temperature_schedule="exp")


def test_bad_schedules_raise(model):
  valid = ", ".join(repr(s) for s in TEMPERATURE_SCHEDULES)
  cases = [
      (dict(temperature_schedule="exp", temperature_end=0.5), "temperature_schedule='exp'; valid values are "
       + valid),
      (dict(temperature_schedule="Linear", temperature_end=0.5), "temperature_schedule='Linear'"),
      (dict(temperature_schedule="linear"), "temperature_schedule='linear' needs temperature_end"),
      (dict(temperature_schedule="cosine", temperature_end=0.0), r"temperature_end=0.0; need a finite "
       r"temperature_end > 0"),
      (dict(temperature_schedule="linear", temperature_end=-1.0), "temperature_end=-1.0"),
      (dict(temperature_schedule="linear", temperature_end="hot"), "temperature_end='hot'"),
      (dict(temperature=0.0, temperature_schedule="linear", temperature_end=0.5),
       r"temperature=0 \(greedy\) with temperature_schedule='linear'"),
      (dict(temperature=1.0, temperature_end=0.5), "temperature_end=0.5 has no effect with "
       "temperature_schedule='constant'"),
  ]
  for kw, match in cases:
    with pytest.raises(ValueError, match=match):
      SamplerConfig(max_new_tokens=4, **kw)
    with pytest.raises(ValueError, match=match):  # raised on the host, before anything compiles
      generate(model, [[1]], max_new_tokens=4, **kw)
  with pytest.raises(ValueError, match="valid values are"):
    position_temperature((1.0, 0.5, "exp", 4), 0)


def ead_reference(t0, t1, decay, offset, t):
  """EAD (arXiv 2510.05251) written out in float64: 1 before the offset, then
  max(1 + tau_max - exp((t - c) / d), tau_min)."""
  return 1.0 if t < offset else max(1.0 + t0 - math.exp((t - offset) / decay), t1)


def test_ead_schedule_values_logprobs_and_no_recompile_when_the_decay_changes(model):
  cfg = SamplerConfig(max_new_tokens=N, temperature=1.3, temperature_end=0.6,
                      temperature_schedule="ead", temperature_offset=1)
  # By hand, decay 2: t=0 -> 1 (offset); t=1 -> 1.3; t=2 -> 2.3 - e^0.5 = 0.6513; t>=3 -> 0.6.
  got = [float(position_temperature(cfg, t, 2.0)) for t in range(N)]
  np.testing.assert_allclose(got, [1.0, 1.3, 2.3 - math.exp(0.5), 0.6, 0.6, 0.6], rtol=1e-6)
  kw = dict(temperature=1.3, temperature_end=0.6, temperature_schedule="ead", temperature_offset=1,
            **BASE)
  out = generate(model, PROMPTS, temperature_decay=4.0, **kw)
  temps = [ead_reference(1.3, 0.6, 4.0, 1, t) for t in range(N)]
  np.testing.assert_allclose(out.logprobs, teacher_forced_logprobs(model, PROMPTS, out, temps),
                             atol=1e-5, rtol=0)
  traces = sum(TRACE_COUNTS.values())
  later = generate(model, PROMPTS, temperature_decay=40.0, **kw)  # a later training step
  assert sum(TRACE_COUNTS.values()) == traces  # the decay is a run-time argument
  temps = [ead_reference(1.3, 0.6, 40.0, 1, t) for t in range(N)]
  np.testing.assert_allclose(later.logprobs, teacher_forced_logprobs(model, PROMPTS, later, temps),
                             atol=1e-5, rtol=0)
  with pytest.raises(ValueError, match="'ead' needs temperature_decay > 0; got None"):
    generate(model, PROMPTS, **kw)
  with pytest.raises(ValueError, match="temperature_decay=3.0 only applies to temperature_schedule="
                     "'ead'"):
    generate(model, PROMPTS, temperature_decay=3.0, **BASE)
  with pytest.raises(ValueError, match="temperature_offset=2 only applies to"):
    SamplerConfig(max_new_tokens=N, temperature_offset=2)


def test_mesh_sampler_passes_the_ead_decay(model):
  graphdef, params = nnx.split(model)
  mesh = mesh_lib.make_mesh({"data": 1})
  shardings = mesh_lib.param_shardings(params, models.logical_axes(model), mesh)
  sampler = MeshSampler(mesh, None, graphdef, shardings, model.config)
  kw = dict(temperature=1.4, temperature_end=0.5, temperature_schedule="ead", temperature_decay=3.0,
            **BASE)
  got = sampler.generate(jax.device_put(params, shardings), PROMPTS, **kw)
  ref = generate(model, PROMPTS, **kw)
  np.testing.assert_array_equal(got.tokens, ref.tokens)
  np.testing.assert_allclose(got.logprobs, ref.logprobs, atol=1e-6, rtol=0)
