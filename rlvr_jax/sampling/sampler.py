"""The jittable rollout core: prefill each prompt once, fan its KV out to G samples, decode on device.

`sample_padded` is a pure function of device arrays with no host callbacks and no Python loop over
tokens; the RL trainer calls it inside its own ``jax.jit`` (params may be sharded over a mesh, and the
batch dimension may be sharded: every op here is row-wise except the "all rows done" reduction).

Shape of the computation, for P prompts left-padded to Tp tokens, G samples each, N new tokens:

1. Prefill at batch P (the G-fold saving): ``Transformer.decode`` over the first Tp - 1 prompt
   tokens writes their keys/values (its logits are unused, so XLA drops the [P, Tp, V] unembedding),
   then a one-token ``decode`` of the last prompt token gives the next-token logits [P, V]. Splitting
   the prefill this way keeps the vocabulary projection off the Tp - 1 positions nobody reads.
2. Fan-out: the [L, P, Tp, K, H] prompt cache is repeated to P*G rows (samples of one prompt
   adjacent) and extended by N - 1 empty slots for the generated tokens; the logits are repeated too.
3. Token 0 is sampled, then a ``lax.while_loop`` runs ``decode`` one token at a time at batch P*G and
   samples token t, until t = N or every row has emitted a stop id (early exit: one device-side
   reduction per step, no host round trip).

The decode cache repeats the prompt KV G times. Keeping it at P rows and attending to it from P*G
queries would save (G - 1) * Tp cache rows of memory and bandwidth, but ``Transformer.decode`` takes a
single cache, so that needs a two-part attention inside the model; it is left to the model package
(see the report of issue 3) rather than re-implemented here against its private layers.

Positions: a left-padded prompt with n real tokens has positions 0..n-1 (``cumsum(mask) - 1``); its
t-th new token has position n + t, whatever the padding, so results do not depend on the bucket.
"""
from __future__ import annotations

import collections
import dataclasses

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jaxtyping import Array, Bool, Int

from rlvr_jax.sampling.processing import row_keys, sample_tokens

FINISH_STOP = 0  # the row emitted one of the stop ids (included in its tokens and length)
FINISH_LENGTH = 1  # the row reached max_new_tokens without a stop id

# How many times `sample_padded` has been traced per SamplerConfig: a cheap recompile guard for tests
# and for the trainer's own sanity checks (a Python side effect runs once per trace, not per call).
TRACE_COUNTS: collections.Counter = collections.Counter()


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """The static (compile-time) arguments of `sample_padded`; hashable, so it can key a jit cache.

  ``num_samples`` is G (samples per prompt, GRPO's group size); ``temperature`` 0 is greedy; ``top_k``
  0 and ``top_p`` 1 and ``min_p`` 0 disable those filters; ``eos_ids`` are the stop ids (any of them
  ends a row); ``pad_id`` fills ``tokens`` after a row's end.
  """

  max_new_tokens: int
  num_samples: int = 1
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  min_p: float = 0.0
  eos_ids: tuple[int, ...] = ()
  pad_id: int = 0

  def __post_init__(self):
    object.__setattr__(self, "eos_ids", tuple(int(e) for e in self.eos_ids))
    for name in ("max_new_tokens", "num_samples", "top_k", "pad_id"):
      object.__setattr__(self, name, int(getattr(self, name)))
    for name in ("temperature", "top_p", "min_p"):
      object.__setattr__(self, name, float(getattr(self, name)))
    if self.max_new_tokens < 1:
      raise ValueError(f"max_new_tokens={self.max_new_tokens}; need at least 1")
    if self.num_samples < 1:
      raise ValueError(f"num_samples={self.num_samples}; need at least 1")
    if self.temperature < 0:
      raise ValueError(f"temperature={self.temperature}; need >= 0 (0 = greedy)")
    if self.top_k < 0:
      raise ValueError(f"top_k={self.top_k}; need >= 0 (0 = off)")
    if not 0.0 < self.top_p <= 1.0:
      raise ValueError(f"top_p={self.top_p}; need 0 < top_p <= 1 (1 = off)")
    if not 0.0 <= self.min_p <= 1.0:
      raise ValueError(f"min_p={self.min_p}; need 0 <= min_p <= 1 (0 = off)")


def _is_stop(tokens: Int[Array, "B"], eos_ids: tuple[int, ...]) -> Bool[Array, "B"]:
  if not eos_ids:
    return jnp.zeros(tokens.shape, bool)
  return jnp.any(tokens[:, None] == jnp.asarray(eos_ids, jnp.int32)[None, :], axis=-1)


def prefill(model, prompt_tokens: Int[Array, "P Tp"], prompt_mask: Bool[Array, "P Tp"]):
  """Runs the prompts once; returns (next-token logits [P, V], cache with Tp slots, lengths [P]).

  The last column of a left-padded batch is every prompt's last real token, so it is fed separately
  as a one-token step: the [P, Tp - 1, V] logits of the bulk call are dead code that XLA removes.
  """
  p, tp = prompt_tokens.shape
  mask = prompt_mask.astype(bool)
  positions = jnp.maximum(jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1, 0)  # [P, Tp]
  cache = model.init_cache(p, tp)
  if tp > 1:
    _, cache = model.decode(prompt_tokens[:, :-1], positions=positions[:, :-1], cache=cache,
                            cache_index=jnp.int32(0), kv_mask=mask)
  logits, cache = model.decode(prompt_tokens[:, -1:], positions=positions[:, -1:], cache=cache,
                               cache_index=jnp.int32(tp - 1), kv_mask=mask)
  return logits[:, 0], cache, positions[:, -1] + 1  # [P, V], cache, [P]


