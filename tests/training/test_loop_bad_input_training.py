"""Bad input fails early with a message naming the key, or is counted without killing the run.

(Unknown config overrides are rejected in tests/configs/test_paper_configs_configs.py.)
"""
from __future__ import annotations

import json

import ml_collections
import pytest

from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers


def test_missing_model_path_fails_before_any_work(tmp_path):
  cfg = helpers.get_config("grpo", None)  # full variant: model.init="hf", model.path unset
  cfg.lock()
  with pytest.raises(ValueError, match=r"--config\.model\.path"):
    loop.run(cfg, str(tmp_path))
  assert not (tmp_path / "metrics.jsonl").exists()


def _jsonl(path, good: int) -> int:
  """A GSM8K-style file with ``good`` usable rows and some broken ones; returns the bad count."""
  lines = [json.dumps({"question": f"What is {i} + {i + 3}?", "answer": f"so #### {2 * i + 3}"})
           for i in range(good)]
  bad = ["this line is not JSON",
         json.dumps({"question": "What is 1 + 1?"}),  # no answer
         json.dumps({"question": 7, "answer": "7"}),  # question is not text
         json.dumps(["a", "list"])]  # not an object
  lines[3:3] = bad
  path.write_text("\n".join(lines) + "\n")
  return len(bad)


def test_bad_rows_are_counted_and_a_raising_reward_is_survived(tmp_path):
  helpers.register_test_rewards()
  data = tmp_path / "train.jsonl"
  num_bad = _jsonl(data, good=40)
  cfg = helpers.get_config("dr_grpo", "cpu")
  cfg.data.train = ml_collections.ConfigDict(dict(source="jsonl", path=str(data),
                                                  answer_format="gsm8k"))
  cfg.reward.terms = [dict(name="exact_match", weight=1.0),
                      dict(name=helpers.RAISING_REWARD, weight=1.0)]
  cfg.reward.correctness = "exact_match"
  cfg.lock()
  summary = loop.run(cfg, str(tmp_path / "run"))

  assert summary["data_rows_skipped"] == num_bad
  with open(tmp_path / "run" / "eval.json") as f:
    assert json.load(f)["data_rows_skipped"] == num_bad
  rows = helpers.read_metrics(tmp_path / "run")
  assert [r["step"] for r in rows] == [1, 2]  # the run went on
  batch = cfg.rollout.prompts_per_step * cfg.rollout.num_samples
  for row in rows:
    helpers.assert_finite_row(row)
    assert row[f"reward_fail/{helpers.RAISING_REWARD}"] == batch  # every item counted as failed
    assert row[f"reward/{helpers.RAISING_REWARD}"] == 0.0  # and scored 0
    assert row["reward_fail/exact_match"] == 0


def test_cached_warm_start_made_for_other_settings_is_refused(tmp_path):
  """quickstart:cpu runs a 2-step warm start (cached in <workdir>/sft with its settings); the same
  workdir with another teacher must not silently reuse it, while the same config does."""
  cfg = helpers.get_config("quickstart", "cpu")
  cfg.total_steps = 1
  cfg.eval.size = 0
  run_dir = str(tmp_path / "run")
  loop.run(cfg, run_dir)
  assert (tmp_path / "run" / "sft" / "settings.json").exists()
  assert (tmp_path / "run" / "sft" / "params").is_dir()
  changed = helpers.get_config("quickstart", "cpu")
  changed.total_steps = 1
  changed.eval.size = 0
  changed.sft.teacher = "template"
  # The RL checkpoint's config is checked first (training/workdir.py): the warm start is refused.
  with pytest.raises(ValueError, match=r"warm start.*sft.teacher: 'careless_arithmetic' -> "
                     r"'template'.*new --workdir"):
    loop.run(changed, run_dir)
  cfg.total_steps = 2  # same warm-start settings: reused, and the run resumes to step 2
  loop.run(cfg, run_dir)
  assert [r["step"] for r in helpers.read_metrics(run_dir)] == [1, 2]
