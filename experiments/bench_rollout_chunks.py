"""Rollout time with the rows of one sampler call bounded (``config.rollout.max_rows_per_call``).

One GRPO-shaped rollout (``--prompts`` prompts x ``--samples`` samples, ``--new`` new tokens) on the
quickstart's model shape (hidden 128, 4 layers, 4 heads, 2 kv heads, MLP 384; vocabulary 512, random
init), sampled in one call and in chunks of ``--rows`` rows, side by side in one process. Two
length profiles: "no stop" (every row runs to ``--new`` tokens: the cost of chunking alone) and
"stop ids" (``--stops`` ids end a row, about stops / 512 per token: rows of spread lengths, where a
chunk may stop before the longest row of the whole rollout). Each cell: the first call (compiles)
and the best of ``--repeats`` timed calls, which include the copy of the results to the host.

Columns: calls per rollout, decode steps run (summed over the calls), row utilisation (generated
tokens / (rows per call x steps): the share of the decode work spent on live rows; what continuous
refill of finished rows could recover is at most the rest), the KV cache of one call
(k and v, float32), and whether the tokens equal the one-call rollout's. Usage, from the repository
root:

    python -m experiments.bench_rollout_chunks [--prompts 64] [--samples 8] [--new 128]
                                              [--rows 256,128,64] [--repeats 3]
"""
from __future__ import annotations

import argparse
import datetime
import os
import time

import numpy as np
from flax import nnx

from experiments.bench_sampler import commit, machine
from rlvr_jax import sampling
from rlvr_jax.models import ModelConfig, Transformer

ARCH = dict(vocab_size=512, hidden_size=128, intermediate_size=384, num_layers=4, num_heads=4,
            num_kv_heads=2, head_dim=32, max_position_embeddings=1024)


def make_prompts(num: int, seed: int = 0) -> list[list[int]]:
  rng = np.random.default_rng(seed)  # 16 to 48 tokens, ids >= 64 (below: the stop ids)
  return [rng.integers(64, ARCH["vocab_size"], size=int(rng.integers(16, 49))).tolist()
          for _ in range(num)]


def cell(model, prompts, rows: int | None, *, samples: int, new: int, eos: tuple[int, ...],
         repeats: int) -> dict:
  """One chunk setting: first-call and best times, steps, utilisation, KV bytes, the result."""
  kw = dict(max_new_tokens=new, num_samples=samples, temperature=1.0, eos_ids=eos, seed=1)

  def call():
    return sampling.generate(model, prompts, max_rows_per_call=rows, **kw)

  start = time.perf_counter()
  out = call()
  first = time.perf_counter() - start
  best = min(_timed(call) for _ in range(repeats))
  per_call = sampling.chunk_prompts(len(prompts), samples, rows)
  if per_call is None:  # one call of the bucketed batch
    call_rows, steps = sampling.bucket_batch_size(len(prompts)) * samples, [out.num_steps]
  else:
    call_rows, steps = per_call * samples, list(out.call_steps)
  mc = model.config
  slots = sampling.bucket_prompt_length(max(len(p) for p in prompts)) - 1 + new
  kv = 2 * mc.num_layers * call_rows * mc.num_kv_heads * slots * mc.head_dim * 4
  tokens = int(out.lengths.sum())
  return dict(out=out, first=first, best=best, calls=len(steps), steps=sum(steps),
              call_rows=call_rows, util=tokens / (call_rows * sum(steps)), kv=kv, tokens=tokens)


def _timed(fn) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--prompts", type=int, default=64)
  parser.add_argument("--samples", type=int, default=8)
  parser.add_argument("--new", type=int, default=128, help="new tokens per row at most")
  parser.add_argument("--rows", default="256,128,64", help="rows per call to compare with one call")
  parser.add_argument("--stops", type=int, default=8, help="stop ids of the 'stop ids' profile")
  parser.add_argument("--repeats", type=int, default=3)
  args = parser.parse_args()
  model = Transformer(ModelConfig.tiny_qwen2(**ARCH), rngs=nnx.Rngs(0))
  prompts = make_prompts(args.prompts)
  settings = [None] + [int(r) for r in args.rows.split(",")]
  load = os.getloadavg()[0]
  lines, notes = [], []
  for profile, eos in (("no stop", ()), ("stop ids", tuple(range(1, 1 + args.stops)))):
    whole = None
    for rows in settings:
      c = cell(model, prompts, rows, samples=args.samples, new=args.new, eos=eos,
               repeats=args.repeats)
      if whole is None:
        whole = c
      same = all(np.array_equal(getattr(c["out"], f), getattr(whole["out"], f))
                 for f in ("tokens", "lengths", "finish_reason"))
      lines.append(f"| {profile} | {'one call' if rows is None else rows} | {c['call_rows']} | "
                   f"{c['calls']} | {c['steps']} | {c['util']:.2f} | {c['kv'] / 2**20:.1f} | "
                   f"{c['first']:.2f} | {c['best']:.2f} | {c['tokens'] / c['best']:,.0f} | "
                   f"{c['best'] / whole['best']:.2f} | {'yes' if same else 'no'} |")
      print(lines[-1], flush=True)
    mean = whole["tokens"] / (args.prompts * args.samples)
    full = float(np.mean(whole["out"].lengths == args.new))
    notes.append(f"{profile}: mean length {mean:.1f} of {args.new}, {full:.0%} of the rows reach "
                 "the limit")
  print(f"\n{args.prompts} prompts x G={args.samples}, up to {args.new} new tokens, quickstart "
        f"model shape (vocab 512, random init); {machine()}; "
        f"{datetime.date.today().isoformat()}, commit {commit()}, load average {load:.2f} before / "
        f"{os.getloadavg()[0]:.2f} after\n")
  print("| lengths | max rows per call | rows per call (padded) | calls | decode steps | row "
        "utilisation | KV cache MiB per call | first call s | best s | tok/s | time vs one call "
        "| same tokens |")
  print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
  print("\n".join(lines))
  print("\n" + "; ".join(notes) + ".")


if __name__ == "__main__":
  main()
