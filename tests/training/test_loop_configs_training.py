"""Each configs/<name>.py:cpu variant runs two RL steps end to end through loop.run in-process, and
its metrics equal the pinned ones in golden/cpu_metrics.json (tests/training/make_golden_metrics.py).

Every :cpu variant uses the configs/common.cpu_variant shapes, so the sampler programs are shared
and only the update program of each distinct objective is compiled (persistent cache).
"""
from __future__ import annotations

import json
import math
import os

import ml_collections
import pytest

from rlvr_jax.training import checkpoint, loop
from tests.training import rl_loop_helpers as helpers


@pytest.mark.parametrize("name", helpers.config_names())
def test_cpu_variant_runs_two_steps(name, tmp_path):
  cfg = helpers.pinned_config(name)
  cfg.lock()
  summary = loop.run(cfg, str(tmp_path))

  rows = helpers.read_metrics(tmp_path)
  assert [r["step"] for r in rows] == [1, 2]
  for row in rows:
    helpers.assert_finite_row(row)
    assert 0.0 <= row["accuracy"] <= 1.0 and 0.0 <= row["clip_frac"] <= 1.0
    assert 0 < row["response_len"] <= cfg.rollout.max_new_tokens
    assert row["train_tokens"] > 0
  if cfg.algo.kl_coef > 0 and not cfg.algo.kl_in_reward:
    # The reference is the initial policy: after one update the KL is small but the column is the
    # reference KL (not the approx_kl fallback).
    assert all(r["kl"] >= 0.0 for r in rows)

  # The run's outputs: checkpoint of the last step, config.json that rebuilds the config, eval.json.
  ckpt = checkpoint.Checkpointer(str(tmp_path / "checkpoints"))
  assert ckpt.latest_step() == 2
  ckpt.close()
  with open(tmp_path / "config.json") as f:
    rebuilt = ml_collections.ConfigDict(json.load(f))
  assert rebuilt.algo.to_dict() == json.loads(cfg.algo.to_json_best_effort())
  assert rebuilt.rollout.to_dict() == cfg.rollout.to_dict()
  with open(tmp_path / "eval.json") as f:
    assert json.load(f)["steps"] == 2 == summary["steps"]
  assert os.listdir(tmp_path / "tensorboard")
  assert_matches_golden(name, [helpers.deterministic(r) for r in rows])


GOLDEN = helpers.REPO / "tests" / "training" / "golden" / "cpu_metrics.json"


def assert_matches_golden(name: str, rows: list[dict]) -> None:
  """Same keys, same discrete values, floats within 1e-5 relative (the pinned run was on a machine
  like CI's; bit-identity is checked by hand when the engine changes, see make_golden_metrics)."""
  golden = json.loads(GOLDEN.read_text())
  assert name in golden, (f"no pinned metrics for {name}: run python -m "
                          f"tests.training.make_golden_metrics {name} and commit the file")
  for want, got in zip(golden[name], rows, strict=True):
    assert sorted(want) == sorted(got), (name, sorted(set(want) ^ set(got)))
    for key, value in want.items():
      if isinstance(value, float) and isinstance(got[key], float):
        assert math.isclose(got[key], value, rel_tol=1e-5, abs_tol=1e-7), (name, want["step"], key,
                                                                           value, got[key])
      else:
        assert got[key] == value, (name, want["step"], key, value, got[key])
