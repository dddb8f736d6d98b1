"""The claims registry, the verdict arithmetic (hand-worked), and every declared claim's --quick run
through experiments/claims.py (the pipeline, not the effect)."""
from __future__ import annotations

import json
import math
import os

import pytest

from rlvr_jax import claims as claims_lib
from tests.training import rl_loop_helpers as helpers  # noqa: F401  (test rewards / cache setup)


def test_metric_values_and_verdicts_by_hand():
  rows = [{"step": i + 1, "entropy": float(i)} for i in range(10)]
  assert claims_lib.Metric("train_last", "entropy", window=2).value(rows, {}) == 8.5
  assert claims_lib.Metric("train_change", "entropy", window=2).value(rows, {}) == 8.0
  assert claims_lib.Metric("eval", "pass@8").value([], {"after": {"pass@8": 0.75}}) == 0.75
  episode_rows = [{"step": 1, "episode/label_accuracy": 0.25}, {"step": 2, "episode/label_accuracy": 0.75}]
  assert claims_lib.Metric("train_last", "label_accuracy", window=2).value(episode_rows, {}) == 0.5
  with pytest.raises(KeyError, match="pass@9"):
    claims_lib.Metric("eval", "pass@9").value([], {"after": {"pass@8": 0.75}})
  claim = claims_lib.get_claim("dapo_clip_higher")
  # arm means 2.0 (se 1/sqrt(3)) and 1.0 (se 1/sqrt(3)): diff 1, se sqrt(2/3), z = 1.22
  out = claims_lib.verdict(claim, {"clip_higher_0.28": [1.0, 2.0, 3.0],
                                   "symmetric_0.2": [0.0, 1.0, 2.0]})
  assert out["verdict"] == "inconclusive"
  assert math.isclose(out["margin_se"], 1.0 / math.sqrt(2.0 / 3.0), rel_tol=1e-9)
  # paired by seed: differences 1, 1, 1 -> no spread, every seed agrees
  assert out["paired"]["differences"] == [1.0, 1.0, 1.0] and out["paired"]["verdict"] == "reproduced"
  noisy = claims_lib.verdict(claim, {"clip_higher_0.28": [1.0, 3.0, 2.0],
                                     "symmetric_0.2": [0.0, 1.0, 2.5]})
  # differences 1, 2, -0.5: mean 0.8333, se = std(ddof=1) / sqrt(3) = 1.258 / 1.732 = 0.726
  assert math.isclose(noisy["paired"]["margin_se"], 0.8333333 / 0.7264832, rel_tol=1e-5)
  assert noisy["paired"]["verdict"] == "inconclusive"
  assert claims_lib.verdict(claim, {"clip_higher_0.28": [3.0, 3.1, 2.9],
                                    "symmetric_0.2": [1.0, 1.1, 0.9]})["verdict"] == "reproduced"
  assert claims_lib.verdict(claim, {"clip_higher_0.28": [1.0, 1.1, 0.9],
                                    "symmetric_0.2": [3.0, 3.1, 2.9]})["verdict"] == "not reproduced"
  assert claims_lib.verdict(claim, {"clip_higher_0.28": [3.0],
                                    "symmetric_0.2": [1.0]})["verdict"] == "inconclusive"
  with pytest.raises(ValueError, match="dapo_clip_higher"):
    claims_lib.get_claim("dapo_clip_highr")


@pytest.mark.parametrize("name", sorted(claims_lib.CLAIMS))
def test_quick_claim_runs_and_writes_summary_and_plots(name, tmp_path):
  from experiments import claims as runner  # pylint: disable=import-outside-toplevel
  claim = claims_lib.get_claim(name)
  out = runner.run_claim(claim, seeds=2, root=str(tmp_path), quick=True)
  base = tmp_path / f"{name}_quick"
  with open(base / "summary.json") as f:
    assert json.load(f)["claim"] == name
  assert os.path.getsize(base / "curves.png") > 0
  assert out["verdict"]["verdict"].endswith("(quick run: pipeline check only)")
  for arm in claim.arms:
    assert sorted(out["arms"][arm]["seeds"]) == [0, 1]
    assert claim.metric.label in out["arms"][arm]["mean"]


def test_a_workdir_of_another_config_is_refused(tmp_path):
  """Reusing runs by directory must not silently reuse results of other settings."""
  import ml_collections
  from experiments import claims as claims_exp
  cfg = ml_collections.ConfigDict({"algo": {"num_minibatches": 4, "clip_high": 0.28}, "seed": 0})
  claims_exp.check_same_config(str(tmp_path), cfg)  # no run there yet: fine
  (tmp_path / "config.json").write_text(cfg.to_json_best_effort())
  claims_exp.check_same_config(str(tmp_path), cfg)  # the same config: fine
  changed = ml_collections.ConfigDict({"algo": {"num_minibatches": 1, "clip_high": 0.28}, "seed": 0})
  with pytest.raises(ValueError, match=r"algo.num_minibatches: 4 -> 1"):
    claims_exp.check_same_config(str(tmp_path), changed)
  # A field added to the configs since, at its off value, is not a difference; switched on, it is.
  grown = ml_collections.ConfigDict({"algo": {"num_minibatches": 4, "clip_high": 0.28}, "seed": 0,
                                     "data": {"test_time": False}})
  claims_exp.check_same_config(str(tmp_path), grown)
  grown.data.test_time = True
  with pytest.raises(ValueError, match=r"data.test_time: '<absent>' -> True"):
    claims_exp.check_same_config(str(tmp_path), grown)
