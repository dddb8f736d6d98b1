"""The decoder's own contracts: KV-cache decode == full forward, packing, masks, remat, axes."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rlvr_jax.models import ModelConfig, Transformer, logical_axes

# init_std 0.1 gives O(1) logits (max |logit| ~2-4), so agreement checks are not trivially satisfied by ~0 outputs.
CONFIGS = {
    "llama": ModelConfig.tiny_llama(init_std=0.1),
    "qwen2": ModelConfig.tiny_qwen2(init_std=0.1),
    "qwen3": ModelConfig.tiny_qwen3(init_std=0.1),
}


def _model(name, **kw):
  return Transformer(CONFIGS[name].replace(**kw), rngs=nnx.Rngs(0))


@nnx.jit
def _fwd(model, tokens, positions=None, attention_mask=None, segment_ids=None):
  """Jitted forward: eager NNX runs op by op and is several times slower even for tiny models."""
  return model(tokens, positions=positions, attention_mask=attention_mask, segment_ids=segment_ids)


@nnx.jit
def _hidden_and_unembed(model, tokens):
  return model.hidden_states(tokens), model.unembed_weight()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_prefill_then_decode_matches_forward(name):
  model = _model(name)
  graphdef, state = nnx.split(model)
  b, p, new, s = 3, 12, 6, 24
  rng = np.random.RandomState(0)
  lengths = np.array([12, 9, 4])
  prompt_mask = np.arange(p)[None, :] >= (p - lengths)[:, None]  # left padding, [B, P]
  prompt = np.where(prompt_mask, rng.randint(0, 256, (b, p)), 0)
  generated = rng.randint(0, 256, (b, new))  # teacher-forced "samples"
  traces = []

  @jax.jit
  def step(state, tokens, positions, cache, index, kv_mask):
    traces.append(tokens.shape)  # runs once per trace, not per call
    m = nnx.merge(graphdef, state)
    return m.decode(tokens, positions=positions, cache=cache, cache_index=index, kv_mask=kv_mask)

  kv_mask = np.zeros((b, s), bool)
  kv_mask[:, :p] = prompt_mask
  prompt_pos = np.maximum(np.cumsum(prompt_mask, 1) - 1, 0)
  cache = model.init_cache(b, s)
  assert cache["k"].shape == (2, b, 2, s, model.config.head_dim)
  prefill, cache = step(state, jnp.asarray(prompt, jnp.int32), jnp.asarray(prompt_pos, jnp.int32), cache,
                        jnp.int32(0), jnp.asarray(kv_mask))
  steps = []
  for i in range(new):
    kv_mask[:, p + i] = True
    pos = jnp.asarray(lengths + i, jnp.int32)[:, None]
    logits, cache = step(state, jnp.asarray(generated[:, i:i + 1], jnp.int32), pos, cache,
                         jnp.int32(p + i), jnp.asarray(kv_mask))
    steps.append(np.asarray(logits[:, 0]))
  assert len(traces) == 2  # one prefill trace, one step trace: cache_index is traced

  full_mask = np.concatenate([prompt_mask, np.ones((b, new), bool)], 1)
  full = _fwd(model, jnp.asarray(np.concatenate([prompt, generated], 1), jnp.int32),
               positions=jnp.asarray(np.maximum(np.cumsum(full_mask, 1) - 1, 0), jnp.int32),
               attention_mask=jnp.asarray(full_mask, jnp.int32))
  full = np.asarray(full)
  assert np.abs(full).max() > 0.5
  np.testing.assert_allclose(np.asarray(prefill)[prompt_mask], full[:, :p][prompt_mask], atol=1e-5, rtol=0)
  np.testing.assert_allclose(np.stack(steps, 1), full[:, p:], atol=1e-5, rtol=0)


def test_packed_segments_match_separate_sequences():
  model = _model("qwen3")
  rng = np.random.RandomState(1)
  a, c = rng.randint(0, 256, 5), rng.randint(0, 256, 7)
  packed = np.concatenate([a, c, np.zeros(4, int)])[None]
  segments = np.array([[1] * 5 + [2] * 7 + [0] * 4])
  positions = np.array([list(range(5)) + list(range(7)) + [0] * 4])
  out = np.asarray(_fwd(model, jnp.asarray(packed, jnp.int32), positions=jnp.asarray(positions, jnp.int32),
                        segment_ids=jnp.asarray(segments, jnp.int32)))
  alone_a = np.asarray(_fwd(model, jnp.asarray(a[None], jnp.int32)))
  alone_c = np.asarray(_fwd(model, jnp.asarray(c[None], jnp.int32)))
  np.testing.assert_allclose(out[0, :5], alone_a[0], atol=1e-5, rtol=0)
  np.testing.assert_allclose(out[0, 5:12], alone_c[0], atol=1e-5, rtol=0)
  assert np.isfinite(out).all()


def test_fully_masked_rows_are_finite_and_do_not_leak():
  model = _model("llama")
  tokens = jnp.asarray(np.random.RandomState(2).randint(0, 256, (2, 8)), jnp.int32)
  mask = jnp.asarray([[0] * 8, [1] * 8], jnp.int32)
  out = _fwd(model, tokens, attention_mask=mask)
  assert np.isfinite(np.asarray(out)).all()
  np.testing.assert_allclose(np.asarray(out[1]), np.asarray(_fwd(model, tokens[1:])[0]), atol=1e-5, rtol=0)
  grads = nnx.jit(nnx.grad(lambda m: m(tokens, attention_mask=mask).sum()))(model)
  assert all(np.isfinite(np.asarray(g)).all() for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("name", ["llama", "qwen2"])  # tied, untied
def test_hidden_states_times_unembed_is_logits(name):
  model = _model(name)
  tokens = jnp.asarray(np.random.RandomState(3).randint(0, 256, (2, 10)), jnp.int32)
  hidden, w = _hidden_and_unembed(model, tokens)
  assert hidden.shape == (2, 10, 64) and w.shape == (64, 256)
  expected = np.asarray(hidden, np.float64) @ np.asarray(w, np.float64)
  np.testing.assert_allclose(np.asarray(_fwd(model, tokens)), expected, atol=1e-5, rtol=0)
  if name == "llama":
    np.testing.assert_array_equal(np.asarray(w), np.asarray(model.embed[...]).T)


def test_bf16_compute_keeps_f32_logits():
  model = _model("qwen2", param_dtype="float32", dtype=jnp.bfloat16)
  tokens = jnp.asarray(np.random.RandomState(4).randint(0, 256, (2, 10)), jnp.int32)
  assert _hidden_and_unembed(model, tokens)[0].dtype == jnp.bfloat16
  logits16 = _fwd(model, tokens)
  assert logits16.dtype == jnp.float32
  logits32 = _fwd(_model("qwen2"), tokens)  # same seed, same float32 params
  err = float(jnp.abs(logits16 - logits32).max())
  assert 0 < err < 0.1 * float(jnp.abs(logits32).max())


def test_remat_gives_same_grads_and_checkpoints_layers():
  tokens = jnp.asarray(np.random.RandomState(5).randint(0, 256, (2, 10)), jnp.int32)
  loss = lambda m: (m(tokens) ** 2).mean()
  plain, remat = _model("qwen3"), _model("qwen3", remat=True)
  g_plain, g_remat = nnx.jit(nnx.grad(loss))(plain), nnx.jit(nnx.grad(loss))(remat)
  for x, y in zip(jax.tree.leaves(g_plain), jax.tree.leaves(g_remat)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), atol=1e-6, rtol=1e-5)
  graphdef, state = nnx.split(remat)
  jaxpr = jax.make_jaxpr(jax.grad(lambda st: loss(nnx.merge(graphdef, st))))(state)
  remat_eqns = [e for e in jaxpr.jaxpr.eqns if "remat" in e.primitive.name]
  assert len(remat_eqns) >= remat.config.num_layers


def test_logical_axes_cover_every_param():
  model = _model("qwen2", o_bias=True)  # every optional parameter kind except qk norms
  axes = logical_axes(model)
  params = nnx.state(model, nnx.Param)
  is_axes = lambda x: isinstance(x, tuple) and all(isinstance(a, str) for a in x)
  flat_axes = jax.tree.leaves(axes, is_leaf=is_axes)
  flat_params = jax.tree.leaves(params)
  assert len(flat_axes) == len(flat_params)
  for names, value in zip(flat_axes, flat_params):
    assert len(names) == value.ndim
  block = axes["layers"][0]
  assert axes["embed"] == ("vocab", "embed") and axes["lm_head"] == ("embed", "vocab")
  assert block["attn"]["q"] == ("embed", "q_heads", "head_dim")
  assert block["attn"]["k"] == ("embed", "kv_heads", "head_dim")
  assert block["attn"]["o"] == ("q_heads", "head_dim", "embed")
  assert block["mlp"]["gate"] == ("embed", "mlp") and block["mlp"]["down"] == ("mlp", "embed")
  assert block["input_norm"]["scale"] == ("norm",)
  # Flax's own partition-spec helper reads the same metadata through logical axis rules.
  with nnx.logical_axis_rules([("embed", "fsdp"), ("mlp", "tp"), ("q_heads", "tp"), ("kv_heads", "tp")]):
    specs = nnx.get_partition_spec(params)
  assert tuple(specs["layers"][0]["mlp"]["gate"].get_value()) == ("fsdp", "tp")
