"""Logits parity of `load_hf` / `save_hf` against transformers (tiny random models, CPU, float32).

Tolerances: float32 logits agree with transformers within 1e-4 (measured ~1e-5 on O(5) logits).
bfloat16 (params and matmuls in bf16, softmax/norm statistics in f32) against the float32 oracle on
the same bf16-rounded weights: measured max |diff| 0.05-0.12 and mean |diff| ~0.01 on logits of max
|x| ~4-5 over 3 families x 2 seeds, the same as transformers' own bf16 forward (max 0.06-0.12, mean
~0.01). The test asserts max < 0.25, mean < 0.03 and at most twice transformers' bf16 error; the
same checkpoint loaded in float32 stays within 1e-4.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from rlvr_jax.models import ModelConfig, load_hf, positions_from_mask, save_hf
from tests.models.hf_oracle import FAMILIES, VOCAB, hf_logits, make_hf_model

F32_TOL = 1e-4


@nnx.jit
def _forward(model, tokens, positions, attention_mask):
  return model(tokens, positions=positions, attention_mask=attention_mask)


def _ours(model, tokens, positions=None, attention_mask=None):
  tokens = jnp.asarray(tokens, jnp.int32)
  if positions is None:
    positions = jnp.broadcast_to(jnp.arange(tokens.shape[1]), tokens.shape)
  if attention_mask is None:
    attention_mask = jnp.ones(tokens.shape, jnp.int32)
  return np.asarray(_forward(model, tokens, jnp.asarray(positions, jnp.int32),
                             jnp.asarray(attention_mask, jnp.int32)))


def _batch(seed=0, b=2, t=150):
  return np.random.RandomState(seed).randint(0, VOCAB, (b, t))


def _left_padded(seed=1):
  rng = np.random.RandomState(seed)
  lengths = np.array([40, 33, 20])
  mask = (np.arange(40)[None, :] >= (40 - lengths)[:, None]).astype(np.int64)  # [3, 40]
  tokens = np.where(mask == 1, rng.randint(0, VOCAB, mask.shape), 0)
  positions = np.maximum(np.cumsum(mask, axis=1) - 1, 0)  # what HF generate() uses
  np.testing.assert_array_equal(np.asarray(positions_from_mask(jnp.asarray(mask))), positions)
  return tokens, mask, positions


@pytest.fixture(scope="module", params=FAMILIES)
def checkpoint(request, tmp_path_factory):
  """(family, HF model, directory of its float32 save_pretrained)."""
  hf = make_hf_model(request.param)
  path = tmp_path_factory.mktemp(f"hf_{request.param}")
  hf.save_pretrained(path)
  return request.param, hf, path


def test_load_hf_logits_match_transformers(checkpoint):
  family, hf, path = checkpoint
  model, config = load_hf(path)
  assert config.family == family
  tokens = _batch()
  # Positions well beyond 128 (and beyond the llama3 original length of 64).
  positions = np.broadcast_to(np.arange(tokens.shape[1]) + 100, tokens.shape)
  ref = hf_logits(hf, tokens, position_ids=positions)
  ours = _ours(model, tokens, positions)
  assert np.abs(ref).max() > 1.0  # the weights are scaled so that this check means something
  np.testing.assert_allclose(ours, ref, atol=F32_TOL, rtol=0)


def test_load_hf_left_padded_batch(checkpoint):
  _, hf, path = checkpoint
  model, _ = load_hf(path)
  tokens, mask, positions = _left_padded()
  ref = hf_logits(hf, tokens, attention_mask=mask, position_ids=positions)
  ours = _ours(model, tokens, positions, mask)
  real = mask.astype(bool)
  np.testing.assert_allclose(ours[real], ref[real], atol=F32_TOL, rtol=0)
  assert np.isfinite(ours).all()  # padding queries see no key at all and must still be finite


def test_save_hf_reloads_in_transformers(checkpoint, tmp_path):
  family, hf, path = checkpoint
  model, config = load_hf(path)
  save_hf(model, config, tmp_path / "out")
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "out").eval()
  tokens = _batch(seed=2, t=24)
  np.testing.assert_allclose(hf_logits(reloaded, tokens), hf_logits(hf, tokens), atol=1e-5, rtol=0)
  saved = json.loads((tmp_path / "out" / "config.json").read_text())
  assert saved["tie_word_embeddings"] == config.tie_embeddings
  # Both layouts by default: v5's rope_parameters and v4's top-level rope_theta agree, so readers
  # of either (transformers 4.x, older vLLM) get the checkpoint's RoPE.
  assert saved["rope_parameters"]["rope_theta"] == saved["rope_theta"] == config.rope_theta
  assert saved["dtype"] == saved["torch_dtype"]
  if config.rope_type != "default":
    assert saved["rope_scaling"]["factor"] == saved["rope_parameters"]["factor"]
  for layout in ("v4", "v5"):  # each layout alone also reads back as the same config
    assert ModelConfig.from_hf_dict(config.to_hf_dict(layout)) == ModelConfig.from_hf_dict(saved)


def test_save_hf_sharded_and_v4_layout(tmp_path):
  hf = make_hf_model("qwen2", seed=3)
  hf.save_pretrained(tmp_path / "src")
  model, config = load_hf(tmp_path / "src")
  out = tmp_path / "sharded"
  save_hf(model, config, out, max_shard_bytes=100_000, layout="v4")
  index = json.loads((out / "model.safetensors.index.json").read_text())
  shards = sorted(set(index["weight_map"].values()))
  assert len(shards) > 2 and not (out / "model.safetensors").exists()
  cfg = json.loads((out / "config.json").read_text())
  assert "rope_theta" in cfg and "torch_dtype" in cfg and "rope_parameters" not in cfg
  tokens = _batch(seed=4, t=16)
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out).eval()
  np.testing.assert_allclose(hf_logits(reloaded, tokens), hf_logits(hf, tokens), atol=1e-5, rtol=0)
  again, config2 = load_hf(out)  # our loader reads the index and the v4 layout too
  assert config2 == config
  same = jax.tree.map(lambda a, b: bool(jnp.array_equal(a, b)), nnx.state(model, nnx.Param),
                      nnx.state(again, nnx.Param))
  assert all(jax.tree.leaves(same))


def test_bf16_checkpoint(tmp_path):
  """bf16 weights on disk: float32 load is exact; bf16 compute within the measured tolerance."""
  hf = make_hf_model("qwen3", seed=5).to(torch.bfloat16)
  hf.save_pretrained(tmp_path)
  assert json.loads((tmp_path / "config.json").read_text())["dtype"] == "bfloat16"
  oracle = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.float32).eval()
  tokens = _batch(seed=6, t=48)
  ref = hf_logits(oracle, tokens)
  model32, _ = load_hf(tmp_path, dtype="float32")
  np.testing.assert_allclose(_ours(model32, tokens), ref, atol=F32_TOL, rtol=0)
  model16, config16 = load_hf(tmp_path, dtype="bfloat16")
  assert config16.param_dtype == config16.dtype == "bfloat16"
  assert model16.layers[0].attn.q[...].dtype == jnp.bfloat16
  ours16 = _ours(model16, tokens)
  assert ours16.dtype == np.float32
  err = np.abs(ours16 - ref)
  hf16 = transformers.AutoModelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
  hf_err = np.abs(hf_logits(hf16, tokens) - ref)
  assert err.max() < 0.25 and err.mean() < 0.03, (err.max(), err.mean())
  assert err.max() < 2 * hf_err.max() and err.mean() < 2 * hf_err.mean(), (err, hf_err)


def test_from_hf_dict_matches_transformers_config(checkpoint):
  family, hf, _ = checkpoint
  config = ModelConfig.from_hf_dict(hf.config.to_dict())
  assert config.num_params == sum(p.numel() for p in hf.parameters())
