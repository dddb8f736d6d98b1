"""Benchmark of rlvr_jax.kernels.logprob: reference (materialised) vs xla (tiled) vs pallas.

Prints one table: for each N, implementation and pass (forward, forward+backward), the compiled
executable's memory analysis (temporary bytes; peak = arguments + outputs + temporaries), the
measured peak memory of the run, and its time. Every (N, implementation, pass) runs in its own
subprocess so that measured peaks do not leak between rows:

* CPU: measured = the process's peak RSS during the timed runs (``VmHWM``, reset through
  ``/proc/self/clear_refs`` after compilation) minus its RSS once the inputs exist and it compiled.
* GPU/TPU: measured = ``peak_bytes_in_use`` of the device minus the bytes in use once inputs exist.

A configuration whose compiled peak does not fit in the free host memory is not run (its memory
still comes from the analysis). A last section times the GRPO/DAPO loss epilogue on top of the op
(issue 6, item 2). Usage, from the repository root:

    python -m experiments.bench_logprob                          # N = 4096 and 16384, D=1536, V=151936
    python -m experiments.bench_logprob --tokens 1024 --dim 256  # quick look
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

FWD, FWDBWD = "fwd", "fwd+bwd"


# ------------------------------------------------------------------------------- worker side


def _status_bytes(field: str) -> int:
  with open("/proc/self/status") as f:
    for line in f:
      if line.startswith(field + ":"):
        return int(line.split()[1]) * 1024
  raise KeyError(field)


def _reset_peak_rss() -> None:
  # Writing 5 resets VmHWM to the current RSS (Linux >= 4.0), so compile-time memory is not counted.
  with open("/proc/self/clear_refs", "w") as f:
    f.write("5")


def _device_bytes(stat: str) -> int | None:
  import jax
  stats = jax.devices()[0].memory_stats()
  return None if not stats else stats.get(stat)


def grpo_epilogue(logp, entropy, old_logp, ref_logp, advantages, mask, *, clip_low=0.2,
                  clip_high=0.28, kl_coef=0.04, entropy_coef=1e-3):
  """Token-mean clipped PG + k3 KL + entropy bonus (GRPO / DAPO, docs/papers.md 2.1); a stand-in
  for the trainer."""
  import jax.numpy as jnp
  ratio = jnp.exp(logp - old_logp)
  clipped = jnp.clip(ratio, 1.0 - clip_low, 1.0 + clip_high)
  pg = -jnp.minimum(ratio * advantages, clipped * advantages)
  log_ratio_ref = ref_logp - logp
  kl = jnp.exp(log_ratio_ref) - log_ratio_ref - 1.0
  per_token = pg + kl_coef * kl - entropy_coef * entropy
  return jnp.sum(per_token * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def parse_impl(impl: str):
  """``name`` (an API request: reference, xla, pallas, or None) or an xla variant.

  Variants: ``xla@4096x8192`` (tile sizes), ``xla-f32grad`` / ``xla-f32grad@BTxBV`` (the backward's
  logit-gradient tile kept float32, i.e. the behaviour before bf16 gradient operands).
  Returns (api request or None, xla keyword arguments or None).
  """
  name, _, tiles = impl.partition("@")
  if name not in ("xla", "xla-f32grad"):
    if tiles:
      raise ValueError(f"tile sizes only apply to xla variants, got {impl!r}")
    return (None if name == "none" else name), None
  kwargs = {"low_precision_grads": name == "xla"}
  if tiles:
    bt, bv = (int(x) for x in tiles.split("x"))
    kwargs.update(block_tokens=bt, block_vocab=bv)
  return None, kwargs


def _build(impl: str, mode: str, temperature: float):
  """The jitted function for one row, and how to call it from (hidden, weight, targets, aux)."""
  import jax
  import jax.numpy as jnp
  from rlvr_jax.kernels import logprob
  from rlvr_jax.kernels.logprob import xla as xla_impl

  request, xla_kwargs = parse_impl(impl)

  def op(h, w, t):
    if xla_kwargs is not None:
      return xla_impl.logprob_xla(h, w, t, temperature, **xla_kwargs)
    return logprob(h, w, t, temperature=temperature, implementation=request)

  if mode == FWD:
    return jax.jit(op)
  if mode == FWDBWD:
    def loss(h, w, t, aux):
      logp, ent = op(h, w, t)
      return jnp.sum(aux[0] * logp + aux[1] * ent)
  elif mode == "fwd+bwd+epilogue":
    def loss(h, w, t, aux):
      logp, ent = op(h, w, t)
      return grpo_epilogue(logp, ent, aux[0], aux[1], aux[2], aux[3])
  else:
    raise ValueError(f"unknown mode {mode!r}")
  return jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))


def matmul_rate(size: int = 8192, dtype: str = "bfloat16", reps: int = 10) -> float:
  """FLOP/s of one jitted [size, size] x [size, size] matmul (best of ``reps``): the same-run peer."""
  import jax
  import jax.numpy as jnp
  k1, k2 = jax.random.split(jax.random.key(0))
  a = jax.random.normal(k1, (size, size), jnp.float32).astype(dtype)
  b = jax.random.normal(k2, (size, size), jnp.float32).astype(dtype)
  fn = jax.jit(lambda x, y: jnp.dot(x, y, preferred_element_type=jnp.float32))
  jax.block_until_ready(fn(a, b))
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(a, b))
    best = min(best, time.perf_counter() - t0)
  return 2 * size ** 3 / best


def model_flops(mode: str, num_tokens: int, dim: int, vocab: int) -> int:
  """Matmul FLOPs counted as Liger does: 2NDV forward, 8NDV forward + backward (recompute included)."""
  return (2 if mode == FWD else 8) * num_tokens * dim * vocab


def worker(impl: str, mode: str, num_tokens: int, dim: int, vocab: int, dtype: str,
           warmup: int, reps: int, temperature: float, free_bytes: int) -> dict:
  import jax
  import jax.numpy as jnp
  keys = jax.random.split(jax.random.key(0), 4)
  hidden = jax.random.normal(keys[0], (num_tokens, dim), jnp.float32).astype(dtype)
  weight = (jax.random.normal(keys[1], (dim, vocab), jnp.float32) * dim ** -0.5).astype(dtype)
  targets = jax.random.randint(keys[2], (num_tokens,), 0, vocab)
  aux = jnp.stack([-jnp.abs(jax.random.normal(keys[3], (num_tokens,))) - 8.0] * 2
                  + [jax.random.normal(keys[3], (num_tokens,)), jnp.ones((num_tokens,))])
  args = (hidden, weight, targets) if mode == FWD else (hidden, weight, targets, aux)
  jax.block_until_ready(args)

  fn = _build(impl, mode, temperature)
  t0 = time.perf_counter()
  compiled = fn.lower(*args).compile()
  row = {"impl": impl, "mode": mode, "N": num_tokens, "compile_s": time.perf_counter() - t0}
  analysis = compiled.memory_analysis()
  row["temp_bytes"] = analysis.temp_size_in_bytes
  row["peak_bytes"] = (analysis.argument_size_in_bytes + analysis.output_size_in_bytes
                       + analysis.temp_size_in_bytes - analysis.alias_size_in_bytes)
  need = analysis.temp_size_in_bytes + analysis.output_size_in_bytes
  if jax.default_backend() == "cpu" and need > 0.8 * free_bytes:
    row["skipped"] = (f"needs {need / 2**30:.1f} GiB beyond its inputs, "
                      f"{free_bytes / 2**30:.1f} GiB free")
    return row

  if jax.default_backend() == "cpu":
    _reset_peak_rss()
    base = _status_bytes("VmRSS")
  else:
    base = _device_bytes("bytes_in_use")
    # Device peaks cannot be reset: a peak set while making the inputs hides any smaller one.
    peak_before = _device_bytes("peak_bytes_in_use")
  times = []
  for i in range(warmup + reps):
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))
    if i >= warmup:
      times.append(time.perf_counter() - t0)
  row["time_s"] = min(times)
  row["tflops"] = model_flops(mode, num_tokens, hidden.shape[1], weight.shape[1]) / row["time_s"] / 1e12
  if jax.default_backend() == "cpu":
    row["measured_bytes"] = _status_bytes("VmHWM") - base
  else:
    peak = _device_bytes("peak_bytes_in_use")
    grew = peak is not None and base is not None and peak_before is not None and peak > peak_before
    row["measured_bytes"] = peak - base if grew else None  # None: below the input-making peak
  return row


# ------------------------------------------------------------------------------- driver side


def _free_bytes() -> int:
  with open("/proc/meminfo") as f:
    info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f}
  return info["MemAvailable"]


def _run_row(args, impl, mode, num_tokens) -> dict:
  warmup = args.warmup if args.warmup is not None else (1 if num_tokens <= 4096 else 0)
  reps = args.reps if args.reps is not None else (2 if num_tokens <= 4096 else 1)
  cmd = [sys.executable, "-m", "experiments.bench_logprob", "--worker",
         json.dumps([impl, mode, num_tokens, args.dim, args.vocab, args.dtype, warmup, reps,
                     args.temperature, _free_bytes()])]
  proc = subprocess.run(cmd, capture_output=True, text=True)
  lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
  if proc.returncode != 0 or not lines:
    return {"impl": impl, "mode": mode, "N": num_tokens,
            "skipped": f"worker failed (rc={proc.returncode}): {proc.stderr.strip()[-300:]}"}
  return json.loads(lines[-1])


def _time_epilogue_alone(num_tokens: int, reps: int = 200) -> float:
  """Seconds per fwd+bwd of the GRPO/DAPO epilogue given logp and entropy: the most fusion could save."""
  import jax
  import jax.numpy as jnp
  k = jax.random.split(jax.random.key(1), 4)
  vecs = [-jnp.abs(jax.random.normal(k[i], (num_tokens,))) - 8.0 for i in range(3)]
  adv, mask = jax.random.normal(k[3], (num_tokens,)), jnp.ones((num_tokens,))
  fn = jax.jit(jax.value_and_grad(
      lambda lp, ent: grpo_epilogue(lp, ent, vecs[2], vecs[2] + 0.1, adv, mask), argnums=(0, 1)))
  jax.block_until_ready(fn(vecs[0], vecs[1]))
  best = float("inf")
  for _ in range(reps):
    t0 = time.perf_counter()
    jax.block_until_ready(fn(vecs[0], vecs[1]))
    best = min(best, time.perf_counter() - t0)
  return best


def _gib(x):
  return "-" if x is None else f"{x / 2**30:.3f}"


def _print_table(rows, matmul_tflops=None):
  ref = {(r["N"], r["mode"]): r for r in rows if r["impl"] == "reference"}
  header = ("| N | impl | pass | temp GiB (analysis) | peak GiB (analysis) | measured GiB | "
            "temp vs ref | time s | time vs ref | TFLOP/s | vs matmul |")
  print(header)
  print("|---" * 11 + "|")
  for r in rows:
    base = ref.get((r["N"], r["mode"]))
    temp_ratio = (f"{100 * r['temp_bytes'] / base['temp_bytes']:.2f}%"
                  if base and r["impl"] != "reference" and "temp_bytes" in r else "")
    time_ratio = (f"{r['time_s'] / base['time_s']:.2f}x"
                  if base and "time_s" in r and "time_s" in base and r["impl"] != "reference" else "")
    time_s = f"{r['time_s']:.2f}" if "time_s" in r else f"not run: {r.get('skipped', '?')}"
    rate = f"{r['tflops']:.1f}" if "tflops" in r else ""
    share = f"{100 * r['tflops'] / matmul_tflops:.0f}%" if rate and matmul_tflops else ""
    time_s = f"{1e3 * r['time_s']:.1f} ms" if "time_s" in r and r["time_s"] < 1 else time_s
    print(f"| {r['N']} | {r['impl']} | {r['mode']} | {_gib(r.get('temp_bytes'))} | "
          f"{_gib(r.get('peak_bytes'))} | {_gib(r.get('measured_bytes'))} | {temp_ratio} | "
          f"{time_s} | {time_ratio} | {rate} | {share} |")


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--worker", help=argparse.SUPPRESS)
  parser.add_argument("--worker-matmul", type=int, help=argparse.SUPPRESS)
  parser.add_argument("--tokens", type=int, nargs="+", default=[4096, 16384])
  parser.add_argument("--dim", type=int, default=1536)
  parser.add_argument("--vocab", type=int, default=151_936)
  parser.add_argument("--dtype", default="float32", help="float32 (fastest on CPU) or bfloat16")
  parser.add_argument("--temperature", type=float, default=0.7)
  parser.add_argument("--impls", nargs="+", default=None,
                      help="default: reference xla, plus pallas on GPU/TPU; xla variants: "
                      "xla@BTxBV (tiles), xla-f32grad[@BTxBV] (float32 gradient operands)")
  parser.add_argument("--modes", nargs="+", default=[FWD, FWDBWD], choices=[FWD, FWDBWD])
  parser.add_argument("--matmul", type=int, default=None, help="size of the same-run bf16 matmul "
                      "peer (default 8192 on GPU/TPU, 0 = skip; skipped on CPU)")
  parser.add_argument("--warmup", type=int, default=None, help="default 1 (N<=4096) else 0")
  parser.add_argument("--reps", type=int, default=None, help="timed runs, min reported; "
                      "default 2 (N<=4096) else 1")
  parser.add_argument("--epilogue-tokens", type=int, default=4096,
                      help="N for the loss-epilogue comparison (0 to skip)")
  args = parser.parse_args(argv)
  if args.worker:
    print(json.dumps(worker(*json.loads(args.worker))), flush=True)
    return
  if args.worker_matmul:
    print(matmul_rate(args.worker_matmul), flush=True)
    return

  import jax
  backend = jax.default_backend()
  impls = args.impls or (["reference", "xla"] + (["pallas"] if backend in ("gpu", "tpu") else []))
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
  print(f"# bench_logprob: backend={backend} device={jax.devices()[0].device_kind} "
        f"cpus={os.cpu_count()} jax={jax.__version__} commit={commit} "
        f"date={time.strftime('%Y-%m-%d')} D={args.dim} V={args.vocab} dtype={args.dtype} "
        f"T={args.temperature}", flush=True)
  matmul_size = args.matmul if args.matmul is not None else (0 if backend == "cpu" else 8192)
  matmul_tflops = None
  if matmul_size:  # in its own process, like every row (the driver holds no device memory)
    proc = subprocess.run([sys.executable, "-m", "experiments.bench_logprob", "--worker-matmul",
                           str(matmul_size)], capture_output=True, text=True)
    lines = [l for l in proc.stdout.splitlines() if l.strip()]
    matmul_tflops = float(lines[-1]) / 1e12 if proc.returncode == 0 and lines else None
  if matmul_tflops:
    print(f"# same-run bf16 matmul {matmul_size}^3: {matmul_tflops:.1f} TFLOP/s", flush=True)
  rows = []
  for num_tokens in args.tokens:
    for impl in impls:
      for mode in args.modes:
        rows.append(_run_row(args, impl, mode, num_tokens))
        print("#", json.dumps(rows[-1]), flush=True)
  epilogue = []
  if args.epilogue_tokens:
    for mode in (FWDBWD, "fwd+bwd+epilogue"):
      epilogue.append(_run_row(args, "xla", mode, args.epilogue_tokens))
      print("#", json.dumps(epilogue[-1]), flush=True)
  print()
  _print_table(rows, matmul_tflops)
  if args.epilogue_tokens:
    print(f"\nLoss epilogue alone (fwd+bwd on [N] vectors, N={args.epilogue_tokens}): "
          f"{1e6 * _time_epilogue_alone(args.epilogue_tokens):.0f} us")
  if len(epilogue) == 2 and all("time_s" in r for r in epilogue):
    plain, fused = epilogue
    print(f"\nLoss epilogue (xla, N={args.epilogue_tokens}): fwd+bwd of sum(c1*logp + c2*H) "
          f"{plain['time_s']:.2f} s, temp {_gib(plain['temp_bytes'])} GiB; with the GRPO/DAPO "
          f"epilogue (ratio, clip, k3 KL, entropy, token-mean) {fused['time_s']:.2f} s, temp "
          f"{_gib(fused['temp_bytes'])} GiB: delta {fused['time_s'] - plain['time_s']:+.2f} s, "
          f"{(fused['temp_bytes'] - plain['temp_bytes']) / 2**20:+.3f} MiB")


if __name__ == "__main__":
  main()
