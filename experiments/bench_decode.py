"""Decode throughput of rlvr_jax.sampling at real size, against the HBM-bandwidth floor (issue 18).

A random-weight model of a preset (default Qwen2.5-0.5B, bfloat16 weights and compute) samples 256
new tokens for every row, with no stop id, in two workloads: the GRPO shape (64 prompts x G = 8 = 512
rows, 128-token prompts; each prompt is prefilled once and its KV fanned out) and batch 8. For each:

* tokens/s and ms per decode step of a steady call (best of ``--repeats`` after the first call), and
  the first call's extra time (compilation) as ``compile s``;
* the bandwidth floor: bytes a decode step must read at least (every weight once, plus each row's KV
  cache up to its current length, averaged over the steps) divided by the device-copy bandwidth
  measured in the same run; ``% of floor`` = floor time / measured step time;
* where the step time goes, each part jitted alone at the batch's row count and the mean cache
  length: one ``Transformer.decode`` step (all layers, attention over the cache, lm head), the
  lm-head matmul alone, and ``sample_tokens`` over [rows, V] float32 logits. The rest of a loop
  step (cache updates, bookkeeping, loop overhead) is the difference;
* transformers' ``generate`` on the same shapes (random weights of the same architecture, bfloat16,
  CUDA when torch sees one) as the same-run peer, unless ``--no-peer``.

Usage, from the repository root:

    python -m experiments.bench_decode                         # Qwen2.5-0.5B shapes (a GPU run)
    python -m experiments.bench_decode --preset tiny --new 16  # a CPU smoke run
"""
from __future__ import annotations

import argparse
import functools
import json
import subprocess
import time

import numpy as np

# (name, distinct prompts, samples per prompt)
WORKLOADS = (("GRPO 64 prompts x G=8", 64, 8), ("batch 8", 8, 1))


def model_config(preset: str):
  from rlvr_jax.models import ModelConfig
  if preset == "tiny":
    return ModelConfig.tiny_qwen2(vocab_size=4096).replace(dtype="bfloat16", param_dtype="bfloat16")
  return getattr(ModelConfig, preset)().replace(dtype="bfloat16", param_dtype="bfloat16")


def kv_bytes_per_token(config) -> int:
  return config.num_layers * 2 * config.num_kv_heads * config.head_dim * 2  # k and v, bf16


def floor_bytes_per_step(config, rows: int, prompt_len: int, new: int) -> float:
  """Weights once + every row's KV up to its length, averaged over the ``new`` steps."""
  weights = config.num_params * 2
  mean_len = prompt_len + (new - 1) / 2
  return weights + rows * mean_len * kv_bytes_per_token(config)


def best_of(fn, repeats: int) -> float:
  best = float("inf")
  for _ in range(repeats):
    t0 = time.perf_counter()
    fn()
    best = min(best, time.perf_counter() - t0)
  return best


