"""load_hf / save_hf failures name the path, tensor and shapes at fault."""
import json
import shutil

import numpy as np
import pytest
from flax import nnx
from safetensors.numpy import load_file, save_file

from rlvr_jax.models import ModelConfig, Transformer, load_hf, save_hf


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
  config = ModelConfig.tiny_qwen2(num_layers=1)
  path = tmp_path_factory.mktemp("ckpt")
  save_hf(Transformer(config, rngs=nnx.Rngs(0)), config, path)
  return path


def _copy(saved, tmp_path):
  out = tmp_path / "ckpt"
  shutil.copytree(saved, out)
  return out


def test_no_config_json(tmp_path):
  with pytest.raises(ValueError, match="has no config.json"):
    load_hf(tmp_path)


def test_no_weights(saved, tmp_path):
  path = _copy(saved, tmp_path)
  (path / "model.safetensors").unlink()
  with pytest.raises(ValueError, match="neither model.safetensors nor model.safetensors.index.json"):
    load_hf(path)


def test_unsupported_architecture(saved, tmp_path):
  path = _copy(saved, tmp_path)
  cfg = json.loads((path / "config.json").read_text())
  cfg.update(architectures=["GemmaForCausalLM"], model_type="gemma")
  (path / "config.json").write_text(json.dumps(cfg))
  with pytest.raises(ValueError, match="model_type='gemma'"):
    load_hf(path)


def test_missing_tensor(saved, tmp_path):
  path = _copy(saved, tmp_path)
  tensors = load_file(path / "model.safetensors")
  del tensors["model.layers.0.self_attn.k_proj.bias"]
  save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
  with pytest.raises(ValueError, match=r"missing 1 tensor.*model\.layers\.0\.self_attn\.k_proj\.bias"):
    load_hf(path)


def test_wrong_shape_names_tensor_and_both_shapes(saved, tmp_path):
  path = _copy(saved, tmp_path)
  tensors = load_file(path / "model.safetensors")
  tensors["model.layers.0.mlp.up_proj.weight"] = np.zeros((100, 64), np.float32)
  save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
  with pytest.raises(ValueError, match=r"'model\.layers\.0\.mlp\.up_proj\.weight'.*\(100, 64\).*\(128, 64\)"):
    load_hf(path)


def test_unexpected_tensor(saved, tmp_path):
  path = _copy(saved, tmp_path)
  tensors = load_file(path / "model.safetensors")
  tensors["model.layers.0.mlp.extra.weight"] = np.zeros((2,), np.float32)
  save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
  with pytest.raises(ValueError, match="does not use.*mlp.extra.weight"):
    load_hf(path)


def test_missing_shard(saved, tmp_path):
  path = _copy(saved, tmp_path)
  index = {"metadata": {}, "weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}}
  (path / "model.safetensors.index.json").write_text(json.dumps(index))
  with pytest.raises(ValueError, match="model-00002-of-00002.safetensors"):
    load_hf(path)


def test_save_with_mismatched_config(tmp_path):
  model = Transformer(ModelConfig.tiny_qwen2(num_layers=1), rngs=nnx.Rngs(0))
  with pytest.raises(ValueError, match="intermediate|shape"):
    save_hf(model, ModelConfig.tiny_qwen2(num_layers=1, intermediate_size=96), tmp_path)
  with pytest.raises(ValueError, match="no parameter.*q_norm"):
    save_hf(model, ModelConfig.tiny_qwen3(num_layers=1, head_dim=16), tmp_path)
  with pytest.raises(ValueError, match="attention_bias"):
    save_hf(model, ModelConfig.tiny_qwen2(num_layers=1, family="qwen3", qk_norm=True), tmp_path)


def test_load_round_trip_of_own_save(saved):
  model, config = load_hf(saved)
  assert config == ModelConfig.tiny_qwen2(num_layers=1)
  ref = Transformer(config, rngs=nnx.Rngs(0))
  np.testing.assert_array_equal(np.asarray(model.layers[0].attn.q[...]), np.asarray(ref.layers[0].attn.q[...]))
  np.testing.assert_array_equal(np.asarray(model.lm_head[...]), np.asarray(ref.lm_head[...]))


def test_generation_defaults_keep_the_source_sampling_settings_and_every_stop_id(saved, tmp_path):
  import transformers  # pylint: disable=import-outside-toplevel
  from rlvr_jax.models import hf  # pylint: disable=import-outside-toplevel
  src = _copy(saved, tmp_path)
  (src / "generation_config.json").write_text(json.dumps(
      {"eos_token_id": [7, 9], "temperature": 0.7, "top_p": 0.8, "do_sample": True}))
  generation = hf.generation_defaults(src, eos_ids=(9, 11))
  assert generation == {"eos_token_id": [7, 9, 11], "temperature": 0.7, "top_p": 0.8,
                        "do_sample": True}
  assert hf.generation_defaults(None, eos_ids=(3,)) == {"eos_token_id": 3}
  model, config = load_hf(src)
  save_hf(model, config, tmp_path / "out", generation=generation)
  loaded = transformers.GenerationConfig.from_pretrained(tmp_path / "out")
  assert loaded.eos_token_id == [7, 9, 11] and loaded.temperature == 0.7 and loaded.top_p == 0.8
