"""Host-side sampling: validation, shape bucketing, packing, and the public `generate`.

`generate` turns a list of token-id lists into fixed, bucketed device shapes, calls the jitted
`sample_padded`, and returns numpy arrays for the real rows. Bucketing bounds the number of compiled
programs: prompt length rounds up to a power of two (at least ``MIN_PROMPT_BUCKET``), the number of
prompts to a power of two (the extra rows are dummy one-token prompts whose samples are dropped), so a
run whose prompt lengths and batch sizes vary compiles O(log) programs, not one per step. Because
every row draws from its own key (see processing.py), the dummy rows and the bucket never change the
samples of the real rows.
"""
from __future__ import annotations

import dataclasses
import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jaxtyping import Bool, Int

from rlvr_jax.sampling.sampler import FINISH_LENGTH, FINISH_STOP, SamplerConfig, sample_padded

MIN_PROMPT_BUCKET = 8


@dataclasses.dataclass(frozen=True)
class SampleResult:
  """Numpy results of `generate`; rows are prompt-major (row p * G + g is sample g of prompt p).

  tokens: int32 [P*G, max_new_tokens], ``pad_id`` after each row's end; a stop id, when emitted, is
    the last token of the row and counts in ``lengths`` (the policy must learn to emit it).
  lengths: int32 [P*G], the number of generated tokens per row.
  logprobs: float32 [P*G, max_new_tokens], log-prob of each token under the sampling distribution
    (after temperature / top-k / top-p / min-p); 0 after the end. With a temperature schedule it
    uses that position's temperature (`position_temperature`). With temperature 0 (greedy) it is the
    log-prob under the unfiltered model at temperature 1.
  finish_reason: int8 [P*G], ``FINISH_STOP`` (0) or ``FINISH_LENGTH`` (1).
  num_samples: G.
  num_steps: decode steps the device ran (the longest row's length: fewer than max_new_tokens when
    every row stopped early), or None when the producer did not record it.
  call_steps: the decode steps of each device call when the rollout ran in chunks
    (`sample_in_chunks`; a call stops when its own rows have), else None.
  """

  tokens: np.ndarray
  lengths: np.ndarray
  logprobs: np.ndarray
  finish_reason: np.ndarray
  num_samples: int
  num_steps: int | None = None
  call_steps: tuple[int, ...] | None = None

  FINISH_STOP = FINISH_STOP
  FINISH_LENGTH = FINISH_LENGTH


def next_power_of_two(n: int) -> int:
  return 1 << max(int(n) - 1, 0).bit_length()


def bucket_prompt_length(n: int, *, minimum: int = MIN_PROMPT_BUCKET) -> int:
  """Padded prompt length for a longest prompt of ``n`` tokens: a power of two >= max(n, minimum)."""
  return next_power_of_two(max(n, minimum))


def bucket_batch_size(n: int) -> int:
  """Padded number of prompts: the next power of two (1, 2, 4, ...)."""
  return next_power_of_two(max(n, 1))


def check_prompts(prompts: Sequence[Sequence[int]], *, vocab_size: int, max_new_tokens: int,
                  max_len: int) -> list[np.ndarray]:
  """Validates prompts on the host; returns them as int32 arrays.

  Raises ValueError naming the first bad row: an empty prompt, a token id outside [0, vocab_size),
  or a prompt that with ``max_new_tokens`` new tokens needs more than ``max_len`` positions.
  """
  if len(prompts) == 0:
    raise ValueError("prompts is empty; pass at least one prompt (a list of token ids)")
  out = []
  for i, prompt in enumerate(prompts):
    row = np.asarray(prompt)
    if row.ndim != 1:
      raise ValueError(f"prompt {i} has shape {row.shape}; expected a flat sequence of token ids")
    if row.size == 0:
      raise ValueError(f"prompt {i} is empty; every prompt needs at least one token (e.g. a BOS id)")
    if not np.issubdtype(row.dtype, np.integer):
      raise ValueError(f"prompt {i} has dtype {row.dtype}; expected integer token ids")
    bad = np.flatnonzero((row < 0) | (row >= vocab_size))
    if bad.size:
      j = int(bad[0])
      raise ValueError(f"prompt {i} has token id {int(row[j])} at position {j}, outside the "
                       f"vocabulary [0, {vocab_size})")
    if row.size + max_new_tokens > max_len:
      raise ValueError(f"prompt {i} has {row.size} tokens; with max_new_tokens={max_new_tokens} it needs "
                       f"{row.size + max_new_tokens} positions but the cache holds max_len={max_len} "
                       "(shorten the prompt or lower max_new_tokens)")
    out.append(row.astype(np.int32))
  return out


