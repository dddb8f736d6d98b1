"""`ModelConfig`: the hyperparameters of the one decoder family (Llama 3.x, Qwen2/2.5, Qwen3).

The three families differ only in a few flags, so one frozen dataclass describes all of them:

- Llama 3 / 3.1 / 3.2: no biases, llama3 RoPE frequency scaling from 3.1 on (``rope_type="llama3"``;
  Meta, "The Llama 3 Herd of Models", 2024, sec. 3.1 / the reference ``apply_scaling``).
- Qwen2 / Qwen2.5: biases on the q/k/v projections (``qkv_bias=True``), none on o.
- Qwen3: RMSNorm over ``head_dim`` of every q and k head before RoPE (``qk_norm=True``) and an
  explicit ``head_dim`` that need not equal ``hidden_size // num_heads``.

Presets are classmethods named after the checkpoints (``ModelConfig.qwen2p5_0p5b()``); their numbers
are copied from the public ``config.json`` files. ``from_hf_dict`` / ``to_hf_dict`` convert to and
from a Hugging Face ``config.json`` dict, reading both the transformers v4 layout (``torch_dtype``,
top-level ``rope_theta``, ``rope_scaling``) and the v5 layout (``dtype``, ``rope_parameters``).
Anything the decoder cannot represent raises ``ValueError`` instead of being silently dropped.

Dtypes: ``param_dtype`` is what parameters are stored in, ``dtype`` what matmuls run in. Both accept
strings or jnp dtypes and are normalised to strings (so the config stays hashable for ``jax.jit``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

import jax.numpy as jnp
import numpy as np

SUPPORTED_FAMILIES = ("llama", "qwen2", "qwen3")
ARCHITECTURES = {"llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "qwen3": "Qwen3ForCausalLM"}
SUPPORTED_ROPE_TYPES = ("default", "llama3")


def _dtype_name(value: Any, field: str) -> str:
  try:
    return jnp.dtype(value).name
  except TypeError as e:
    raise ValueError(f"ModelConfig.{field}={value!r} is not a dtype (use e.g. 'float32' or 'bfloat16')") from e


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Decoder hyperparameters. Field names follow the paper symbols of the einsums in transformer.py:
  D = hidden_size, N = num_heads, K = num_kv_heads, H = head_dim, F = intermediate_size,
  V = vocab_size, L = num_layers."""

  family: str = "llama"  # HF model_type: "llama" | "qwen2" | "qwen3"
  vocab_size: int = 256
  hidden_size: int = 64
  intermediate_size: int = 128
  num_layers: int = 2
  num_heads: int = 4
  num_kv_heads: int = 2
  head_dim: int = 16
  rms_norm_eps: float = 1e-6
  rope_theta: float = 10000.0
  # llama3 frequency scaling (Llama 3.1 / 3.2); ignored when rope_type == "default".
  rope_type: str = "default"
  rope_factor: float = 8.0
  rope_low_freq_factor: float = 1.0
  rope_high_freq_factor: float = 4.0
  rope_original_max_len: int = 8192
  qkv_bias: bool = False
  o_bias: bool = False
  qk_norm: bool = False
  tie_embeddings: bool = False
  max_position_embeddings: int = 2048
  init_std: float = 0.02  # HF initializer_range: std of the normal init of every matrix
  param_dtype: Any = "float32"
  dtype: Any = "float32"  # compute dtype of matmuls; softmax and logits are always float32
  remat: bool = False  # rematerialise each layer in the backward pass
  bos_token_id: int | None = None
  eos_token_ids: tuple[int, ...] = ()
  pad_token_id: int | None = None

  def __post_init__(self):
    object.__setattr__(self, "param_dtype", _dtype_name(self.param_dtype, "param_dtype"))
    object.__setattr__(self, "dtype", _dtype_name(self.dtype, "dtype"))
    eos = self.eos_token_ids
    eos = () if eos is None else (eos,) if isinstance(eos, (int, np.integer)) else eos
    object.__setattr__(self, "eos_token_ids", tuple(int(e) for e in eos))
    if self.family not in SUPPORTED_FAMILIES:
      raise ValueError(f"ModelConfig.family={self.family!r} is not one of {SUPPORTED_FAMILIES}")
    if self.rope_type not in SUPPORTED_ROPE_TYPES:
      raise ValueError(f"ModelConfig.rope_type={self.rope_type!r} is not one of {SUPPORTED_ROPE_TYPES}")
    if self.num_heads % self.num_kv_heads:
      raise ValueError(
          f"ModelConfig.num_heads={self.num_heads} is not a multiple of num_kv_heads={self.num_kv_heads}")
    if self.head_dim % 2:
      raise ValueError(f"ModelConfig.head_dim={self.head_dim} must be even for RoPE")

  def replace(self, **kw) -> "ModelConfig":
    return dataclasses.replace(self, **kw)

  @property
  def num_params(self) -> int:
    """Parameter count implied by the shapes (the lm_head counts once when tied)."""
    d, h, f = self.hidden_size, self.head_dim, self.intermediate_size
    n, k = self.num_heads, self.num_kv_heads
    attn = d * h * (n + 2 * k) + n * h * d
    attn += (n + 2 * k) * h * self.qkv_bias + d * self.o_bias + 2 * h * self.qk_norm
    layer = attn + 3 * d * f + 2 * d
    embed = self.vocab_size * d * (1 if self.tie_embeddings else 2)
    return self.num_layers * layer + embed + d

  # ---------------------------------------------------------------------------------------------
  # Presets. Numbers from the public config.json of each checkpoint.
  # ---------------------------------------------------------------------------------------------

  @classmethod
  def _qwen2(cls, **kw) -> "ModelConfig":
    base = dict(family="qwen2", vocab_size=151936, rope_theta=1e6, rms_norm_eps=1e-6, qkv_bias=True,
                max_position_embeddings=32768, bos_token_id=151643, eos_token_ids=(151643,))
    return cls(**{**base, **kw})

  @classmethod
  def qwen2p5_0p5b(cls) -> "ModelConfig":
    """Qwen2.5-0.5B: 494M parameters."""
    return cls._qwen2(hidden_size=896, intermediate_size=4864, num_layers=24, num_heads=14,
                      num_kv_heads=2, head_dim=64, tie_embeddings=True)

  @classmethod
  def qwen2p5_1p5b(cls) -> "ModelConfig":
    """Qwen2.5-1.5B: 1.54B parameters."""
    return cls._qwen2(hidden_size=1536, intermediate_size=8960, num_layers=28, num_heads=12,
                      num_kv_heads=2, head_dim=128, tie_embeddings=True, max_position_embeddings=131072)

  @classmethod
  def qwen2p5_3b(cls) -> "ModelConfig":
    """Qwen2.5-3B: 3.09B parameters."""
    return cls._qwen2(hidden_size=2048, intermediate_size=11008, num_layers=36, num_heads=16,
                      num_kv_heads=2, head_dim=128, tie_embeddings=True)

  @classmethod
  def qwen2p5_7b(cls) -> "ModelConfig":
    """Qwen2.5-7B: 7.62B parameters."""
    return cls._qwen2(vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_layers=28,
                      num_heads=28, num_kv_heads=4, head_dim=128, max_position_embeddings=131072)

  @classmethod
  def _qwen3(cls, **kw) -> "ModelConfig":
    base = dict(family="qwen3", vocab_size=151936, rope_theta=1e6, rms_norm_eps=1e-6, qk_norm=True,
                head_dim=128, num_kv_heads=8, max_position_embeddings=40960, bos_token_id=151643,
                eos_token_ids=(151645,))
    return cls(**{**base, **kw})

  @classmethod
  def qwen3_0p6b(cls) -> "ModelConfig":
    """Qwen3-0.6B: 0.6B parameters (0.44B without embeddings)."""
    return cls._qwen3(hidden_size=1024, intermediate_size=3072, num_layers=28, num_heads=16,
                      tie_embeddings=True)

  @classmethod
  def qwen3_1p7b(cls) -> "ModelConfig":
    """Qwen3-1.7B: 1.7B parameters (1.4B without embeddings)."""
    return cls._qwen3(hidden_size=2048, intermediate_size=6144, num_layers=28, num_heads=16,
                      tie_embeddings=True)

  @classmethod
  def qwen3_4b(cls) -> "ModelConfig":
    """Qwen3-4B: 4.0B parameters (3.6B without embeddings)."""
    return cls._qwen3(hidden_size=2560, intermediate_size=9728, num_layers=36, num_heads=32,
                      tie_embeddings=True)

  @classmethod
  def qwen3_8b(cls) -> "ModelConfig":
    """Qwen3-8B: 8.2B parameters (6.95B without embeddings)."""
    return cls._qwen3(hidden_size=4096, intermediate_size=12288, num_layers=36, num_heads=32)

  @classmethod
  def _llama3(cls, **kw) -> "ModelConfig":
    base = dict(family="llama", vocab_size=128256, rope_theta=500000.0, rms_norm_eps=1e-5,
                num_kv_heads=8, rope_type="llama3", rope_low_freq_factor=1.0, rope_high_freq_factor=4.0,
                rope_original_max_len=8192, max_position_embeddings=131072, bos_token_id=128000,
                eos_token_ids=(128001,))
    return cls(**{**base, **kw})

  @classmethod
  def llama3p2_1b(cls) -> "ModelConfig":
    """Llama-3.2-1B: 1.24B parameters."""
    return cls._llama3(hidden_size=2048, intermediate_size=8192, num_layers=16, num_heads=32,
                       head_dim=64, rope_factor=32.0, tie_embeddings=True)

  @classmethod
  def llama3p2_3b(cls) -> "ModelConfig":
    """Llama-3.2-3B: 3.21B parameters."""
    return cls._llama3(hidden_size=3072, intermediate_size=8192, num_layers=28, num_heads=24,
                       head_dim=128, rope_factor=32.0, tie_embeddings=True)

  @classmethod
  def llama3p1_8b(cls) -> "ModelConfig":
    """Llama-3.1-8B: 8.03B parameters."""
    return cls._llama3(hidden_size=4096, intermediate_size=14336, num_layers=32, num_heads=32,
                       head_dim=128, rope_factor=8.0)

  # Tiny configs for tests and the CPU quickstart (width 64, 2 layers, vocab 256).

  @classmethod
  def tiny_llama(cls, **kw) -> "ModelConfig":
    """Tiny Llama with llama3 RoPE scaling that bites at these sizes (original length 64)."""
    base = dict(family="llama", rope_type="llama3", rope_factor=8.0, rope_original_max_len=64,
                rms_norm_eps=1e-5, tie_embeddings=True)
    return cls(**{**base, **kw})

  @classmethod
  def tiny_qwen2(cls, **kw) -> "ModelConfig":
    return cls(**{**dict(family="qwen2", qkv_bias=True), **kw})

  @classmethod
  def tiny_qwen3(cls, **kw) -> "ModelConfig":
    return cls(**{**dict(family="qwen3", qk_norm=True, head_dim=24), **kw})

  # ---------------------------------------------------------------------------------------------
  # Hugging Face config.json
  # ---------------------------------------------------------------------------------------------

  @classmethod
  def from_hf_dict(cls, d: dict[str, Any], **overrides) -> "ModelConfig":
    """Parses a HF ``config.json`` dict (transformers v4 or v5 layout); ``overrides`` win."""
    return cls(**{**_fields_from_hf(d), **overrides})

  def to_hf_dict(self, layout: str = "both") -> dict[str, Any]:
    """A ``config.json`` dict that transformers loads as the same model. ``layout``: "v5"
    (``dtype``, ``rope_parameters``), "v4" (``torch_dtype``, top-level ``rope_theta`` /
    ``rope_scaling``) or "both" (the default: the v5 keys plus the v4 ones, so transformers 4.x
    and serving stacks that read the top-level ``rope_theta`` see the same RoPE)."""
    return _fields_to_hf(self, layout)


