"""rlvr_jax.kernels.logprob public entry point: import styles, selection/fallback, input errors."""
import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rlvr_jax.kernels
from rlvr_jax.kernels import logprob
from rlvr_jax.kernels.logprob import api, reference


def _inputs(num_tokens=11, dim=8, vocab=70, dtype=jnp.float32):
  k_h, k_w, k_t = jax.random.split(jax.random.key(7), 3)
  hidden = jax.random.normal(k_h, (num_tokens, dim)).astype(dtype)
  weight = (jax.random.normal(k_w, (dim, vocab)) * 0.7).astype(dtype)
  return hidden, weight, jax.random.randint(k_t, (num_tokens,), 0, vocab)


def test_both_import_styles_call_the_op():
  hidden, weight, targets = _inputs()
  want = jax.jit(reference.logprob_reference)(hidden, weight, targets)
  for fn in (logprob, rlvr_jax.kernels.logprob):
    got = jax.jit(fn)(hidden, weight, targets)  # temperature 1.0, implementation None by default
    for g, w in zip(got, want):
      np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("implementation", [None, "reference", "xla", "pallas"])
def test_every_request_runs_on_cpu_and_matches_reference(implementation):
  hidden, weight, targets = _inputs()
  want = jax.jit(reference.logprob_reference, static_argnums=3)(hidden, weight, targets, 1.3)
  loss = lambda h, w, impl: jnp.sum(jnp.stack(logprob(h, w, targets, temperature=1.3,
                                                      implementation=impl)) * jnp.array([[1.0], [0.5]]))
  got = jax.jit(logprob, static_argnames=("temperature", "implementation"))(
      hidden, weight, targets, temperature=1.3, implementation=implementation)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
  grads = jax.jit(jax.grad(loss, argnums=(0, 1)), static_argnums=2)
  got_grads = grads(hidden, weight, implementation)
  want_grads = grads(hidden, weight, "reference")
  for g, w in zip(got_grads, want_grads):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("request_, backend, dtype, expected", [
    (None, "cpu", jnp.float32, "xla"),
    (None, "tpu", jnp.bfloat16, "pallas_tpu"),
    (None, "gpu", jnp.bfloat16, "xla"),  # Mosaic GPU kernel not validated on hardware yet
    ("pallas", "tpu", jnp.float32, "pallas_tpu"),
    ("pallas", "cpu", jnp.float32, "pallas_tpu_interpret"),
    ("pallas", "gpu", jnp.float32, "xla"),  # wgmma kernel takes bf16/f16 only
    ("xla", "tpu", jnp.float32, "xla"),
    ("reference", "gpu", jnp.float32, "reference"),
])
def test_selection_table(request_, backend, dtype, expected):
  got = api.select_implementation(request_, backend, (64, 128), (128, 256), dtype)
  assert got == expected
  assert got in api.IMPLEMENTATIONS


def test_fallback_logs_its_reason(caplog):
  api._already_logged.clear()
  with caplog.at_level(logging.WARNING):
    assert api.select_implementation("pallas", "gpu", (64, 100), (100, 256), jnp.bfloat16) == "xla"
  assert "D=100 is not a multiple of 64" in caplog.text
  assert "falling back to 'xla'" in caplog.text


@pytest.mark.parametrize("args, kwargs, message", [
    ((jnp.zeros((2, 3, 4)), jnp.zeros((4, 5)), jnp.zeros((2,), jnp.int32)), {}, "hidden must be"),
    ((jnp.zeros((2, 4)), jnp.zeros((4,)), jnp.zeros((2,), jnp.int32)), {}, "weight must be"),
    ((jnp.zeros((2, 4)), jnp.zeros((5, 4)), jnp.zeros((2,), jnp.int32)), {}, "disagree on D"),
    ((jnp.zeros((2, 4)), jnp.zeros((4, 5)), jnp.zeros((3,), jnp.int32)), {}, "targets must be"),
    ((jnp.zeros((2, 4)), jnp.zeros((4, 5)), jnp.zeros((2,))), {}, "integer token ids"),
    ((jnp.zeros((2, 4), jnp.int32), jnp.zeros((4, 5)), jnp.zeros((2,), jnp.int32)), {},
     "hidden must be floating"),
    ((jnp.zeros((2, 4)), jnp.zeros((4, 5)), jnp.zeros((2,), jnp.int32)), {"temperature": 0.0},
     "temperature must be finite and > 0"),
    ((jnp.zeros((2, 4)), jnp.zeros((4, 5)), jnp.zeros((2,), jnp.int32)),
     {"implementation": "triton"}, "is not one of"),
])
def test_bad_inputs_raise_value_error_naming_the_culprit(args, kwargs, message):
  with pytest.raises(ValueError, match=message):
    logprob(*args, **kwargs)


def test_traced_temperature_is_rejected_with_a_hint():
  hidden, weight, targets = _inputs()
  with pytest.raises(ValueError, match="static Python float"):
    jax.jit(lambda t: logprob(hidden, weight, targets, temperature=t))(1.0)


def test_mixed_dtypes_fall_back_from_pallas_to_xla(caplog):
  hidden, weight, targets = _inputs()
  api._already_logged.clear()
  with caplog.at_level(logging.WARNING):
    got = jax.jit(logprob, static_argnames="implementation")(
        hidden.astype(jnp.bfloat16), weight, targets, implementation="pallas")
  assert "falling back to 'xla'" in caplog.text
  want = jax.jit(reference.logprob_reference)(hidden.astype(jnp.bfloat16), weight, targets)
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_repeated_calls_do_not_retrace():
  import chex
  hidden, weight, targets = _inputs()

  @jax.jit
  @chex.assert_max_traces(n=1)
  def step(h, w, t):
    return jax.grad(lambda h, w: jnp.sum(sum(logprob(h, w, t, temperature=0.7))), (0, 1))(h, w)

  first = step(hidden, weight, targets)
  second = step(hidden * 2.0, weight, targets)  # new values, same shapes: no new trace
  assert not np.allclose(first[0], second[0])