def pack_prompts(prompts: Sequence[np.ndarray], *, num_rows: int, length: int, pad_id: int
                 ) -> tuple[Int[np.ndarray, "R T"], Bool[np.ndarray, "R T"]]:
  """Left-pads prompts into [num_rows, length] token and mask arrays; rows past len(prompts) are dummy
  one-token prompts (``pad_id``) so that no row is fully masked."""
  tokens = np.full((num_rows, length), pad_id, np.int32)
  mask = np.zeros((num_rows, length), bool)
  for i, row in enumerate(prompts):
    tokens[i, length - row.size:] = row
    mask[i, length - row.size:] = True
  mask[len(prompts):, -1] = True
  return tokens, mask


def schedule_decay(config: SamplerConfig, decay: float | None) -> jax.Array | None:
  """The run-time decay argument of `sample_padded`: a float32 scalar for "ead" (required, > 0),
  None for every other schedule (which then compiles exactly as without it)."""
  if config.temperature_schedule != "ead":
    if decay is not None:
      raise ValueError(f"temperature_decay={decay} only applies to temperature_schedule='ead' "
                       f"(got {config.temperature_schedule!r})")
    return None
  if decay is None or not float(decay) > 0.0:
    raise ValueError(f"temperature_schedule='ead' needs temperature_decay > 0; got {decay!r}")
  return jnp.float32(decay)