def _rope_fields(d: dict[str, Any]) -> dict[str, Any]:
  """RoPE settings from v5 ``rope_parameters`` or v4 ``rope_theta`` + ``rope_scaling``."""
  params = dict(d.get("rope_parameters") or {})
  if params and not ("rope_type" in params or "type" in params or "rope_theta" in params):
    raise ValueError(f"config.json rope_parameters={params} is nested per layer type; not supported")
  params.update(d.get("rope_scaling") or {})
  theta = params.get("rope_theta", d.get("rope_theta", 10000.0))
  rope_type = params.get("rope_type", params.get("type", "default")) or "default"
  if rope_type not in SUPPORTED_ROPE_TYPES:
    raise ValueError(f"config.json rope_type={rope_type!r} is not supported (only {SUPPORTED_ROPE_TYPES})")
  partial = params.get("partial_rotary_factor", d.get("partial_rotary_factor", 1.0))
  if partial not in (None, 1, 1.0):
    raise ValueError(f"config.json partial_rotary_factor={partial} is not supported (only 1.0)")
  out: dict[str, Any] = dict(rope_theta=float(theta), rope_type=rope_type)
  if rope_type == "llama3":
    missing = [k for k in ("factor", "low_freq_factor", "high_freq_factor") if k not in params]
    if missing:
      raise ValueError(f"config.json llama3 rope scaling lacks {missing}: {params}")
    out.update(
        rope_factor=float(params["factor"]),
        rope_low_freq_factor=float(params["low_freq_factor"]),
        rope_high_freq_factor=float(params["high_freq_factor"]),
        rope_original_max_len=int(params.get("original_max_position_embeddings",
                                             d.get("max_position_embeddings", 8192))))
  return out


