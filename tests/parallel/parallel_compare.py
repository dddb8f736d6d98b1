"""Shared checks for the mesh / multi-process equivalence tests: runs written by
``mesh_runs_parallel_helper.py`` (final params .npz, per-step metrics and param specs .json)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[2]
HELPER = str(pathlib.Path(__file__).with_name("mesh_runs_parallel_helper.py"))
# A paper config's CPU variant: DAPO (dynamic sampling over several generation batches, 2 mini-batches
# so old log-probs are recomputed, overlong reward so groups have variance; dynamic sampling on the
# total reward, since a random model never has accuracy spread) plus a KL term so the reference
# model is sharded and used too.
CONFIG = "configs/dapo.py:cpu"
OVERRIDES = ["algo.kl_coef=0.01", "batch.builder_options.dynamic_sampling.metric=reward"]
CLI_OVERRIDES = ["--config.algo.kl_coef=0.01",
                 "--config.batch.builder_options.dynamic_sampling.metric=reward"]
# Host-side quantities that only match if every process/mesh sampled the same tokens.
EXACT = ("reward_mean", "train_tokens", "gen_batches", "valid_group_frac")
CLOSE = ("loss", "pg_loss", "entropy", "kl", "grad_norm", "update_norm", "param_norm")


def env(num_devices: int) -> dict:
  out = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT))
  out["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={num_devices}"
  return out


def run_helper(args: list[str], num_devices: int, timeout: int = 900) -> None:
  proc = subprocess.run([sys.executable, HELPER] + args, cwd=ROOT, env=env(num_devices),
                        capture_output=True, text=True, timeout=timeout)
  assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def load(out: str, name: str) -> tuple[dict, dict]:
  params = dict(np.load(os.path.join(out, name + ".npz")))
  with open(os.path.join(out, name + ".json")) as f:
    return params, json.load(f)


def assert_same_run(out: str, ref: str, name: str) -> dict:
  """``name`` reached the same metrics and params as ``ref``, within float tolerance."""
  p_ref, r_ref = load(out, ref)
  p, r = load(out, name)
  assert r["step"] == r_ref["step"] == 2
  assert len(r["metrics"]) == len(r_ref["metrics"]) == 2
  for step, (a, b) in enumerate(zip(r_ref["metrics"], r["metrics"]), 1):
    for k in EXACT:
      assert a[k] == b[k], (name, step, k, a[k], b[k])
    for k in CLOSE:
      np.testing.assert_allclose(b[k], a[k], rtol=1e-4, atol=1e-6, err_msg=f"{name} step {step} {k}")
    assert a["update_norm"] > 1e-3, a  # the params really moved, far more than the tolerance below
  assert sorted(p) == sorted(p_ref)
  diff = np.sqrt(sum(float(np.sum((p[k] - p_ref[k]) ** 2)) for k in p))
  assert diff < 1e-3 * r_ref["metrics"][-1]["update_norm"], (name, diff)
  for k in p:
    np.testing.assert_allclose(p[k], p_ref[k], rtol=0, atol=1e-5, err_msg=f"{name} {k}")
  return r["specs"]
