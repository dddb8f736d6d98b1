"""Rollout sampling for RLVR: prompt prefilled once, KV fanned out to G samples, on-device decode loop.

Contracts the RL trainer codes against:

- ``generate(model, prompts, *, max_new_tokens, num_samples=1, temperature=1.0, top_p=1.0, top_k=0,
  min_p=0.0, eos_ids=(), seed=0, pad_id=0, max_len=None, decode_phases=0, temperature_end=None,
  temperature_schedule="constant") -> SampleResult`` (host API, numpy out):
  ``tokens`` int32 [P*G, max_new_tokens] (samples of one prompt adjacent, ``pad_id`` after the end),
  ``lengths`` int32 [P*G] (a stop id, when emitted, is included in the length and in tokens),
  ``logprobs`` float32 [P*G, max_new_tokens] (under the sampling distribution; 0 after the end),
  ``finish_reason`` int8 [P*G] (``FINISH_STOP`` = 0, ``FINISH_LENGTH`` = 1), ``num_steps`` (decode
  steps run: fewer than max_new_tokens when every row stopped early).
- ``sample_padded(graphdef, state, prompt_tokens [P, Tp] int32 left padded, prompt_mask [P, Tp] bool,
  rng, config: SamplerConfig) -> dict`` of device arrays (the same fields plus ``num_steps``): the
  jittable core (static: graphdef, config). No host callbacks, no Python loop over tokens, no device
  count assumed; call it inside the trainer's ``jax.jit`` with params and batch sharded as you like.
- Host helpers: ``check_prompts`` (ValueError naming the row: empty prompt, id outside the vocabulary,
  prompt + max_new_tokens longer than the cache), ``bucket_prompt_length`` / ``bucket_batch_size``
  (powers of two) and ``pack_prompts`` (left padding, dummy rows to fill the batch bucket).
- Compiled programs are cached by ``jax.jit`` on (graphdef, config, bucketed shapes); ``TRACE_COUNTS``
  counts traces per config, so a test or the trainer can assert nothing recompiles.
- Temperature schedule (``SamplerConfig.temperature_schedule``, one of ``TEMPERATURE_SCHEDULES``):
  "constant" (default; ``temperature_end`` None) is the plain sampler, same compiled program and
  results; "linear" / "cosine" anneal from ``temperature`` at new token 0 to ``temperature_end`` (> 0)
  at token ``max_new_tokens - 1`` (``position_temperature(config, t)``, traced-t friendly); logprobs are
  under each position's own temperature (after the filters). A schedule with temperature 0 is an error.
  "ead" (Exploratory Annealed Decoding) falls from ``temperature`` to the floor ``temperature_end`` as
  ``1 + T0 - exp(t / d)``; its decay ``d`` is a run-time argument (``temperature_decay``), so a decay
  that changes every training step does not recompile.
- Randomness: row r at step t uses ``fold_in(fold_in(rng, t), r)``: deterministic per seed,
  independent of batch padding and sharding; the G samples of a prompt get different keys.
- Chunks: ``generate(..., max_rows_per_call=R)`` runs a rollout of more than R rows as calls of
  whole prompts (``chunk_prompts``, ``sample_in_chunks``), all of one shape (the last chunk padded),
  each passing ``sample_padded`` its first row's global number (``row_offset``) so that every row
  draws the keys it would draw in one call. Without a bound, or when one call fits, the program is
  the one of before.

Memory: the decode cache holds P*G rows (R with chunks) of Tp_bucket + max_new_tokens - 1 slots; the prompt KV is
computed at batch P and repeated to the G rows (the saving is the prefill compute). See sampler.py
for why the prompt KV is not kept at P rows.

Files: processing.py (temperature / top-k / top-p / min-p, per-row keys, Gumbel-max draw), sampler.py
(`SamplerConfig`, `prefill`, `sample_padded`), host.py (validation, bucketing, packing, `generate`).
"""
from rlvr_jax.sampling.host import (SampleResult, bucket_batch_size, bucket_prompt_length, check_prompts, chunk_prompts,
                                    generate, pack_prompts, sample_in_chunks, schedule_decay)
from rlvr_jax.sampling.processing import candidate_logits, gumbel_argmax, row_keys, sample_tokens
from rlvr_jax.sampling.sampler import (FINISH_LENGTH, FINISH_STOP, TEMPERATURE_SCHEDULES, TRACE_COUNTS, SamplerConfig,
                                       phase_ends, position_temperature, prefill, sample_padded)

__all__ = ["generate", "SampleResult", "SamplerConfig", "sample_padded", "prefill", "FINISH_STOP",
           "FINISH_LENGTH", "TRACE_COUNTS", "check_prompts", "bucket_prompt_length", "bucket_batch_size",
           "pack_prompts", "candidate_logits", "gumbel_argmax", "row_keys", "sample_tokens", "phase_ends",
           "position_temperature", "TEMPERATURE_SCHEDULES", "schedule_decay", "chunk_prompts",
           "sample_in_chunks"]
