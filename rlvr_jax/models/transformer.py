"""One Flax NNX decoder for Llama 3.x, Qwen2/2.5 and Qwen3 (flags in `ModelConfig`).

Architecture (pre-norm decoder, as in the Llama 3 and Qwen2/Qwen3 technical reports):
  x = embed[tokens]
  per layer:  x += o(attn(rope(qk_norm(q(norm(x)))), rope(qk_norm(k(norm(x)))), v(norm(x))))
              x += down(silu(gate(norm(x))) * up(norm(x)))          (SwiGLU, Shazeer 2020)
  logits = norm(x) @ unembed                                        (unembed = embed^T when tied)
RMSNorm (Zhang & Sennrich 2019), RoPE (Su et al. 2021, RoFormer) with optional llama3 frequency scaling,
grouped-query attention (Ainslie et al. 2023): query head n reads kv head n // (N // K).

Contracts other modules build on:
- ``Transformer(config, *, rngs)``; ``model(tokens, *, positions=None, attention_mask=None,
  segment_ids=None) -> logits float32 [B, T, V]``. ``attention_mask`` [B, T] (1 = real token, e.g.
  left padding) masks keys; ``segment_ids`` [B, T] restricts attention to equal ids (0 = padding) for
  packed rows. ``positions`` default to ``arange(T)``: with left padding pass
  ``positions_from_mask(mask)`` (= cumsum(mask) - 1), with packing positions that restart per segment.
  ``config.remat`` wraps each layer in ``nnx.remat`` (activations recomputed in the backward pass).
- ``model.hidden_states(...) -> [B, T, D]`` (after the final norm, compute dtype) and
  ``model.unembed_weight() -> [D, V]`` with ``logits == hidden_states @ unembed_weight`` in float32.
- ``model.init_cache(batch_size, max_len, dtype=None) -> dict(k=[L, B, K, S, H], v=[L, B, K, S, H])``
  (heads before slots: a decode step reads each layer's keys in the layout attention contracts over,
  with no per-step transpose of the whole cache)
  and ``model.decode(tokens, *, positions, cache, cache_index, kv_mask) -> (logits, cache)``: the T new
  keys/values go to slots [cache_index, cache_index + T) (cache_index a traced int32 scalar); the query
  in slot cache_index + t attends to slots s <= cache_index + t with ``kv_mask[b, s]`` True. Each step
  attends over all S slots (masked), so one compiled step serves every cache_index.
- Activations are tagged with logical names too (``rlvr_jax.parallel.constraints.constrain``: residual
  stream, q/k/v, MLP hidden, logits, KV cache); the tags only act inside ``constraints.use_mesh``.
- Every ``nnx.Param`` carries logical axis names in its ``out_sharding`` metadata (stored with
  ``eager_sharding=False``, so building a model needs no mesh); ``logical_axes(model)`` returns them as
  a tree shaped like ``nnx.state(model, nnx.Param)``. Names: vocab, embed, q_heads, kv_heads,
  head_dim, mlp, norm.
- Numerics: matmuls run in ``config.dtype`` with float32 accumulation for attention logits and the
  unembedding; softmax, RMSNorm statistics and RoPE run in float32. Masked logits are set to a large
  negative number (not -inf), so a fully masked row (a padding query) gives finite output.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax import lax
from jaxtyping import Array, Bool, Float, Int

from rlvr_jax.models.config import ModelConfig
from rlvr_jax.parallel.constraints import constrain

# Logical axis names of the main activations (no-ops without a mesh; see rlvr_jax.parallel).
_BTD = ("batch", "length", "embed")  # residual stream
_BTNH = ("batch", "length", "q_heads", "head_dim")  # queries, attention output
_BTKH = ("batch", "length", "kv_heads", "head_dim")  # keys, values
_BTF = ("batch", "length", "mlp")  # MLP hidden
_BTV = ("batch", "length", "vocab")  # logits
_BKSH = ("batch", "kv_heads", "length", "head_dim")  # keys, values as attention reads them
_CACHE = ("layer", "batch", "kv_heads", "length", "head_dim")  # KV cache [L, B, K, S, H]

_NEG = -0.7 * float(np.finfo(np.float32).max)  # finite "minus infinity": exp() underflows to 0


def _param(value: jax.Array, axes: tuple[str, ...]) -> nnx.Param:
  """A parameter tagged with logical axis names (no mesh needed at construction)."""
  return nnx.Param(value, out_sharding=axes, eager_sharding=False)


# ------------------------------------------------------------------------------------------------
# RoPE
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def rope_inv_freq(config: ModelConfig) -> np.ndarray:
  """Inverse frequencies [H/2] in float32, with llama3 scaling (Llama 3.1 ``apply_scaling``).

  Computed in float32 like the reference implementations so angles agree to the last bit: wavelengths
  shorter than original_len / high_freq_factor are kept, longer than original_len / low_freq_factor
  divided by ``factor``, and the band in between interpolated smoothly.
  """
  h = config.head_dim
  exponent = np.arange(0, h, 2, dtype=np.float32) / np.float32(h)
  inv = (np.float32(1.0) / np.power(np.float32(config.rope_theta), exponent)).astype(np.float32)
  if config.rope_type == "default":
    inv.setflags(write=False)  # cached: callers must not mutate it
    return inv
  factor = np.float32(config.rope_factor)
  low, high = np.float32(config.rope_low_freq_factor), np.float32(config.rope_high_freq_factor)
  old_len = np.float32(config.rope_original_max_len)
  wavelen = np.float32(2 * np.pi) / inv
  scaled = np.where(wavelen > old_len / low, inv / factor, inv)
  smooth = (old_len / wavelen - low) / (high - low)
  smoothed = (1 - smooth) * scaled / factor + smooth * scaled
  medium = (wavelen >= old_len / high) & (wavelen <= old_len / low)
  out = np.where(medium, smoothed, scaled).astype(np.float32)
  out.setflags(write=False)  # cached: callers must not mutate it
  return out


def rope_sin_cos(positions: Int[Array, "B T"], inv_freq: np.ndarray) -> tuple[jax.Array, jax.Array]:
  angles = positions.astype(jnp.float32)[..., None] * jnp.asarray(inv_freq)  # [B, T, H/2]
  return jnp.sin(angles), jnp.cos(angles)


def apply_rope(x: Float[Array, "B T N H"], sin: jax.Array, cos: jax.Array) -> Float[Array, "B T N H"]:
  """Rotates (first half, second half) pairs of each head, the HF ``rotate_half`` convention."""
  x32 = x.astype(jnp.float32)
  x1, x2 = jnp.split(x32, 2, axis=-1)  # [B, T, N, H/2] each
  sin, cos = sin[:, :, None, :], cos[:, :, None, :]  # [B, T, 1, H/2]
  return jnp.concatenate([x1 * cos - x2 * sin, x2 * cos + x1 * sin], axis=-1).astype(x.dtype)


def positions_from_mask(attention_mask: Int[Array, "B T"]) -> Int[Array, "B T"]:
  """RoPE positions for a left-padded batch: ``cumsum(mask) - 1``, 0 on padding slots."""
  return jnp.maximum(jnp.cumsum(attention_mask.astype(jnp.int32), axis=-1) - 1, 0)


# ------------------------------------------------------------------------------------------------
# Attention core and masks
# ------------------------------------------------------------------------------------------------


def attend(q: Float[Array, "B T N H"], k: Float[Array, "B K S H"], v: Float[Array, "B K S H"],
           mask: Bool[Array, "B T S"]) -> Float[Array, "B T N H"]:
  """Grouped-query softmax attention, float32 logits and softmax, output in q's dtype.

  Keys and values come heads-first ([B, K, S, H], the KV-cache layout)."""
  b, t, n, h = q.shape
  kv = k.shape[1]
  q = q.reshape(b, t, kv, n // kv, h)  # [B, T, K, G, H]; head n = k * G + g as in HF repeat_kv
  logits = jnp.einsum("BTKGH,BKSH->BKGTS", q, k, preferred_element_type=jnp.float32)
  logits = logits * (h ** -0.5)
  logits = jnp.where(mask[:, None, None], logits, _NEG)  # [B, K, G, T, S]
  probs = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
  # Heads-first output, then one explicit transpose: XLA:CPU emits the fused "->BTKGH" form as a
  # slow generic dot (about 8x slower per decode step at batch 64).
  out = jnp.einsum("BKGTS,BKSH->BKGTH", probs, v).transpose(0, 3, 1, 2, 4)  # [B, T, K, G, H]
  return out.reshape(b, t, n, h)


def forward_mask(t: int, attention_mask: jax.Array | None, segment_ids: jax.Array | None,
                 batch: int) -> Bool[Array, "B T T"]:
  """Causal mask over slot indices, AND key padding, AND same-segment (segment 0 = padding)."""
  idx = jnp.arange(t)
  mask = jnp.broadcast_to(idx[None, :, None] >= idx[None, None, :], (batch, t, t))  # [B, T, S]
  if attention_mask is not None:
    mask = mask & attention_mask.astype(bool)[:, None, :]
  if segment_ids is not None:
    same = segment_ids[:, :, None] == segment_ids[:, None, :]
    mask = mask & same & (segment_ids != 0)[:, None, :]
  return mask


def decode_mask(t: int, cache_index: jax.Array, kv_mask: Bool[Array, "B S"]) -> Bool[Array, "B T S"]:
  slots = jnp.arange(kv_mask.shape[1])  # [S]
  query_slots = cache_index + jnp.arange(t)  # [T]
  return (slots[None, None, :] <= query_slots[None, :, None]) & kv_mask[:, None, :].astype(bool)


# ------------------------------------------------------------------------------------------------
# Modules
# ------------------------------------------------------------------------------------------------


def dense(x: jax.Array, w: jax.Array, contract: int = 1, **kwargs) -> jax.Array:
  """Contracts the last ``contract`` dims of ``x`` with the first ``contract`` dims of ``w``.

  Computed as one 2-D matmul [prod(leading), K] @ [K, prod(rest of w)]: an einsum such as
  "BTD,DF->BTF" has a weight gradient that contracts over both B and T, and XLA:CPU runs such a
  two-contracting-dim dot about 2x slower than the same product on flattened operands (measured in
  the GRPO step benchmark); on TPU/GPU the reshapes are free.
  """
  lead, kdims = x.shape[:x.ndim - contract], x.shape[x.ndim - contract:]
  if w.shape[:contract] != kdims:
    raise ValueError(f"dense: x {x.shape} and w {w.shape} do not contract over {contract} dims")
  k = math.prod(kdims)
  y = jnp.dot(x.reshape(-1, k), w.reshape(k, -1), **kwargs)
  return y.reshape(lead + w.shape[contract:])


class RMSNorm(nnx.Module):
  """RMSNorm with float32 statistics; the scale multiplies after casting back (HF order)."""

  def __init__(self, dim: int, eps: float, param_dtype: str):
    self.scale = _param(jnp.ones((dim,), param_dtype), ("norm",))
    self.eps = eps

  def __call__(self, x: Float[Array, "... D"]) -> Float[Array, "... D"]:
    x32 = x.astype(jnp.float32)
    y = x32 * lax.rsqrt(jnp.mean(x32 * x32, axis=-1, keepdims=True) + self.eps)
    return y.astype(x.dtype) * self.scale[...].astype(x.dtype)


class Attention(nnx.Module):

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    d, n, k, h = config.hidden_size, config.num_heads, config.num_kv_heads, config.head_dim
    init, pd = nnx.initializers.normal(config.init_std), config.param_dtype
    self.q = _param(init(rngs.params(), (d, n, h), pd), ("embed", "q_heads", "head_dim"))
    self.k = _param(init(rngs.params(), (d, k, h), pd), ("embed", "kv_heads", "head_dim"))
    self.v = _param(init(rngs.params(), (d, k, h), pd), ("embed", "kv_heads", "head_dim"))
    self.o = _param(init(rngs.params(), (n, h, d), pd), ("q_heads", "head_dim", "embed"))
    bias = config.qkv_bias
    self.q_bias = _param(jnp.zeros((n, h), pd), ("q_heads", "head_dim")) if bias else None
    self.k_bias = _param(jnp.zeros((k, h), pd), ("kv_heads", "head_dim")) if bias else None
    self.v_bias = _param(jnp.zeros((k, h), pd), ("kv_heads", "head_dim")) if bias else None
    self.o_bias = _param(jnp.zeros((d,), pd), ("embed",)) if config.o_bias else None
    # Qwen3 normalises each q and k head over head_dim before RoPE.
    self.q_norm = RMSNorm(h, config.rms_norm_eps, pd) if config.qk_norm else None
    self.k_norm = RMSNorm(h, config.rms_norm_eps, pd) if config.qk_norm else None

  def project(self, x: Float[Array, "B T D"], sin: jax.Array, cos: jax.Array):
    """q [B, T, N, H] and k, v [B, T, K, H], RoPE applied to q and k."""
    dt = x.dtype
    q = dense(x, self.q[...].astype(dt))  # [B, T, N, H]
    k = dense(x, self.k[...].astype(dt))  # [B, T, K, H]
    v = dense(x, self.v[...].astype(dt))
    if self.q_bias is not None:
      q = q + self.q_bias[...].astype(dt)
      k = k + self.k_bias[...].astype(dt)
      v = v + self.v_bias[...].astype(dt)
    if self.q_norm is not None:
      q, k = self.q_norm(q), self.k_norm(k)
    q, k = apply_rope(q, sin, cos), apply_rope(k, sin, cos)
    return constrain(q, _BTNH), constrain(k, _BTKH), constrain(v, _BTKH)

  def output(self, attn: Float[Array, "B T N H"]) -> Float[Array, "B T D"]:
    y = dense(attn, self.o[...].astype(attn.dtype), contract=2)  # [B, T, D]
    return y if self.o_bias is None else y + self.o_bias[...].astype(y.dtype)


class MLP(nnx.Module):

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    d, f = config.hidden_size, config.intermediate_size
    init, pd = nnx.initializers.normal(config.init_std), config.param_dtype
    self.gate = _param(init(rngs.params(), (d, f), pd), ("embed", "mlp"))
    self.up = _param(init(rngs.params(), (d, f), pd), ("embed", "mlp"))
    self.down = _param(init(rngs.params(), (f, d), pd), ("mlp", "embed"))

  def __call__(self, x: Float[Array, "B T D"]) -> Float[Array, "B T D"]:
    dt = x.dtype
    gate = dense(x, self.gate[...].astype(dt))
    up = dense(x, self.up[...].astype(dt))
    hidden = constrain(jax.nn.silu(gate) * up, _BTF)
    return dense(hidden, self.down[...].astype(dt))


class Block(nnx.Module):

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.input_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    self.attn = Attention(config, rngs=rngs)
    self.post_attn_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, config.param_dtype)
    self.mlp = MLP(config, rngs=rngs)

  def __call__(self, x, sin, cos, mask, cache=None):
    """One layer. ``cache`` is None or (k_all [L,B,K,S,H], v_all, layer, cache_index); with a cache the
    new keys/values are written into layer ``layer`` of the stacked arrays, which are returned."""
    q, k, v = self.attn.project(self.input_norm(x), sin, cos)
    k, v = constrain(k.swapaxes(1, 2), _BKSH), constrain(v.swapaxes(1, 2), _BKSH)  # [B, K, T, H]
    if cache is not None:
      k_all, v_all, layer, index = cache
      start = (layer, 0, 0, index, 0)
      k_all = constrain(lax.dynamic_update_slice(k_all, k[None].astype(k_all.dtype), start), _CACHE)
      v_all = constrain(lax.dynamic_update_slice(v_all, v[None].astype(v_all.dtype), start), _CACHE)
      k, v = k_all[layer].astype(x.dtype), v_all[layer].astype(x.dtype)  # [B, K, S, H]
      cache = (k_all, v_all)
    x = constrain(x + self.attn.output(constrain(attend(q, k, v, mask), _BTNH)), _BTD)
    x = constrain(x + self.mlp(self.post_attn_norm(x)), _BTD)
    return x, cache


def _run_block(block: Block, x, sin, cos, mask):
  return block(x, sin, cos, mask)[0]


class Transformer(nnx.Module):
  """The decoder; see the module docstring for the call contracts."""

  def __init__(self, config: ModelConfig, *, rngs: nnx.Rngs):
    self.config = config
    pd = config.param_dtype
    self.embed = _param(nnx.initializers.normal(config.init_std)(
        rngs.params(), (config.vocab_size, config.hidden_size), pd), ("vocab", "embed"))
    self.layers = nnx.List([Block(config, rngs=rngs) for _ in range(config.num_layers)])
    self.final_norm = RMSNorm(config.hidden_size, config.rms_norm_eps, pd)
    self.lm_head = None if config.tie_embeddings else _param(nnx.initializers.normal(config.init_std)(
        rngs.params(), (config.hidden_size, config.vocab_size), pd), ("embed", "vocab"))

  # -- helpers ----------------------------------------------------------------------------------

  def _embed(self, tokens: Int[Array, "B T"]) -> Float[Array, "B T D"]:
    return constrain(jnp.take(self.embed[...], tokens, axis=0).astype(self.config.dtype), _BTD)

  def _check_tokens(self, tokens) -> None:
    if tokens.ndim != 2:
      raise ValueError(f"tokens must be int [B, T]; got shape {tokens.shape}")

  def unembed_weight(self) -> Float[Array, "D V"]:
    """The output projection [D, V] in the compute dtype (the transposed embedding when tied)."""
    w = self.embed[...].T if self.lm_head is None else self.lm_head[...]
    return w.astype(self.config.dtype)

  def logits_from_hidden(self, hidden: Float[Array, "B T D"]) -> Float[Array, "B T V"]:
    logits = jnp.einsum("BTD,DV->BTV", hidden, self.unembed_weight(), preferred_element_type=jnp.float32)
    return constrain(logits, _BTV)

  # -- full-sequence forward --------------------------------------------------------------------

  def hidden_states(self, tokens: Int[Array, "B T"], *, positions: Int[Array, "B T"] | None = None,
                    attention_mask: Int[Array, "B T"] | None = None,
                    segment_ids: Int[Array, "B T"] | None = None) -> Float[Array, "B T D"]:
    """Final-norm hidden states [B, T, D] in the compute dtype."""
    self._check_tokens(tokens)
    b, t = tokens.shape
    if positions is None:
      positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
    sin, cos = rope_sin_cos(positions, rope_inv_freq(self.config))  # [B, T, H/2]
    mask = forward_mask(t, attention_mask, segment_ids, b)  # [B, T, T]
    x = self._embed(tokens)  # [B, T, D]
    run = nnx.remat(_run_block) if self.config.remat else _run_block
    for block in self.layers:
      x = run(block, x, sin, cos, mask)
    return self.final_norm(x)

  def __call__(self, tokens: Int[Array, "B T"], *, positions: Int[Array, "B T"] | None = None,
               attention_mask: Int[Array, "B T"] | None = None,
               segment_ids: Int[Array, "B T"] | None = None) -> Float[Array, "B T V"]:
    """Logits float32 [B, T, V]."""
    hidden = self.hidden_states(tokens, positions=positions, attention_mask=attention_mask,
                                segment_ids=segment_ids)
    return self.logits_from_hidden(hidden)

  # -- KV-cache decoding ------------------------------------------------------------------------

  def init_cache(self, batch_size: int, max_len: int, dtype=None) -> dict[str, jax.Array]:
    """Zeroed cache dict(k=[L, B, K, S, H], v=[L, B, K, S, H]) in ``dtype`` (default compute dtype)."""
    c = self.config
    shape = (c.num_layers, batch_size, c.num_kv_heads, max_len, c.head_dim)
    dtype = c.dtype if dtype is None else dtype
    return dict(k=constrain(jnp.zeros(shape, dtype), _CACHE), v=constrain(jnp.zeros(shape, dtype), _CACHE))

  def decode(self, tokens: Int[Array, "B T"], *, positions: Int[Array, "B T"], cache: dict[str, jax.Array],
             cache_index: Int[Array, ""], kv_mask: Bool[Array, "B S"]
             ) -> tuple[Float[Array, "B T V"], dict[str, jax.Array]]:
    """Prefill (T > 1) or step (T = 1) with the KV cache; see the module docstring for semantics."""
    self._check_tokens(tokens)
    b, t = tokens.shape
    s = cache["k"].shape[3]
    if kv_mask.shape != (b, s):
      raise ValueError(f"kv_mask has shape {kv_mask.shape}; expected (B, S) = {(b, s)}")
    cache_index = jnp.asarray(cache_index, jnp.int32)
    sin, cos = rope_sin_cos(positions, rope_inv_freq(self.config))
    mask = decode_mask(t, cache_index, kv_mask)  # [B, T, S]
    x = self._embed(tokens)
    k_all, v_all = cache["k"], cache["v"]
    for layer, block in enumerate(self.layers):
      x, (k_all, v_all) = block(x, sin, cos, mask, cache=(k_all, v_all, layer, cache_index))
    logits = self.logits_from_hidden(self.final_norm(x))
    return logits, dict(k=k_all, v=v_all)


# ------------------------------------------------------------------------------------------------
# Sharding metadata
# ------------------------------------------------------------------------------------------------


def _is_variable(x) -> bool:
  return isinstance(x, nnx.Variable)


def logical_axes(model: nnx.Module):
  """Logical axis names per parameter: ``nnx.state(model, nnx.Param)`` with each Param replaced by
  its tuple of names (use ``is_leaf=lambda x: isinstance(x, tuple)`` when mapping over it)."""
  state = nnx.state(model, nnx.Param)
  return jax.tree.map(lambda v: tuple(v.get_metadata()["out_sharding"]), state, is_leaf=_is_variable)


def abstract_shapes(config: ModelConfig):
  """``nnx.eval_shape`` of the model: parameter shapes and dtypes without allocating memory."""
  return nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
