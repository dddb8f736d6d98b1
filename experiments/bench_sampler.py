"""Rollout throughput: rlvr_jax.sampling vs transformers' generate vs tunix's vanilla sampler, one run.

One tiny Qwen2-architecture checkpoint (hidden 128, 4 layers, 4 heads, 2 kv heads, vocab 512, tied
embeddings: ~0.85M parameters) is written with ``save_pretrained`` and loaded by every engine, so all
sample from the same weights. Every engine samples at temperature 1 with no top-k / top-p and no stop
id (all rows generate exactly ``--new`` tokens), after a compile / warm-up call; the time of a call
includes moving the results to the host. Workloads: batch 8 and batch 64 of 16-token prompts, and a
GRPO-shaped call (8 prompts x G = 8 samples: rlvr_jax prefills each prompt once; transformers uses
``num_return_sequences``; tunix has no group option, so its prompts are repeated), once with 16-token
and once with 256-token prompts (where prefilling each prompt once, not G times, starts to show).

tunix runs in a subprocess with its own virtualenv (``--tunix-python``; default ``$TUNIX_PYTHON``,
else the one ``python -m experiments.peers setup tunix`` builds from pinned requirements) so its
pinned packages never touch ours. A requested peer that cannot run fails the benchmark with the
reason; ``--peers transformers`` leaves tunix out. Usage, from the repository root:

    python -m experiments.bench_sampler [--new 128] [--repeats 3] [--peers transformers,tunix]
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

ARCH = dict(vocab_size=512, hidden_size=128, intermediate_size=384, num_hidden_layers=4, num_attention_heads=4,
            num_key_value_heads=2, tie_word_embeddings=True, max_position_embeddings=1024, rope_theta=1e6)
# (name, number of distinct prompts, samples per prompt, prompt length)
WORKLOADS = [("batch 8", 8, 1, 16), ("batch 64", 64, 1, 16), ("GRPO 8 prompts x G=8", 8, 8, 16),
             ("GRPO 8 x G=8, 256-token prompts", 8, 8, 256)]


def make_prompts(num: int, length: int, seed: int) -> list[list[int]]:
  rng = np.random.RandomState(seed)
  return rng.randint(1, ARCH["vocab_size"], (num, length)).tolist()  # id 0 is the pad id


def best_time(fn, repeats: int) -> float:
  """Best wall time of ``repeats`` calls after one warm-up call (which compiles)."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return min(times)


# ------------------------------------------------------------------------------------------------
# Engines
# ------------------------------------------------------------------------------------------------


def write_checkpoint(path: pathlib.Path) -> int:
  import torch
  import transformers
  torch.manual_seed(0)
  model = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(**ARCH)).eval()
  model.save_pretrained(path)
  return sum(p.numel() for p in model.parameters())


def bench_rlvr(path, new: int, repeats: int) -> dict[str, float]:
  from rlvr_jax.models import load_hf
  from rlvr_jax.sampling import generate
  model, _ = load_hf(path)
  out = {}
  for name, p, g, tp in WORKLOADS:
    prompts = make_prompts(p, tp, seed=p)
    run = lambda: generate(model, prompts, max_new_tokens=new, num_samples=g, temperature=1.0, seed=1)
    result = run()
    assert (result.lengths == new).all()
    out[name] = p * g * new / best_time(run, repeats)
  return out


def bench_transformers(path, new: int, repeats: int) -> dict[str, float]:
  import torch
  import transformers
  transformers.utils.logging.set_verbosity_error()
  torch.set_num_threads(os.cpu_count() or 1)
  device = "cuda" if torch.cuda.is_available() else "cpu"  # on a GPU machine, compare GPU with GPU
  model = transformers.AutoModelForCausalLM.from_pretrained(path).eval().to(device)
  out = {}
  for name, p, g, tp in WORKLOADS:
    ids = torch.tensor(make_prompts(p, tp, seed=p), device=device)

    def run():
      with torch.no_grad():
        seqs = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                              temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new, min_new_tokens=new,
                              num_return_sequences=g, eos_token_id=None, pad_token_id=0)
      return seqs.cpu().numpy()  # the copy to the host also waits for the device

    assert run().shape == (p * g, tp + new)
    out[name] = p * g * new / best_time(run, repeats)
  return out


def bench_tunix(path, new: int, repeats: int, python: str) -> dict[str, float] | str:
  """Runs `_tunix_worker` under tunix's interpreter; returns tokens/s per workload or the reason."""
  if not pathlib.Path(python).exists():
    return f"not importable: no interpreter at {python} (pip install google-tunix into a separate venv)"
  cmd = [python, str(pathlib.Path(__file__).resolve()), "--tunix-worker", str(path), "--new", str(new),
         "--repeats", str(repeats)]
  proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
  if proc.returncode != 0:
    last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return f"not importable / failed: {last[:200]}"
  return json.loads(proc.stdout.strip().splitlines()[-1])


