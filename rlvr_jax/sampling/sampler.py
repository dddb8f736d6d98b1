"""The jittable rollout core: prefill each prompt once, fan its KV out to G samples, decode on device.

`sample_padded` is a pure function of device arrays with no host callbacks and no Python loop over
tokens; the RL trainer calls it inside its own ``jax.jit`` (params may be sharded over a mesh, and the
batch dimension may be sharded: every op here is row-wise except the "all rows done" reduction).

Shape of the computation, for P prompts left-padded to Tp tokens, G samples each, N new tokens:

1. Prefill at batch P (the G-fold saving): ``Transformer.decode`` over the first Tp - 1 prompt
   columns writes their keys/values. Its logits are unused, so XLA drops the [P, Tp - 1, V]
   unembedding (``decode`` has no "last position only" option).
2. Fan-out: the [L, P, K, Tp - 1, H] prompt cache is repeated to P*G rows (samples of one prompt
   adjacent).
3. ``lax.while_loop`` runs ``decode`` one token at a time at batch P*G: step 0 feeds the last
   prompt column (every left-padded prompt's last real token; recomputing that one token G times
   costs less than a second prefill program to compile) and samples new token 0, step t feeds token
   t - 1 and samples token t, until t = N or every row has emitted a stop id (early exit: one
   device-side reduction per step, no host round trip). ``decode`` attends over every cache slot it
   is given, so the loop is split into a few phases (`phase_ends`), each extending the cache by the
   slots its own steps write: early steps do not pay attention over the empty tail.

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
import math

import jax
import jax.numpy as jnp
from flax import nnx
from jax import lax
from jaxtyping import Array, Bool, Int

from rlvr_jax.parallel.constraints import constrain
from rlvr_jax.sampling.processing import row_keys, sample_tokens

FINISH_STOP = 0  # the row emitted one of the stop ids (included in its tokens and length)
FINISH_LENGTH = 1  # the row reached max_new_tokens without a stop id

# How many times `sample_padded` has been traced per SamplerConfig: a cheap recompile guard for tests
# and for the trainer's own sanity checks (a Python side effect runs once per trace, not per call).
TRACE_COUNTS: collections.Counter = collections.Counter()

# Logical axis names of the sampler's own arrays. They only act inside
# ``rlvr_jax.parallel.constraints.use_mesh`` and keep the fanned-out rows on the device that
# prefilled their prompt (the model tags the cache the same way inside ``decode``).
_CACHE = ("layer", "batch", "kv_heads", "length", "head_dim")
_ROWS = ("batch",)
_ROWS_T = ("batch", None)

# Automatic decode phases (SamplerConfig.decode_phases = 0): on 2 CPU cores and a 128-token decode,
# 4 phases gave 1.3-1.8x more tokens/s than 1 and about 2x the compile time; 8 gained little more.
MAX_AUTO_PHASES = 4
MIN_AUTO_PHASE_STEPS = 32

# Per-position temperature schedules (SamplerConfig.temperature_schedule); see `position_temperature`.
TEMPERATURE_SCHEDULES = ("constant", "linear", "cosine", "ead")


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
  """The static (compile-time) arguments of `sample_padded`; hashable, so it can key a jit cache.

  ``num_samples`` is G (samples per prompt, GRPO's group size); ``temperature`` 0 is greedy; ``top_k``
  0 and ``top_p`` 1 and ``min_p`` 0 disable those filters; ``eos_ids`` are the stop ids (any of them
  ends a row); ``pad_id`` fills ``tokens`` after a row's end. ``decode_phases`` splits the decode loop
  into that many loops over a growing cache (see `phase_ends`): faster steps, longer compiles; 0 (auto)
  means one phase per 32 new tokens, at most ``MAX_AUTO_PHASES``.

  Temperature schedule over the response positions (e.g. EAD-style exploration: hot early tokens,
  cooler later ones): ``temperature_schedule`` is one of ``TEMPERATURE_SCHEDULES``. "constant" (the
  default) samples every position at ``temperature`` and compiles exactly the program it did before
  schedules existed; ``temperature_end`` must then be None (a value equal to ``temperature`` is
  accepted and normalised to None). "linear" and "cosine" anneal from ``temperature`` (T0) at new
  token 0 to ``temperature_end`` (T1, required, > 0) at new token ``max_new_tokens - 1``; see
  `position_temperature` for the formulas. A schedule needs ``temperature`` > 0 (greedy has none).
  "ead" (Exploratory Annealed Decoding, arXiv 2510.05251) starts at ``temperature`` (tau_max) and
  falls as ``1 + tau_max - exp(t / d)`` to the floor ``temperature_end`` (tau_min); its decay ``d``
  is a run-time argument of `sample_padded` (EAD lengthens it as training goes on, which must not
  recompile), and the first ``temperature_offset`` new tokens are sampled at temperature 1.
  The log-probs returned are under the distribution actually sampled from at each position (that
  position's temperature, then the filters).
  """

  max_new_tokens: int
  num_samples: int = 1
  temperature: float = 1.0
  top_k: int = 0
  top_p: float = 1.0
  min_p: float = 0.0
  eos_ids: tuple[int, ...] = ()
  pad_id: int = 0
  decode_phases: int = 0
  temperature_end: float | None = None
  temperature_schedule: str = "constant"
  temperature_offset: int = 0  # "ead": new tokens before the annealing starts (sampled at T = 1)

  def __post_init__(self):
    object.__setattr__(self, "eos_ids", tuple(int(e) for e in self.eos_ids))
    for name in ("max_new_tokens", "num_samples", "top_k", "pad_id", "decode_phases",
                 "temperature_offset"):
      object.__setattr__(self, name, int(getattr(self, name)))
    for name in ("temperature", "top_p", "min_p"):
      object.__setattr__(self, name, float(getattr(self, name)))
    if self.max_new_tokens < 1:
      raise ValueError(f"max_new_tokens={self.max_new_tokens}; need at least 1")
    if self.decode_phases < 0:
      raise ValueError(f"decode_phases={self.decode_phases}; need >= 0 (0 = auto)")
    if self.decode_phases == 0:
      auto = min(MAX_AUTO_PHASES, max(1, self.max_new_tokens // MIN_AUTO_PHASE_STEPS))
      object.__setattr__(self, "decode_phases", auto)
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
    self._check_temperature_schedule()

  def _check_temperature_schedule(self):
    schedule = self.temperature_schedule
    if not isinstance(schedule, str) or schedule not in TEMPERATURE_SCHEDULES:
      raise ValueError(f"temperature_schedule={schedule!r}; valid values are "
                       f"{', '.join(repr(x) for x in TEMPERATURE_SCHEDULES)}")
    end = self.temperature_end
    if end is not None:
      try:
        end = float(end)
      except (TypeError, ValueError):
        raise ValueError(f"temperature_end={end!r}; need a float > 0 or None") from None
      object.__setattr__(self, "temperature_end", end)
    if self.temperature_offset and schedule != "ead":
      raise ValueError(f"temperature_offset={self.temperature_offset} only applies to "
                       f"temperature_schedule='ead' (got {schedule!r})")
    if self.temperature_offset < 0:
      raise ValueError(f"temperature_offset={self.temperature_offset}; need >= 0")
    if schedule == "constant":
      if end is not None and end != self.temperature:
        raise ValueError(f"temperature_end={end} has no effect with temperature_schedule='constant' "
                         f"(temperature={self.temperature}); set temperature_schedule to 'linear' or "
                         "'cosine' to anneal, or leave temperature_end=None")
      object.__setattr__(self, "temperature_end", None)  # same config (and program) as no schedule
      return
    if self.temperature == 0.0:
      raise ValueError(f"temperature=0 (greedy) with temperature_schedule={schedule!r}; a schedule "
                       "needs temperature > 0 (use temperature_schedule='constant' for greedy)")
    if end is None:
      raise ValueError(f"temperature_schedule={schedule!r} needs temperature_end (the temperature at "
                       "the last new token, > 0); got None")
    if not end > 0.0 or not math.isfinite(end):
      raise ValueError(f"temperature_end={end}; need a finite temperature_end > 0 with "
                       f"temperature_schedule={schedule!r} (greedy cannot be scheduled)")


def position_temperature(config_or_args, t, decay=None):
  """The sampling temperature at new-token position ``t`` (0-based; int or traced int32 scalar).

  ``config_or_args`` is a `SamplerConfig` or a tuple ``(temperature, temperature_end,
  temperature_schedule, max_new_tokens)``. With T0 = temperature, T1 = temperature_end,
  N = max_new_tokens and d = max(N - 1, 1):

    constant: T0
    linear:   T0 + (T1 - T0) * t / d
    cosine:   T1 + (T0 - T1) * 0.5 * (1 + cos(pi * t / d))

    ead:      1 for t < c, then max(1 + T0 - exp((t - c) / decay), T1)   (c = temperature_offset)

  "linear" and "cosine" give T0 at t = 0 and T1 at t = N - 1; "ead" gives T0 at t = c and reaches
  T1 at t = c + decay * log(1 + T0 - T1) (``decay`` > 0: a float or traced float32 scalar, required
  for "ead" only; the tuple form then carries c as a fifth element). Returns the Python float T0 for "constant"
  (so a constant schedule keeps a compile-time temperature), else a float32 jax scalar computed in
  float32 (pure jnp: works on a traced ``t`` inside the decode loop).
  """
  offset = 0
  if isinstance(config_or_args, SamplerConfig):
    c = config_or_args
    t0, t1, schedule, n = c.temperature, c.temperature_end, c.temperature_schedule, c.max_new_tokens
    offset = c.temperature_offset
  elif len(config_or_args) == 5:
    t0, t1, schedule, n, offset = config_or_args
  else:
    t0, t1, schedule, n = config_or_args
  if schedule == "constant":
    return float(t0)
  if schedule not in TEMPERATURE_SCHEDULES:
    raise ValueError(f"temperature_schedule={schedule!r}; valid values are "
                     f"{', '.join(repr(x) for x in TEMPERATURE_SCHEDULES)}")
  if t1 is None:
    raise ValueError(f"temperature_schedule={schedule!r} needs temperature_end; got None")
  t0, t1 = jnp.float32(t0), jnp.float32(t1)
  if schedule == "ead":
    if decay is None:
      raise ValueError("temperature_schedule='ead' needs its decay (a float > 0); got None")
    since = jnp.asarray(t, jnp.float32) - jnp.float32(offset)
    annealed = jnp.maximum(1.0 + t0 - jnp.exp(since / jnp.asarray(decay, jnp.float32)), t1)
    return jnp.where(since < 0, jnp.float32(1.0), annealed).astype(jnp.float32)
  frac = jnp.asarray(t, jnp.float32) / jnp.float32(max(int(n) - 1, 1))
  if schedule == "linear":
    return t0 + (t1 - t0) * frac
  return t1 + (t0 - t1) * jnp.float32(0.5) * (jnp.float32(1.0) + jnp.cos(jnp.float32(math.pi) * frac))


def _is_stop(tokens: Int[Array, "B"], eos_ids: tuple[int, ...]) -> Bool[Array, "B"]:
  if not eos_ids:
    return jnp.zeros(tokens.shape, bool)
  return jnp.any(tokens[:, None] == jnp.asarray(eos_ids, jnp.int32)[None, :], axis=-1)


def prefill(model, prompt_tokens: Int[Array, "P Tp"], prompt_mask: Bool[Array, "P Tp"]
            ) -> tuple[dict[str, jax.Array], Int[Array, "P"]]:
  """Writes the keys/values of all but the last prompt column; returns (cache [L, P, K, Tp - 1, H],
  prompt lengths [P]).

  The logits of this call are unused, so XLA drops the [P, Tp - 1, V] unembedding. The last column
  (every left-padded prompt's last real token) is fed by the first step of the decode loop instead,
  which yields the logits of new token 0 without a second prefill program.
  """
  p, tp = prompt_tokens.shape
  mask = prompt_mask.astype(bool)
  lengths = jnp.sum(mask, axis=1, dtype=jnp.int32)  # [P]
  cache = model.init_cache(p, tp - 1)
  if tp > 1:
    positions = jnp.maximum(jnp.cumsum(mask, axis=1, dtype=jnp.int32) - 1, 0)  # [P, Tp]
    _, cache = model.decode(prompt_tokens[:, :-1], positions=positions[:, :-1], cache=cache,
                            cache_index=jnp.int32(0), kv_mask=mask[:, :-1])
  return cache, lengths


def _fan_out(x: jax.Array, g: int, axis: int = 0) -> jax.Array:
  """Repeats every row G times, keeping the samples of one prompt adjacent."""
  return x if g == 1 else jnp.repeat(x, g, axis=axis)


def sample_padded(graphdef: nnx.GraphDef, state: nnx.State, prompt_tokens: Int[Array, "P Tp"],
                  prompt_mask: Bool[Array, "P Tp"], rng: jax.Array, config: SamplerConfig,
                  temperature_decay: jax.Array | None = None,
                  row_offset: jax.Array | None = None) -> dict[str, jax.Array]:
  """Samples ``config.num_samples`` continuations of each left-padded prompt, all on device.

  Args:
    graphdef, state: ``nnx.split(model)`` of a `rlvr_jax.models.Transformer` (static / traced).
    prompt_tokens: int32 [P, Tp], left padded (every row needs at least one real token, in the last
      column; validate on the host with `rlvr_jax.sampling.check_prompts`).
    prompt_mask: bool [P, Tp], True on real tokens.
    rng: a PRNG key; row r of step t draws from ``fold_in(fold_in(rng, t), r)``.
    config: the static `SamplerConfig`.
    temperature_decay: float32 scalar, the decay of the "ead" schedule (traced: a new value does
      not recompile); None for every other schedule.
    row_offset: uint32 scalar, the global number of this call's first row when the call is one
      chunk of a larger rollout (row r then draws the keys of row ``row_offset + r``; traced, so
      every chunk runs one program); None (the default) for a whole rollout in one call.

  Returns a dict of device arrays, rows ordered prompt-major (row p * G + g is sample g of prompt p):
    tokens int32 [P*G, N] (``pad_id`` after a row's end; a stop id, when emitted, is included),
    lengths int32 [P*G], logprobs float32 [P*G, N] (0 after the end; under the distribution sampled
    from at each position, i.e. at `position_temperature` when a schedule is set), finish_reason int8 [P*G]
    (FINISH_STOP or FINISH_LENGTH), num_steps int32 [] (tokens generated by the longest row).
  """
  TRACE_COUNTS[config] += 1
  model = nnx.merge(graphdef, state)
  g, n = config.num_samples, config.max_new_tokens
  tp = prompt_tokens.shape[1]
  prompt_cache, prompt_len = prefill(model, prompt_tokens, prompt_mask)  # [L, P, K, Tp - 1, H], [P]
  prompt_len = _fan_out(prompt_len, g)  # [B], B = P * G
  b = prompt_len.shape[0]
  # Decode cache: each prompt's KV repeated G times, then one slot per step: the last prompt token
  # (fed at step 0) and new tokens 0..N-2 (token N-1 is sampled but never fed back). The slots are
  # added phase by phase (see `phase_ends`), so early steps attend over a shorter cache.
  cache = {name: _fan_out(prompt_cache[name], g, axis=1) for name in ("k", "v")}  # [L, B, K, Tp - 1, H]
  kv_mask = _fan_out(prompt_mask[:, :-1].astype(bool), g)  # [B, Tp - 1]
  prompt_len = constrain(prompt_len, _ROWS)

  def run_phase(carry, start, end):
    t, cache, prev, tokens, logprobs, lengths, stopped = carry
    empty = model.init_cache(b, end - start)
    cache = {name: constrain(jnp.concatenate([cache[name], empty[name]], axis=3), _CACHE) for name in cache}
    # Slots after the prompt are always visible: causality in `decode` hides those not written yet.
    mask = constrain(jnp.concatenate([kv_mask, jnp.ones((b, end), bool)], axis=1), _ROWS_T)  # [B, Tp-1+end]

    def cond(carry):
      return (carry[0] < end) & ~jnp.all(carry[-1])

    def body(carry):
      # Step t feeds the previous token (the last prompt token when t = 0) and samples new token t.
      t, cache, prev, tokens, logprobs, lengths, stopped = carry
      logits, cache = model.decode(prev[:, None], positions=(prompt_len - 1 + t)[:, None], cache=cache,
                                   cache_index=tp - 1 + t, kv_mask=mask)  # [B, 1, V]
      if config.temperature_schedule == "constant":
        temperature = config.temperature  # a Python float: the program is the unscheduled one
      else:
        temperature = position_temperature(config, t, temperature_decay)  # traced scalar, > 0
      tok, logp = sample_tokens(logits[:, 0], row_keys(rng, t, b, row_offset), temperature=temperature,
                                top_k=config.top_k, top_p=config.top_p, min_p=config.min_p)  # [B], [B]
      live = ~stopped  # rows still generating at step t
      tokens = lax.dynamic_update_slice(tokens, jnp.where(live, tok, config.pad_id)[:, None], (0, t))
      logprobs = lax.dynamic_update_slice(logprobs, jnp.where(live, logp, 0.0)[:, None], (0, t))
      lengths = lengths + live.astype(jnp.int32)
      stopped = stopped | (live & _is_stop(tok, config.eos_ids))
      return t + 1, cache, tok, tokens, logprobs, lengths, stopped

    return lax.while_loop(cond, body, (t, cache, prev, tokens, logprobs, lengths, stopped))

  carry = (jnp.int32(0), cache, constrain(_fan_out(prompt_tokens[:, -1], g), _ROWS),
           constrain(jnp.full((b, n), config.pad_id, jnp.int32), _ROWS_T),
           constrain(jnp.zeros((b, n), jnp.float32), _ROWS_T), constrain(jnp.zeros((b,), jnp.int32), _ROWS),
           constrain(jnp.zeros((b,), bool), _ROWS))
  start = 0
  for end in phase_ends(n, config.decode_phases):
    carry = run_phase(carry, start, end)
    start = end
  t, _, _, tokens, logprobs, lengths, stopped = carry
  return _outputs(tokens, lengths, logprobs, stopped, t)


def phase_ends(num_steps: int, phases: int) -> list[int]:
  """Step counts at which the decode phases end: ``phases`` near-equal parts of ``num_steps``.

  Every phase is its own ``while_loop`` whose cache holds only the slots its steps can reach, so the
  attention of early steps skips the empty tail (``decode`` attends over every slot it is given).
  The price is one compiled copy of the decode step per phase and one cache copy between phases.
  """
  phases = max(1, min(phases, num_steps))
  return sorted({-(-num_steps * (j + 1) // phases) for j in range(phases)})


def _outputs(tokens, lengths, logprobs, stopped, num_steps) -> dict[str, jax.Array]:
  finish = jnp.where(stopped, FINISH_STOP, FINISH_LENGTH).astype(jnp.int8)
  return dict(tokens=tokens, lengths=lengths, logprobs=logprobs, finish_reason=finish,
              num_steps=jnp.asarray(num_steps, jnp.int32))
