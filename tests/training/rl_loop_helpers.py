"""Shared pieces of the RL-loop tests: the configs under test, test-only rewards, metrics files.

Every loop test starts from a ``:cpu`` variant (``configs/common.cpu_variant`` shapes), so the
sampler and update programs compiled by one test are reused by the others through the persistent
compilation cache (tests/conftest.py).
"""
from __future__ import annotations

import importlib
import json
import math
import os
import pathlib

import numpy as np

from rlvr_jax import rewards as rewards_lib

REPO = pathlib.Path(__file__).resolve().parents[2]
JAX_CACHE = REPO / ".jax_cache"

# Columns every metrics.jsonl row must have (docs/design.md, "Public API", experiments.run).
DESIGN_FIELDS = ("step", "reward_mean", "accuracy", "entropy", "kl", "clip_frac", "response_len",
                 "tokens_per_s", "time_rollout_s", "time_update_s")

DIGITS_REWARD = "test_digit_fraction"
RAISING_REWARD = "test_always_raises"


def config_names() -> list[str]:
  """Every run config in configs/ (one module per paper / run)."""
  return sorted(p.stem for p in (REPO / "configs").glob("*.py")
                if p.stem not in ("__init__", "common"))


def get_config(name: str, arg: str | None = "cpu"):
  return importlib.import_module(f"configs.{name}").get_config(arg)


def pinned_config(name: str):
  """The :cpu variant whose metrics golden/cpu_metrics.json pins: its reward terms plus the
  digit-fraction reward, so that groups have reward spread and the updates are not no-ops."""
  register_test_rewards()
  cfg = get_config(name, "cpu")
  cfg.reward.terms = list(cfg.reward.terms) + [dict(name=DIGITS_REWARD, weight=1.0)]
  if "dynamic_sampling" in cfg.batch.builders:
    # A random model is never correct, so the paper's accuracy filter would drop every group and
    # train nothing; filter on the reward's spread here (the accuracy filter has unit tests).
    cfg.batch.builder_options.dynamic_sampling.metric = "reward"
  return cfg


def register_test_rewards() -> None:
  """Two rewards for tests, registered once per process.

  ``test_digit_fraction``: the fraction of digit characters in a completion. A random tiny model
  gets a spread of values inside every group, so advantages (and parameter updates) are non-zero,
  unlike the 0/1 task reward that an untrained model never earns.
  ``test_always_raises``: raises on every call (a broken verifier).
  """
  if DIGITS_REWARD not in rewards_lib.REWARDS:
    @rewards_lib.register_reward(DIGITS_REWARD)
    def _digits(completions, examples, **options):  # pylint: disable=unused-variable
      del examples, options  # e.g. the cpu variant's extract="none"
      return np.array([sum(ch.isdigit() for ch in t) / max(len(t), 1) for t in completions],
                      np.float32)
  if RAISING_REWARD not in rewards_lib.REWARDS:
    @rewards_lib.register_reward(RAISING_REWARD)
    def _raises(completions, examples, **options):  # pylint: disable=unused-variable
      raise RuntimeError(f"deliberate failure on {len(completions)} completions (test)")


def read_metrics(workdir: str | os.PathLike) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f if line.strip()]


def deterministic(row: dict) -> dict:
  """A metrics row without its wall-clock columns and the launch's provenance (``run_info``)."""
  return {k: v for k, v in row.items()
          if k not in ("time", "run_info") and not k.startswith("time_") and k != "tokens_per_s"}


def assert_finite_row(row: dict) -> None:
  """The columns docs/design.md lists are present and finite; no other column is NaN / inf
  (written as strings)."""
  missing = [k for k in DESIGN_FIELDS if k not in row]
  assert not missing, f"metrics row lacks {missing}: {sorted(row)}"
  for k in DESIGN_FIELDS:
    assert isinstance(row[k], (int, float)) and math.isfinite(row[k]), (k, row[k])
  for k, v in row.items():
    assert not (isinstance(v, str) and v in ("nan", "inf", "-inf")), (k, v)
    if isinstance(v, float):
      assert math.isfinite(v), (k, v)