def _check_sliding_window(d: dict[str, Any], num_layers: int) -> None:
  layer_types = d.get("layer_types")
  if layer_types and any(t != "full_attention" for t in layer_types):
    raise ValueError(f"config.json layer_types={sorted(set(layer_types))}: only full_attention is supported")
  if d.get("use_sliding_window") and d.get("sliding_window"):
    # transformers applies the window to layers >= max_window_layers.
    if d.get("max_window_layers", 28) < num_layers:
      raise ValueError(
          f"config.json use_sliding_window=true with sliding_window={d['sliding_window']} on layers >= "
          f"max_window_layers={d.get('max_window_layers', 28)}: sliding-window attention is not supported")


def _fields_from_hf(d: dict[str, Any]) -> dict[str, Any]:
  family = d.get("model_type")
  if family not in SUPPORTED_FAMILIES:
    raise ValueError(f"config.json model_type={family!r} is not supported; expected one of {SUPPORTED_FAMILIES}")
  archs = d.get("architectures") or [ARCHITECTURES[family]]
  if list(archs) != [ARCHITECTURES[family]]:
    raise ValueError(f"config.json architectures={archs} is not supported for model_type={family!r}; "
                     f"expected [{ARCHITECTURES[family]!r}]")
  if d.get("hidden_act", "silu") != "silu":
    raise ValueError(f"config.json hidden_act={d['hidden_act']!r} is not supported (only 'silu')")
  if d.get("mlp_bias"):
    raise ValueError("config.json mlp_bias=true is not supported")
  if d.get("quantization_config"):
    raise ValueError("config.json has a quantization_config; quantized checkpoints are not supported")
  try:
    num_layers, hidden, heads = d["num_hidden_layers"], d["hidden_size"], d["num_attention_heads"]
    vocab, inter = d["vocab_size"], d["intermediate_size"]
  except KeyError as e:
    raise ValueError(f"config.json lacks required key {e.args[0]!r}") from e
  _check_sliding_window(d, num_layers)
  if family == "qwen2":
    qkv_bias, o_bias = True, False  # hard-wired in transformers' Qwen2Attention
  else:
    qkv_bias = o_bias = bool(d.get("attention_bias", False))
  eos = d.get("eos_token_id")
  return dict(
      family=family, vocab_size=vocab, hidden_size=hidden, intermediate_size=inter,
      num_layers=num_layers, num_heads=heads,
      num_kv_heads=d.get("num_key_value_heads") or heads,
      head_dim=d.get("head_dim") or hidden // heads,
      rms_norm_eps=float(d.get("rms_norm_eps", 1e-6)),
      qkv_bias=qkv_bias, o_bias=o_bias, qk_norm=family == "qwen3",
      tie_embeddings=bool(d.get("tie_word_embeddings", False)),
      max_position_embeddings=int(d.get("max_position_embeddings", 2048)),
      init_std=float(d.get("initializer_range", 0.02)),
      bos_token_id=d.get("bos_token_id"), eos_token_ids=eos, pad_token_id=d.get("pad_token_id"),
      **_rope_fields(d))