def chunk_prompts(num_prompts: int, num_samples: int, max_rows: int | None, split: int = 1
                  ) -> int | None:
  """Prompts per sampler call when a rollout may use at most ``max_rows`` rows per call.

  A row is one sample, so a call of p prompts holds p * ``num_samples`` rows, and the samples of a
  prompt never straddle two calls. ``split`` is how many ways the call's batch is sharded (its
  prompt count is padded to a multiple of it). Returns None when no bound is set (``max_rows`` None
  or 0) or when the one call of today (the prompt count bucketed to a power of two, then padded to
  ``split``) fits the bound; else the chunk size: the most prompts that fit, rounded down to a
  multiple of ``split``. Every chunk, the last one padded with dummy prompts, then has that size, so
  the chunks share one compiled program. Raises ValueError with the numbers when a call cannot hold
  ``split`` prompts' samples (at least one prompt per device).
  """
  if not max_rows:
    return None
  max_rows, num_samples, split = int(max_rows), int(num_samples), int(split)
  whole = -(-bucket_batch_size(num_prompts) // split) * split
  if whole * num_samples <= max_rows:
    return None
  if max_rows < num_samples:
    raise ValueError(f"max_rows_per_call={max_rows} cannot hold the {num_samples} samples of one "
                     f"prompt (the samples of a prompt are drawn in one sampler call): use a "
                     f"multiple of {num_samples * split}")
  per_call = max_rows // num_samples // split * split
  if per_call == 0:
    raise ValueError(f"max_rows_per_call={max_rows} holds {max_rows // num_samples} prompts of "
                     f"{num_samples} samples, fewer than the {split}-way data-parallel split of the "
                     f"sampler's batch (one prompt per shard at least): use a multiple of "
                     f"{num_samples} x {split} = {num_samples * split}")
  return per_call


def sample_in_chunks(call: Callable, fetch: Callable, rows: Sequence[np.ndarray], *,
                     num_samples: int, per_call: int, num_rows: int, length: int,
                     pad_id: int) -> SampleResult:
  """One rollout as consecutive sampler calls of ``per_call`` prompts each (`chunk_prompts`).

  ``call(tokens [num_rows, length], mask, row_offset)`` starts one chunk (``row_offset``: the global
  number of its first row, so its rows draw the keys they would draw in a single call) and returns
  its device outputs; ``fetch`` brings them to the host. Every chunk is packed to the same
  [num_rows, length] (the last one with dummy prompts), so the chunks run one compiled program.
  Chunk k + 1 is dispatched before chunk k is fetched: the host's transfer and packing overlap the
  device's decoding, and at most two chunks' buffers are alive. Returns the rows of every chunk
  in order (dummy rows dropped), as one `SampleResult`; ``num_steps`` is the longest chunk's and
  ``call_steps`` lists every chunk's.
  """
  parts, pending = [], None
  for start in range(0, len(rows), per_call):
    chunk = rows[start:start + per_call]
    tokens, mask = pack_prompts(chunk, num_rows=num_rows, length=length, pad_id=pad_id)
    out = call(tokens, mask, np.uint32(start * num_samples))
    if pending is not None:
      parts.append(_real_rows(fetch(pending[1]), pending[0]))
    pending = (len(chunk) * num_samples, out)
  parts.append(_real_rows(fetch(pending[1]), pending[0]))
  fields = {k: np.concatenate([p[k] for p in parts])
            for k in ("tokens", "lengths", "logprobs", "finish_reason")}
  steps = tuple(int(p["num_steps"]) for p in parts)
  return SampleResult(**fields, num_samples=num_samples, num_steps=max(steps), call_steps=steps)


def _real_rows(out: dict, keep: int) -> dict:
  """A call's host outputs without its dummy prompts' samples (the trailing rows)."""
  return {k: (np.asarray(v) if k == "num_steps" else np.asarray(v)[:keep]) for k, v in out.items()}


@functools.lru_cache(maxsize=None)
def _compiled():
  """The jitted core, created lazily; jax.jit's own cache keys it on (graphdef, config, shapes)."""
  return jax.jit(sample_padded, static_argnames=("graphdef", "config"))


def generate(model, prompts: Sequence[Sequence[int]], *, max_new_tokens: int, num_samples: int = 1,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0, min_p: float = 0.0,
             eos_ids: Sequence[int] = (), seed: int = 0, pad_id: int = 0,
             max_len: int | None = None, decode_phases: int = 0, temperature_end: float | None = None,
             temperature_schedule: str = "constant", temperature_offset: int = 0,
             temperature_decay: float | None = None,
             max_rows_per_call: int | None = None) -> SampleResult:
  """Samples ``num_samples`` continuations of every prompt with ``model`` (a `Transformer`).

  ``prompts`` is a list of token-id lists of any lengths. Temperature 0 is greedy. Each prompt is
  prefilled once and its KV cache fanned out to its samples. ``max_len`` bounds prompt length plus
  ``max_new_tokens`` (default: the model's ``max_position_embeddings``). The same seed gives the
  same result; different samples of one prompt use different keys. ``decode_phases`` trades compile
  time for decode speed (`SamplerConfig`; 0 = auto). See `SampleResult` for fields.

  ``temperature_schedule`` ("constant", "linear" or "cosine") anneals the temperature over the new
  tokens, from ``temperature`` at token 0 to ``temperature_end`` (required, > 0, for a schedule) at
  token ``max_new_tokens - 1`` (`position_temperature`); the default "constant" (with
  ``temperature_end=None``) is the unscheduled sampler, same program and same results. "ead" anneals
  from ``temperature`` to the floor ``temperature_end`` with the decay ``temperature_decay`` after
  ``temperature_offset`` tokens at temperature 1 (`position_temperature`).

  ``max_rows_per_call`` (None or 0: no bound) bounds the rows (prompts x ``num_samples``) of one
  device call: a larger rollout runs as chunks of whole prompts (`chunk_prompts`,
  `sample_in_chunks`), with the same tokens as one call.
  """
  cfg = model.config
  config = SamplerConfig(max_new_tokens=max_new_tokens, num_samples=num_samples, temperature=temperature,
                         top_k=top_k, top_p=top_p, min_p=min_p, eos_ids=tuple(eos_ids), pad_id=pad_id,
                         decode_phases=decode_phases, temperature_end=temperature_end,
                         temperature_schedule=temperature_schedule,
                         temperature_offset=temperature_offset)
  decay = schedule_decay(config, temperature_decay)
  for name, value in [("pad_id", pad_id)] + [(f"eos_ids[{i}]", e) for i, e in enumerate(config.eos_ids)]:
    if not 0 <= value < cfg.vocab_size:
      raise ValueError(f"{name}={value} is outside the vocabulary [0, {cfg.vocab_size})")
  max_len = cfg.max_position_embeddings if max_len is None else int(max_len)
  rows = check_prompts(prompts, vocab_size=cfg.vocab_size, max_new_tokens=max_new_tokens, max_len=max_len)
  length = bucket_prompt_length(max(r.size for r in rows))
  graphdef, state = nnx.split(model)
  per_call = chunk_prompts(len(rows), num_samples, max_rows_per_call)
  if per_call is not None:
    def call(tokens, mask, offset):
      return _compiled()(graphdef, state, jnp.asarray(tokens), jnp.asarray(mask), jax.random.key(seed),
                         config, decay, offset)
    return sample_in_chunks(call, jax.device_get, rows, num_samples=num_samples, per_call=per_call,
                            num_rows=per_call, length=length, pad_id=pad_id)
  tokens, mask = pack_prompts(rows, num_rows=bucket_batch_size(len(rows)), length=length, pad_id=pad_id)
  out = _compiled()(graphdef, state, jnp.asarray(tokens), jnp.asarray(mask), jax.random.key(seed), config,
                    decay)
  keep = len(rows) * num_samples  # dummy prompts come last, so their samples are the trailing rows
  out = jax.device_get(out)
  return SampleResult(tokens=np.asarray(out["tokens"][:keep]), lengths=np.asarray(out["lengths"][:keep]),
                      logprobs=np.asarray(out["logprobs"][:keep]),
                      finish_reason=np.asarray(out["finish_reason"][:keep]), num_samples=num_samples,
                      num_steps=int(out["num_steps"]))