def _fan_out(x: jax.Array, g: int, axis: int = 0) -> jax.Array:
  """Repeats every row G times, keeping the samples of one prompt adjacent."""
  return x if g == 1 else jnp.repeat(x, g, axis=axis)


def sample_padded(graphdef: nnx.GraphDef, state: nnx.State, prompt_tokens: Int[Array, "P Tp"],
                  prompt_mask: Bool[Array, "P Tp"], rng: jax.Array, config: SamplerConfig
                  ) -> dict[str, jax.Array]:
  """Samples ``config.num_samples`` continuations of each left-padded prompt, all on device.

  Args:
    graphdef, state: ``nnx.split(model)`` of a `rlvr_jax.models.Transformer` (static / traced).
    prompt_tokens: int32 [P, Tp], left padded (every row needs at least one real token, in the last
      column; validate on the host with `rlvr_jax.sampling.check_prompts`).
    prompt_mask: bool [P, Tp], True on real tokens.
    rng: a PRNG key; row r of step t draws from ``fold_in(fold_in(rng, t), r)``.
    config: the static `SamplerConfig`.

  Returns a dict of device arrays, rows ordered prompt-major (row p * G + g is sample g of prompt p):
    tokens int32 [P*G, N] (``pad_id`` after a row's end; a stop id, when emitted, is included),
    lengths int32 [P*G], logprobs float32 [P*G, N] (0 after the end), finish_reason int8 [P*G]
    (FINISH_STOP or FINISH_LENGTH), num_steps int32 [] (tokens generated by the longest row).
  """
  TRACE_COUNTS[config] += 1
  model = nnx.merge(graphdef, state)
  g, n = config.num_samples, config.max_new_tokens
  sample = lambda logits, step: sample_tokens(
      logits, row_keys(rng, step, logits.shape[0]), temperature=config.temperature, top_k=config.top_k,
      top_p=config.top_p, min_p=config.min_p)

  logits, prompt_cache, next_pos = prefill(model, prompt_tokens, prompt_mask)  # [P, V], ., [P]
  logits, next_pos = _fan_out(logits, g), _fan_out(next_pos, g)  # [B, V], [B] with B = P*G
  b = logits.shape[0]
  tok0, logp0 = sample(logits, jnp.int32(0))  # [B], [B]
  stopped = _is_stop(tok0, config.eos_ids)  # [B]
  tokens = jnp.full((b, n), config.pad_id, jnp.int32).at[:, 0].set(tok0)  # [B, N]
  logprobs = jnp.zeros((b, n), jnp.float32).at[:, 0].set(logp0)  # [B, N]
  lengths = jnp.ones((b,), jnp.int32)
  if n == 1:
    return _outputs(tokens, lengths, logprobs, stopped, jnp.int32(1))

  tp = prompt_tokens.shape[1]
  # Decode cache: the prompt KV of each prompt repeated G times, then N - 1 slots for new tokens
  # (the N-th token is sampled but never fed back, so it needs no slot).
  empty = model.init_cache(b, n - 1)
  cache = {name: jnp.concatenate([_fan_out(prompt_cache[name], g, axis=1), empty[name]], axis=2)
           for name in ("k", "v")}  # [L, B, Tp + N - 1, K, H]
  # Generated slots are always visible: causality in `decode` hides the ones not written yet.
  kv_mask = jnp.concatenate([_fan_out(prompt_mask.astype(bool), g), jnp.ones((b, n - 1), bool)], axis=1)

  def cond(carry):
    t, _, _, _, _, _, stopped = carry
    return (t < n) & ~jnp.all(stopped)

  def body(carry):
    t, cache, prev, tokens, logprobs, lengths, stopped = carry
    logits, cache = model.decode(prev[:, None], positions=(next_pos + t - 1)[:, None], cache=cache,
                                 cache_index=tp + t - 1, kv_mask=kv_mask)  # [B, 1, V]
    tok, logp = sample(logits[:, 0], t)  # [B], [B]
    live = ~stopped  # rows still generating at step t
    tokens = lax.dynamic_update_slice(tokens, jnp.where(live, tok, config.pad_id)[:, None], (0, t))
    logprobs = lax.dynamic_update_slice(logprobs, jnp.where(live, logp, 0.0)[:, None], (0, t))
    lengths = lengths + live.astype(jnp.int32)
    stopped = stopped | (live & _is_stop(tok, config.eos_ids))
    return t + 1, cache, tok, tokens, logprobs, lengths, stopped

  carry = (jnp.int32(1), cache, tok0, tokens, logprobs, lengths, stopped)
  t, _, _, tokens, logprobs, lengths, stopped = lax.while_loop(cond, body, carry)
  return _outputs(tokens, lengths, logprobs, stopped, t)


def _outputs(tokens, lengths, logprobs, stopped, num_steps) -> dict[str, jax.Array]:
  finish = jnp.where(stopped, FINISH_STOP, FINISH_LENGTH).astype(jnp.int8)
  return dict(tokens=tokens, lengths=lengths, logprobs=logprobs, finish_reason=finish,
              num_steps=jnp.asarray(num_steps, jnp.int32))