def _fields_to_hf(c: ModelConfig, layout: str) -> dict[str, Any]:
  if layout not in ("v4", "v5", "both"):
    raise ValueError(f"to_hf_dict layout={layout!r}: expected 'v4', 'v5' or 'both'")
  if c.qk_norm != (c.family == "qwen3"):
    raise ValueError(f"qk_norm={c.qk_norm} cannot be expressed as a HF {c.family!r} config")
  if c.family == "qwen2" and (not c.qkv_bias or c.o_bias):
    raise ValueError("a HF qwen2 config always has q/k/v biases and no o bias; "
                     f"got qkv_bias={c.qkv_bias}, o_bias={c.o_bias}")
  if c.family != "qwen2" and c.qkv_bias != c.o_bias:
    raise ValueError(f"HF {c.family!r} has one attention_bias flag; got qkv_bias={c.qkv_bias}, o_bias={c.o_bias}")
  eos = list(c.eos_token_ids)
  d: dict[str, Any] = dict(
      architectures=[ARCHITECTURES[c.family]], model_type=c.family, vocab_size=c.vocab_size,
      hidden_size=c.hidden_size, intermediate_size=c.intermediate_size,
      num_hidden_layers=c.num_layers, num_attention_heads=c.num_heads,
      num_key_value_heads=c.num_kv_heads, head_dim=c.head_dim, hidden_act="silu",
      rms_norm_eps=c.rms_norm_eps, tie_word_embeddings=c.tie_embeddings,
      max_position_embeddings=c.max_position_embeddings, initializer_range=c.init_std,
      attention_dropout=0.0, use_cache=True, bos_token_id=c.bos_token_id,
      eos_token_id=eos[0] if len(eos) == 1 else (eos or None), pad_token_id=c.pad_token_id)
  if c.family != "qwen2":
    d["attention_bias"] = c.qkv_bias
  if c.family == "llama":
    d["mlp_bias"] = False
  else:
    d.update(use_sliding_window=False, sliding_window=None, max_window_layers=c.num_layers)
  rope: dict[str, Any] = dict(rope_type=c.rope_type)
  if c.rope_type == "llama3":
    rope.update(factor=c.rope_factor, low_freq_factor=c.rope_low_freq_factor,
                high_freq_factor=c.rope_high_freq_factor,
                original_max_position_embeddings=c.rope_original_max_len)
  if layout in ("v5", "both"):
    d["dtype"] = c.param_dtype
    d["rope_parameters"] = dict(rope_theta=c.rope_theta, **rope)
  if layout in ("v4", "both"):
    d["torch_dtype"] = c.param_dtype
    d["rope_theta"] = c.rope_theta
    d["rope_scaling"] = rope if c.rope_type != "default" else None
  return d