def _tunix_worker(path: str, new: int, repeats: int) -> None:
  """Runs inside tunix's virtualenv: imports only tunix, jax and numpy (rlvr_jax is not installed)."""
  import jax
  from tunix.generate import sampler as sampler_lib
  from tunix.models.qwen2 import model as qwen2_model
  from tunix.models.qwen2 import params as qwen2_params

  class IdTokenizer:
    """Prompts travel as space-separated token ids; there is no text tokenizer in this benchmark."""

    def encode(self, text, **_):
      return [int(t) for t in text.split()]

    def decode(self, ids, **_):
      return " ".join(map(str, ids))

    def bos_id(self):
      return 0  # falsy: tunix then prepends no BOS, so its prompts are the same ids

    def eos_id(self):
      return ARCH["vocab_size"]  # never sampled: no early stop, like the other engines

    def pad_id(self):
      return 0

  config = qwen2_model.ModelConfig(
      num_layers=ARCH["num_hidden_layers"], vocab_size=ARCH["vocab_size"], embed_dim=ARCH["hidden_size"],
      hidden_dim=ARCH["intermediate_size"], num_heads=ARCH["num_attention_heads"],
      head_dim=ARCH["hidden_size"] // ARCH["num_attention_heads"], num_kv_heads=ARCH["num_key_value_heads"],
      rope_theta=int(ARCH["rope_theta"]), norm_eps=1e-6, use_tied_embedding=True)
  model = qwen2_params.create_model_from_safe_tensors(path, config)
  out = {}
  for name, p, g, tp in WORKLOADS:
    cache = sampler_lib.CacheConfig(cache_size=tp + new, num_layers=config.num_layers,
                                    num_kv_heads=config.num_kv_heads, head_dim=config.head_dim)
    sampler = sampler_lib.Sampler(model, IdTokenizer(), cache)
    strings = [" ".join(map(str, x)) for x in make_prompts(p, tp, seed=p) for _ in range(g)]

    def run():
      res = sampler(strings, max_generation_steps=new, max_prompt_length=tp, temperature=1.0,
                    top_p=1.0, top_k=None, seed=1, eos_tokens=[ARCH["vocab_size"]])
      return jax.block_until_ready(res.tokens)

    assert all(len(t) == new for t in run())
    out[name] = p * g * new / best_time(run, repeats)
  print(json.dumps(out))


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------


def machine() -> str:
  cpu = platform.processor() or "cpu"
  try:
    for line in open("/proc/cpuinfo"):
      if line.startswith("model name"):
        cpu = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}"


def commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=pathlib.Path(__file__).parent).stdout.strip() or "unknown"
  except OSError:
    return "unknown"


def fmt(x) -> str:
  return f"{x:,.0f}" if isinstance(x, (int, float)) else "n/a"


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--new", type=int, default=128, help="new tokens per row")
  parser.add_argument("--repeats", type=int, default=3, help="timed calls per cell (best is reported)")
  parser.add_argument("--tunix-python", default=None, help="tunix's interpreter")
  parser.add_argument("--peers", default="transformers,tunix",
                      help="peers timed beside rlvr_jax (transformers runs in this environment)")
  parser.add_argument("--tunix-worker", metavar="CKPT", help=argparse.SUPPRESS)
  args = parser.parse_args()
  if args.tunix_worker:
    return _tunix_worker(args.tunix_worker, args.new, args.repeats)
  from experiments import peers  # pylint: disable=import-outside-toplevel  (not in the worker)
  wanted = [p.strip() for p in args.peers.split(",") if p.strip()]
  if set(wanted) - {"transformers", "tunix"}:
    parser.error(f"--peers {args.peers!r}: choose from transformers, tunix")
  tunix_python = args.tunix_python or peers.default_python("tunix")
  if "tunix" in wanted:
    try:
      peers.require("tunix", tunix_python)
    except peers.PeerError as e:
      parser.error(str(e))

  import jax
  import torch
  import transformers
  load_before = os.getloadavg()[0]
  with tempfile.TemporaryDirectory() as tmp:
    n_params = write_checkpoint(pathlib.Path(tmp))
    rows = {"rlvr_jax": bench_rlvr(tmp, args.new, args.repeats)}
    if "transformers" in wanted:
      rows["transformers"] = bench_transformers(tmp, args.new, args.repeats)
    if "tunix" in wanted:
      rows["tunix"] = bench_tunix(tmp, args.new, args.repeats, tunix_python)
  print(f"machine: {machine()}; load avg before/after: {load_before:.2f} / {os.getloadavg()[0]:.2f}")
  torch_device = "cuda" if torch.cuda.is_available() else "cpu"
  print(f"commit {commit()}; jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__} "
        f"({torch_device}), "
        f"transformers {transformers.__version__}; model {n_params / 1e6:.2f}M params; "
        f"{args.new} new tokens, temperature 1, best of {args.repeats}")
  tunix = rows.get("tunix")
  print("\n| workload | rows | rlvr_jax tok/s | transformers tok/s | tunix tok/s | rlvr_jax / transformers "
        "| rlvr_jax / tunix |")
  print("|---|---:|---:|---:|---:|---:|---:|")
  for name, p, g, _ in WORKLOADS:
    ours = rows["rlvr_jax"][name]
    hf = rows["transformers"][name] if "transformers" in rows else None
    tx = tunix.get(name) if isinstance(tunix, dict) else None
    ratio_hf = f"{ours / hf:.1f}x" if hf else "n/a"
    ratio_tx = f"{ours / tx:.1f}x" if tx else "n/a"
    print(f"| {name} | {p * g} | {fmt(ours)} | {fmt(hf)} | {fmt(tx)} | {ratio_hf} | {ratio_tx} |")
  if isinstance(tunix, str):  # requested, set up, yet it did not run: the benchmark fails
    sys.exit(f"benchmark failed: tunix: {tunix}")


if __name__ == "__main__":
  main()
