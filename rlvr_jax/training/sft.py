"""Supervised warm start before RL (the "SFT" stage of R1-style pipelines, here tiny and local).

Trains on (prompt, target) pairs made from the task source: the prompt is the run's templated
question, the target ``config.sft.target`` formatted with the example (default ``"{answer}"``) plus
the tokenizer's end-of-sequence token. The result is cached in ``<workdir>/sft/`` (orbax), so a
resumed or repeated run with the same workdir skips it.
"""
from __future__ import annotations

import os
import time
from typing import Any, Callable, Mapping

import jax
import numpy as np
import orbax.checkpoint as ocp
from absl import logging
from flax import nnx

from rlvr_jax import data as data_lib
from rlvr_jax.parallel import multihost
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import builders, step as step_lib


def format_target(template: str, example: Mapping[str, Any]) -> str:
  try:
    return template.format(**example)
  except (KeyError, IndexError) as e:
    raise ValueError(f"config.sft.target={template!r} needs field {e} that example "
                     f"{example.get('id')!r} does not have (fields: {sorted(example)})") from None


def warm_start(params: nnx.State, *, graphdef: nnx.GraphDef, cfg: Any, source: Any, tokenizer: Any,
               prompt_fn: Callable[[Mapping], list[int]], workdir: str, seed: int,
               logprob_impl: str | None, put_batch: Callable[[dict], dict],
               param_shardings: Any = None, replicated: Any = None,
               log: Callable[[str], None] = print) -> tuple[nnx.State, dict]:
  """Runs ``cfg.steps`` supervised steps (or restores the cached result). Returns (params, info)."""
  directory = os.path.abspath(os.path.join(workdir, "sft"))
  checkpointer = ocp.StandardCheckpointer()
  done = os.path.join(directory, "params")
  if os.path.isdir(done):
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
                            params)
    restored = checkpointer.restore(done, abstract)
    log(f"sft: reusing warm start from {done}")
    return restored, {"cached": True}

  steps = int(cfg.steps)
  tx = builders.build_optimizer(cfg.optim, steps)
  opt_shardings = (None if param_shardings is None else
                   step_lib.state_shardings(params, param_shardings, tx, replicated))
  opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(params)
  update = step_lib.jit_update(step_lib.sft_update, param_shardings=param_shardings,
                               opt_shardings=opt_shardings)
  # Each process reads 1/S of the batch; the gathered global batch is the one a single process reads.
  if int(cfg.batch_size) % jax.process_count():
    raise ValueError(f"config.sft.batch_size={cfg.batch_size} must be a multiple of the number of "
                     f"processes ({jax.process_count()})")
  it = data_lib.make_prompt_iterator(source, batch_size=int(cfg.batch_size) // jax.process_count(),
                                     seed=seed + 1, shard_index=jax.process_index(),
                                     shard_count=jax.process_count())
  eos = list(tokenizer.eos_ids[:1])
  micro = int(cfg.get("micro_batch_size", 0) or cfg.batch_size)
  if int(cfg.batch_size) % micro:
    raise ValueError(f"config.sft.batch_size={cfg.batch_size} is not a multiple of "
                     f"config.sft.micro_batch_size={micro}")
  t0 = time.time()
  losses = []
  for i in range(steps):
    examples = next(it)
    prompts = [prompt_fn(ex) for ex in examples]
    targets = [tokenizer.encode(format_target(cfg.target, ex)) + eos for ex in examples]
    if jax.process_count() > 1:
      pairs = multihost.gather_rows([[p, t] for p, t in zip(prompts, targets)])
      prompts, targets = [p for p, _ in pairs], [t for _, t in pairs]
    batch = batch_lib.supervised_batch(
        prompts, targets, pad_id=tokenizer.pad_id,
        prompt_len=batch_lib.bucket(max(map(len, prompts))),
        response_len=batch_lib.bucket(max(map(len, targets)), multiple=8))
    params, opt_state, metrics = update(
        params, opt_state, put_batch(batch), graphdef=graphdef, tx=tx, impl=logprob_impl,
        num_micro=int(cfg.batch_size) // micro)
    if (i + 1) % int(cfg.get("log_every", 50)) == 0 or i + 1 == steps:
      loss = float(metrics["loss"])
      losses.append(loss)
      log(f"sft step {i + 1}/{steps} | loss {loss:.4f} | {time.time() - t0:.1f}s")
  # Block before saving so the timing covers the work, then write atomically.
  params = jax.block_until_ready(params)
  elapsed = time.time() - t0
  checkpointer.save(done, params)
  checkpointer.wait_until_finished()
  return params, {"cached": False, "steps": steps, "time_s": elapsed,
                  "final_loss": losses[-1] if losses else float("nan")}
