"""Per-device memory of params + optimizer state under different meshes, from sharded shapes only.

For a real-size preset (default Qwen2.5-1.5B) on 8 devices (8 fake CPU devices unless real ones are
there), the run's own code paths build the shardings: ``models.logical_axes`` -> ``parallel.
param_shardings`` with the config's rules, ``step.state_shardings`` for the optimizer (AdamW, as
``builders.build_optimizer`` makes it). ``jax.eval_shape`` of the jitted initialisers with those
``out_shardings`` gives abstract arrays carrying their shardings; nothing is allocated. Bytes per
device are summed over each device's own slices (``sharding.devices_indices_map``), so replicated
tensors count in full on every device. Meshes compared: data-only (the peer: everything
replicated), fsdp=8, fsdp=4 x tensor=2, tensor=8.

    python -m experiments.bench_sharding [--preset qwen2p5_1p5b] [--param_dtype float32]
"""
from __future__ import annotations

import os

if "jax" not in os.sys.modules:  # must precede the first jax import
  os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")

import argparse
import math
import platform
import subprocess
import time

import jax
import numpy as np
from flax import nnx

from rlvr_jax import models
from rlvr_jax.models import transformer
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.training import builders
from rlvr_jax.training import step as step_lib

MESHES = (("data=8 (replicated)", {"data": 8}),
          ("fsdp=8", {"fsdp": 8}),
          ("fsdp=4 x tensor=2", {"fsdp": 4, "tensor": 2}),
          ("tensor=8", {"tensor": 8}))
GIB = 1024 ** 3


def per_device_bytes(tree) -> np.ndarray:
  """Bytes each device holds for a pytree of ShapeDtypeStructs carrying shardings [num_devices]."""
  devices = jax.devices()
  where = {d: i for i, d in enumerate(devices)}
  total = np.zeros(len(devices), np.int64)
  for leaf in jax.tree.leaves(tree):
    itemsize = np.dtype(leaf.dtype).itemsize
    for device, index in leaf.sharding.devices_indices_map(leaf.shape).items():
      size = math.prod(len(range(*s.indices(n))) for s, n in zip(index, leaf.shape))
      total[where[device]] += size * itemsize
  return total


def measure(mc: models.ModelConfig, axes: dict, rules=None) -> dict:
  """Abstract params and AdamW state under ``axes``; per-device bytes (max over devices)."""
  mesh = mesh_lib.make_mesh(axes)
  abstract_model = transformer.abstract_shapes(mc)
  graphdef, abstract_params = nnx.split(abstract_model)
  shardings = mesh_lib.param_shardings(abstract_params, models.logical_axes(abstract_model), mesh,
                                       rules)
  params = jax.eval_shape(
      jax.jit(lambda: nnx.split(models.Transformer(mc, rngs=nnx.Rngs(0)))[1],
              out_shardings=shardings))
  tx = builders.build_optimizer({"name": "adamw", "lr": 1e-6, "grad_clip": 1.0}, 1000)
  opt_shardings = step_lib.state_shardings(params, shardings, tx, mesh_lib.replicated(mesh))
  opt_state = jax.eval_shape(jax.jit(tx.init, out_shardings=opt_shardings), params)
  del graphdef
  p, o = per_device_bytes(params), per_device_bytes(opt_state)
  return {"params": int(p.max()), "opt_state": int(o.max()), "total": int((p + o).max()),
          "num_params": int(sum(math.prod(x.shape) for x in jax.tree.leaves(params)))}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--preset", default="qwen2p5_1p5b", help="a ModelConfig preset")
  parser.add_argument("--param_dtype", default="float32", help="parameter (and AdamW state) dtype")
  args = parser.parse_args()
  if jax.device_count() != 8:
    raise SystemExit(f"needs 8 devices, found {jax.device_count()} (set XLA_FLAGS before jax)")
  mc = getattr(models.ModelConfig, args.preset)().replace(param_dtype=args.param_dtype)
  try:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=True).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    commit = "unknown"
  t0 = time.time()
  rows = [(name, measure(mc, axes)) for name, axes in MESHES]
  base = rows[0][1]["total"]
  print(f"# {args.preset}: {rows[0][1]['num_params'] / 1e9:.3f}B params, {args.param_dtype}, AdamW "
        f"(mu, nu in the param dtype); {jax.device_count()} x {jax.devices()[0].platform} devices, "
        f"{platform.node() or 'host'}, {time.strftime('%Y-%m-%d')}, commit {commit}, default rules; "
        f"eval_shape only ({time.time() - t0:.1f}s)")
  print("| mesh | params GiB/device | optimizer GiB/device | total GiB/device | vs data-only |")
  print("|---|---:|---:|---:|---:|")
  for name, r in rows:
    print(f"| {name} | {r['params'] / GIB:.3f} | {r['opt_state'] / GIB:.3f} | "
          f"{r['total'] / GIB:.3f} | {r['total'] / base:.3f} |")


if __name__ == "__main__":
  main()