def copy_bandwidth(num_bytes: int = 2 << 30) -> float:
  """Bytes/s of a device copy (read + write) of a ``num_bytes`` bf16 array."""
  import jax
  import jax.numpy as jnp
  x = jnp.ones((num_bytes // 2,), jnp.bfloat16)
  fn = jax.jit(lambda a: a + jnp.bfloat16(1))
  jax.block_until_ready(fn(x))
  return 2 * num_bytes / best_of(lambda: jax.block_until_ready(fn(x)), 10)


def component_times(model, rows: int, cache_len: int, repeats: int) -> dict[str, float]:
  """Seconds of one decode step's parts at ``rows`` rows and a cache of ``cache_len`` slots."""
  import jax
  import jax.numpy as jnp
  from flax import nnx
  from rlvr_jax.sampling.processing import row_keys, sample_tokens
  config = model.config
  graphdef, state = nnx.split(model)
  cache = model.init_cache(rows, cache_len)
  tokens = jnp.ones((rows, 1), jnp.int32)
  positions = jnp.full((rows, 1), cache_len // 2, jnp.int32)
  kv_mask = jnp.ones((rows, cache_len), bool)

  # The cache is donated and fed back, as in the sampler's loop: without donation every call would
  # copy the whole cache to update one slot (a first GPU run timed that copy, 7.7 ms at 512 rows).
  @functools.partial(jax.jit, donate_argnums=1)
  def step(state, cache, tokens):
    m = nnx.merge(graphdef, state)
    return m.decode(tokens, positions=positions, cache=cache, cache_index=jnp.int32(cache_len // 2),
                    kv_mask=kv_mask)

  @jax.jit
  def head(state, hidden):
    return nnx.merge(graphdef, state).logits_from_hidden(hidden)

  @jax.jit
  def sample(logits, t):
    return sample_tokens(logits, row_keys(jax.random.key(0), t, rows), temperature=1.0, top_k=0,
                         top_p=1.0, min_p=0.0)

  hidden = jnp.ones((rows, 1, config.hidden_size), config.dtype)
  logits = jax.random.normal(jax.random.key(1), (rows, config.vocab_size), jnp.float32)
  carry = {"cache": cache}

  def decode_step():
    logits, carry["cache"] = step(state, carry["cache"], tokens)
    return logits

  out = {}
  for name, fn in (("decode step (model)", decode_step),
                   ("lm head alone", lambda: head(state, hidden)),
                   ("sampling over V", lambda: sample(logits, jnp.int32(3)))):
    jax.block_until_ready(fn())
    out[name] = best_of(lambda: jax.block_until_ready(fn()), repeats)
  return out


def lm_head_variants(model, rows: int, repeats: int) -> dict[str, float]:
  """Seconds of the [rows, D] x [D, V] unembedding in three forms (which one the decode loop should use)."""
  import jax
  import jax.numpy as jnp
  config = model.config
  hidden = jax.random.normal(jax.random.key(2), (rows, 1, config.hidden_size)).astype(config.dtype)
  embed = model.embed[...]  # [V, D]
  forms = {
      "einsum BTD,DV (transposed embed)": lambda h, e: jnp.einsum(
          "BTD,DV->BTV", h, e.T, preferred_element_type=jnp.float32),
      "einsum BTD,VD (embed as stored)": lambda h, e: jnp.einsum(
          "BTD,VD->BTV", h, e, preferred_element_type=jnp.float32),
      "bf16 product, f32 cast": lambda h, e: jnp.einsum("BTD,VD->BTV", h, e).astype(jnp.float32),
  }
  out = {}
  for name, form in forms.items():
    fn = jax.jit(form)
    jax.block_until_ready(fn(hidden, embed))
    out[name] = best_of(lambda: jax.block_until_ready(fn(hidden, embed)), repeats)
  return out


def bench_rlvr(config, prompt_len: int, new: int, repeats: int, components: bool) -> list[dict]:
  from flax import nnx
  from rlvr_jax.models import Transformer
  from rlvr_jax.sampling import generate
  model = Transformer(config, rngs=nnx.Rngs(0))
  rows_out = []
  for name, p, g in WORKLOADS:
    rng = np.random.RandomState(p)
    prompts = rng.randint(1, config.vocab_size, (p, prompt_len)).tolist()
    run = lambda: generate(model, prompts, max_new_tokens=new, num_samples=g, temperature=1.0, seed=1)
    t0 = time.perf_counter()
    first = run()
    first_s = time.perf_counter() - t0
    assert (first.lengths == new).all(), "every row must generate --new tokens (no stop id)"
    steady = best_of(run, repeats)
    rows = p * g
    row = dict(workload=name, rows=rows, tokens_per_s=rows * new / steady, call_s=steady,
               step_ms=1e3 * steady / new, compile_s=first_s - steady,
               floor_bytes=floor_bytes_per_step(config, rows, prompt_len, new))
    if components:
      row["parts_s"] = component_times(model, rows, prompt_len + new, max(3, repeats))
    rows_out.append(row)
    print("#", json.dumps(row), flush=True)
  return rows_out


def bench_transformers(config, prompt_len: int, new: int, repeats: int) -> dict[str, float] | str:
  try:
    import torch
    import transformers
  except ImportError as err:
    return f"not importable: {err}"
  transformers.utils.logging.set_verbosity_error()
  device = "cuda" if torch.cuda.is_available() else "cpu"
  hf = transformers.Qwen2Config(**config.to_hf_dict()) if config.family == "qwen2" else None
  if hf is None:
    return f"no transformers peer for family {config.family}"
  torch.manual_seed(0)
  with torch.device(device):
    model = transformers.Qwen2ForCausalLM(hf).to(torch.bfloat16).eval()
  out = {}
  for name, p, g in WORKLOADS:
    rng = np.random.RandomState(p)
    ids = torch.tensor(rng.randint(1, config.vocab_size, (p, prompt_len)), device=device)

    def run():
      with torch.no_grad():
        seqs = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=True,
                              temperature=1.0, top_k=0, top_p=1.0, max_new_tokens=new,
                              min_new_tokens=new, num_return_sequences=g, eos_token_id=None,
                              pad_token_id=0)
      return seqs.cpu().numpy()

    assert run().shape == (p * g, prompt_len + new)
    out[name] = p * g * new / best_of(run, repeats)
  return out


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="qwen2p5_0p5b", help="a ModelConfig preset, or 'tiny'")
  parser.add_argument("--prompt-len", type=int, default=128)
  parser.add_argument("--new", type=int, default=256)
  parser.add_argument("--repeats", type=int, default=3)
  parser.add_argument("--peer-repeats", type=int, default=1)
  parser.add_argument("--no-peer", action="store_true")
  parser.add_argument("--no-components", action="store_true")
  parser.add_argument("--json", help="also write the rows here")
  parser.add_argument("--lm-head-only", action="store_true", help="time the unembedding forms and stop")
  args = parser.parse_args(argv)

  import jax
  config = model_config(args.preset)
  commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
  bandwidth = copy_bandwidth(2 << 30 if jax.default_backend() != "cpu" else 64 << 20)
  print(f"# bench_decode: preset={args.preset} ({config.num_params / 1e6:.0f}M params, bf16) "
        f"device={jax.devices()[0].device_kind} jax={jax.__version__} commit={commit} "
        f"date={time.strftime('%Y-%m-%d')} prompt_len={args.prompt_len} new={args.new} "
        f"copy bandwidth {bandwidth / 1e12:.2f} TB/s", flush=True)
  if args.lm_head_only:
    from flax import nnx
    from rlvr_jax.models import Transformer
    model = Transformer(config, rngs=nnx.Rngs(0))
    for rows in (8, 512):
      times = lm_head_variants(model, rows, 20)
      print(f"lm head at {rows} rows: " + ", ".join(f"{k} {1e3 * v:.3f} ms" for k, v in times.items()),
            flush=True)
    return
  rows = bench_rlvr(config, args.prompt_len, args.new, args.repeats, not args.no_components)
  peer = "skipped (--no-peer)" if args.no_peer else bench_transformers(
      config, args.prompt_len, args.new, args.peer_repeats)
  print()
  print("| workload | rows | rlvr_jax tok/s | ms / step | floor ms / step | % of floor | compile s "
        "| transformers tok/s | rlvr_jax / transformers |")
  print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
  for r in rows:
    floor_ms = 1e3 * r["floor_bytes"] / bandwidth
    r["floor_ms"], r["pct_floor"] = floor_ms, 100 * floor_ms / r["step_ms"]
    hf = peer.get(r["workload"]) if isinstance(peer, dict) else None
    hf_cell, ratio = ("n/a", "") if hf is None else (f"{hf:,.0f}", f"{r['tokens_per_s'] / hf:.1f}x")
    print(f"| {r['workload']} | {r['rows']} | {r['tokens_per_s']:,.0f} | {r['step_ms']:.2f} | "
          f"{floor_ms:.2f} | {r['pct_floor']:.0f}% | {r['compile_s']:.1f} | "
          f"{hf_cell} | {ratio} |")
  if not isinstance(peer, dict):
    print(f"\ntransformers: {peer}")
  for r in rows:
    if "parts_s" in r:
      parts = ", ".join(f"{k} {1e3 * v:.2f} ms" for k, v in r["parts_s"].items())
      print(f"\n{r['workload']}: per step {r['step_ms']:.2f} ms; parts at cache length "
            f"{args.prompt_len + args.new}: {parts}")
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(rows=rows, peer=peer, bandwidth=bandwidth, commit=commit), f, indent=1)


if __name__ == "__main__":
  main()
