"""ModelConfig presets, HF config.json parsing (v4 and v5 layouts) and its error messages."""
import jax
import numpy as np
import pytest
from flax import nnx

from rlvr_jax.models import ModelConfig, Transformer

# Published parameter counts from the model cards: (total, non-embedding or None). Where the card
# rounds the total too coarsely for 1% (Qwen3-1.7B: "1.7B", exact 1.72B) the non-embedding count is
# checked instead.
PUBLISHED = {
    "qwen2p5_0p5b": (0.49e9, 0.36e9), "qwen2p5_1p5b": (1.54e9, 1.31e9), "qwen2p5_3b": (3.09e9, 2.77e9),
    "qwen2p5_7b": (7.61e9, 6.53e9), "qwen3_0p6b": (0.6e9, 0.44e9), "qwen3_1p7b": (None, 1.4e9),
    "qwen3_4b": (4.0e9, 3.6e9), "qwen3_8b": (8.2e9, 6.95e9), "llama3p2_1b": (1.24e9, None),
    "llama3p2_3b": (3.21e9, None), "llama3p1_8b": (8.03e9, None),
}


def _check_published(name, config, count):
  total, non_embedding = PUBLISHED[name]
  embed = config.vocab_size * config.hidden_size * (1 if config.tie_embeddings else 2)
  if total is not None:
    assert abs(count / total - 1) < 0.01, (name, count, total)
  if non_embedding is not None:
    assert abs((count - embed) / non_embedding - 1) < 0.01, (name, count - embed, non_embedding)

# The config.json of Qwen2.5-0.5B-Instruct and Llama-3.2-1B as published (transformers v4 layout).
QWEN2P5_0P5B_V4 = {
    "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
    "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02,
    "intermediate_size": 4864, "max_position_embeddings": 32768, "max_window_layers": 21,
    "model_type": "qwen2", "num_attention_heads": 14, "num_hidden_layers": 24, "num_key_value_heads": 2,
    "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 32768, "tie_word_embeddings": True,
    "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": True,
    "use_sliding_window": False, "vocab_size": 151936}
LLAMA3P2_1B_V4 = {
    "architectures": ["LlamaForCausalLM"], "attention_bias": False, "attention_dropout": 0.0,
    "bos_token_id": 128000, "eos_token_id": 128001, "head_dim": 64, "hidden_act": "silu",
    "hidden_size": 2048, "initializer_range": 0.02, "intermediate_size": 8192,
    "max_position_embeddings": 131072, "mlp_bias": False, "model_type": "llama", "num_attention_heads": 32,
    "num_hidden_layers": 16, "num_key_value_heads": 8, "pretraining_tp": 1, "rms_norm_eps": 1e-05,
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "rope_theta": 500000.0, "tie_word_embeddings": True, "torch_dtype": "bfloat16",
    "transformers_version": "4.45.0.dev0", "use_cache": True, "vocab_size": 128256}


@pytest.mark.parametrize("name", ["qwen2p5_0p5b", "llama3p2_1b", "qwen3_8b"])
def test_real_size_preset_param_count_without_allocating(name):
  config = getattr(ModelConfig, name)()
  abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
  leaves = jax.tree.leaves(nnx.state(abstract, nnx.Param))
  assert all(isinstance(x, jax.ShapeDtypeStruct) for x in leaves)  # nothing was allocated
  count = sum(int(np.prod(x.shape)) for x in leaves)
  assert count == config.num_params
  _check_published(name, config, count)


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_every_preset_matches_published_size(name):
  config = getattr(ModelConfig, name)()
  _check_published(name, config, config.num_params)


def test_v4_config_json_of_real_checkpoints_parses_to_presets():
  assert ModelConfig.from_hf_dict(QWEN2P5_0P5B_V4) == ModelConfig.qwen2p5_0p5b().replace(
      eos_token_ids=(151645,))
  assert ModelConfig.from_hf_dict(LLAMA3P2_1B_V4) == ModelConfig.llama3p2_1b()


@pytest.mark.parametrize("name", ["qwen2p5_7b", "qwen3_4b", "llama3p1_8b", "tiny_llama", "tiny_qwen2",
                                  "tiny_qwen3"])
@pytest.mark.parametrize("layout", ["v4", "v5"])
def test_hf_dict_round_trip(name, layout):
  config = getattr(ModelConfig, name)()
  assert ModelConfig.from_hf_dict(config.to_hf_dict(layout)) == config


def test_dtypes_normalised_and_replace():
  import jax.numpy as jnp
  config = ModelConfig.tiny_qwen2(param_dtype=jnp.bfloat16, dtype=np.float32)
  assert (config.param_dtype, config.dtype) == ("bfloat16", "float32")
  assert config.replace(remat=True).remat and not config.remat
  hash(config)  # static argument for jax.jit
  with pytest.raises(ValueError, match="param_dtype"):
    ModelConfig(param_dtype="not_a_dtype")


@pytest.mark.parametrize("patch, message", [
    ({"model_type": "mistral"}, "model_type='mistral'"),
    ({"architectures": ["Qwen2ForSequenceClassification"]}, "architectures"),
    ({"rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
    ({"use_sliding_window": True, "max_window_layers": 12}, "sliding"),
    ({"layer_types": ["sliding_attention"] * 24}, "layer_types"),
    ({"hidden_act": "gelu"}, "hidden_act"),
    ({"partial_rotary_factor": 0.5}, "partial_rotary_factor"),
    ({"num_hidden_layers": None}, None),
])
def test_unsupported_config_raises_naming_the_key(patch, message):
  d = {**QWEN2P5_0P5B_V4, **patch}
  if patch.get("num_hidden_layers", 0) is None:
    del d["num_hidden_layers"]
    message = "num_hidden_layers"
  with pytest.raises(ValueError, match=message):
    ModelConfig.from_hf_dict(d)


def test_sliding_window_flag_without_effect_is_accepted():
  # Qwen2.5 ships use_sliding_window=false with a sliding_window value; that is full attention.
  d = {**QWEN2P5_0P5B_V4, "use_sliding_window": True, "max_window_layers": 24}
  assert ModelConfig.from_hf_dict(d).num_layers == 24


def test_llama3_rope_scaling_frequencies():
  """The three llama3 bands against a float64 transcription of the published formula."""
  from rlvr_jax.models.transformer import rope_inv_freq
  config = ModelConfig.llama3p2_1b()
  inv = 1.0 / 500000.0 ** (np.arange(0, 64, 2) / 64)
  wavelen = 2 * np.pi / inv
  low_wl, high_wl = 8192 / 1.0, 8192 / 4.0
  smooth = (8192 / wavelen - 1.0) / (4.0 - 1.0)
  expected = np.where(wavelen < high_wl, inv,
                      np.where(wavelen > low_wl, inv / 32, (1 - smooth) * inv / 32 + smooth * inv))
  got = rope_inv_freq(config)
  np.testing.assert_allclose(got, expected, rtol=1e-5)
  assert (got < inv * 0.99).any() and (np.isclose(got, inv, rtol=1e-6)).any()
