"""Subprocess driver for the multi-device tests (XLA_FLAGS must be set before jax is imported).

  python tests/parallel/mesh_runs_parallel_helper.py run OUT CONFIG[:ARG] CACHE NAME=AXES [...]
      -- KEY=VALUE ...
    runs ``loop.run`` once per NAME=AXES (AXES like ``data:2,fsdp:4``; ``ndev:1`` limits the mesh
    to the first device), with config overrides KEY=VALUE (dotted keys, Python literals), and
    writes OUT/NAME.npz with the final params and OUT/NAME.json with the per-step metrics.
  python tests/parallel/mesh_runs_parallel_helper.py dump OUT NAME=WORKDIR [...]
    writes the same files for runs made elsewhere (e.g. by ``python -m experiments.run``).
"""
from __future__ import annotations

import ast
import importlib
import json
import os
import shutil
import sys

import numpy as np

METRICS = ("loss", "pg_loss", "entropy", "kl", "grad_norm", "update_norm", "param_norm",
           "reward_mean", "train_tokens", "gen_batches", "valid_group_frac")


def dump(out: str, name: str, workdir: str) -> None:
  import jax
  import orbax.checkpoint as ocp
  ckpt = os.path.join(workdir, "checkpoints")
  step = max(int(s) for s in os.listdir(ckpt) if s.isdigit())
  where = os.path.join(ckpt, str(step), "params")
  checkpointer = ocp.StandardCheckpointer()
  meta = checkpointer.metadata(where).item_metadata
  one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  # Restore onto one device, whatever mesh (and number of processes) wrote the checkpoint.
  target = jax.tree.map(lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=one), meta)
  params = checkpointer.restore(where, target)
  flat = {jax.tree_util.keystr(k): np.asarray(v)
          for k, v in jax.tree_util.tree_flatten_with_path(params)[0]}
  np.savez(os.path.join(out, name + ".npz"), **flat)
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    records = [json.loads(line) for line in f if line.strip()]
  metrics = [{k: r.get(k) for k in METRICS} for r in records]
  # orbax records each array's sharding: proof of how the run actually laid the params out
  specs = {jax.tree_util.keystr(k): [a if a is None or isinstance(a, str) else list(a)
                                     for a in m.sharding.partition_spec]
           for k, m in jax.tree_util.tree_flatten_with_path(meta)[0]}
  with open(os.path.join(out, name + ".json"), "w") as f:
    json.dump({"step": step, "metrics": metrics, "specs": specs}, f)


def _set(cfg, key: str, value: str) -> None:
  *path, last = key.split(".")
  node = cfg
  for p in path:
    node = node[p]
  try:
    node[last] = ast.literal_eval(value)
  except (ValueError, SyntaxError):
    node[last] = value


def run(out: str, config: str, cache: str, specs: list[str], overrides: list[str]) -> None:
  import jax
  if cache:
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  from rlvr_jax.training import loop
  path, _, arg = config.partition(":")
  module = importlib.import_module(path.replace("/", ".").removesuffix(".py"))
  for spec in specs:
    name, _, axes = spec.partition("=")
    axes = dict(item.split(":") for item in axes.split(","))
    ndev = int(axes.pop("ndev", jax.device_count()))
    cfg = module.get_config(arg or None)
    for item in overrides:
      _set(cfg, *item.split("=", 1))
    cfg.mesh = {k: int(v) for k, v in axes.items()}
    workdir = os.path.join(out, name)
    shutil.rmtree(workdir, ignore_errors=True)
    loop.run(cfg, workdir, devices=jax.devices()[:ndev])
    dump(out, name, workdir)


def main(argv: list[str]) -> None:
  mode, out = argv[1], argv[2]
  os.makedirs(out, exist_ok=True)
  if mode == "dump":
    for spec in argv[3:]:
      dump(out, *spec.split("=", 1))
  elif mode == "run":
    rest = argv[5:]
    cut = rest.index("--") if "--" in rest else len(rest)
    run(out, argv[3], argv[4], rest[:cut], rest[cut + 1:])
  else:
    raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
  sys.path.insert(0, os.getcwd())  # configs/ is imported from the repository root
  main(sys.argv)
