"""experiments/eval.py reproduces the trainer's own held-out evaluation from the run directory
(orbax checkpoint) and from the exported HF checkpoint, and writes eval_<tag>.json."""
from __future__ import annotations

import json

import numpy as np
import pytest

from experiments import eval as eval_entry
from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers

METRICS = ("greedy_accuracy", "mean_accuracy", "pass@1", "pass@2", "pass@4", "maj@1", "maj@2",
           "maj@4")


def _run(workdir):
  """A 1-step run that evaluates 4 held-out problems after RL (n=4) and exports its policy.

  Correctness is the test reward "at least half the characters are digits", which a random tiny
  model meets some of the time, so pass@k and maj@k are not all zero. 4 problems x 4 samples of 8
  tokens are the rollout shapes of the :cpu variants, so the sampler program is shared.
  """
  helpers.register_test_rewards()
  cfg = helpers.get_config("dr_grpo", "cpu")
  cfg.total_steps = 1
  cfg.reward.correctness = helpers.DIGITS_REWARD
  cfg.reward.threshold = 0.5
  cfg.eval.size = 4
  cfg.eval.num_samples = 4
  cfg.eval.before = True  # the warm start's eval, which --warm_start must reproduce
  cfg.sft.steps = 2
  cfg.export_hf = True
  cfg.lock()
  return loop.run(cfg, str(workdir))["after"]


def test_eval_entry_point_reproduces_the_trainers_eval(tmp_path):
  workdir = tmp_path / "run"
  after = _run(workdir)

  # --workdir: the latest orbax checkpoint and the run's own config.json.
  cfg, out_dir = eval_entry.resolve(str(workdir), None)
  assert out_dir == str(workdir)
  eval_entry.apply_overrides(cfg)
  record = eval_entry.evaluate(cfg, workdir=str(workdir), out_dir=out_dir)
  assert record["tag"] == "step1" and record["num_problems"] == 4
  for k in METRICS:
    assert record[k] == pytest.approx(after[k]), k
  assert 0.0 < record["mean_accuracy"] < 1.0  # a non-trivial comparison
  assert record["pass@1"] == pytest.approx(record["mean_accuracy"])  # unbiased pass@1
  assert record["pass@1"] <= record["pass@2"] <= record["pass@4"]
  assert record["maj@4"] <= record["pass@4"]
  with open(workdir / "eval_step1.json") as f:
    assert json.load(f)["pass@4"] == record["pass@4"]
  # Every completion is kept, greedy and sampled, and agrees with the counts; the trainer's own
  # after-RL evaluation (same policy, same seed) wrote the same rows.
  assert record["samples"] == "eval_step1_samples.jsonl"
  rows = [json.loads(line) for line in (workdir / record["samples"]).read_text().splitlines()]
  assert len(rows) == 4 * (1 + 4)  # 4 problems x (greedy + 4 samples)
  sampled = [r for r in rows if r["kind"] == "sampled"]
  assert np.mean([r["correct"] for r in sampled]) == pytest.approx(record["mean_accuracy"])
  assert [r["correct"] for r in rows if r["kind"] == "greedy"] == [
      bool(c) for c in record["per_problem"]["greedy_correct"]]
  trainer_rows = (workdir / "eval_samples.jsonl").read_text().splitlines()
  assert [json.loads(line) for line in trainer_rows] == rows
  assert (workdir / "eval_before_samples.jsonl").exists()
  table = eval_entry.format_table(record)
  assert "pass@4" in table and "maj@4" in table and "greedy_accuracy" in table

  # --checkpoint <run>/export: the exported HF weights and tokenizer, the parent run's config.
  export = workdir / "export"
  cfg, out_dir = eval_entry.resolve(None, str(export))
  assert out_dir == str(workdir)
  eval_entry.apply_overrides(cfg, checkpoint=str(export))
  record = eval_entry.evaluate(cfg, checkpoint=str(export), out_dir=out_dir)
  assert record["tag"] == "export" and (workdir / "eval_export.json").exists()
  for k in METRICS:
    assert record[k] == pytest.approx(after[k]), k

  # --warm_start: <workdir>/sft, the policy before RL: the trainer's eval_before, reproduced.
  cfg, out_dir = eval_entry.resolve(str(workdir), None)
  eval_entry.apply_overrides(cfg)
  record = eval_entry.evaluate(cfg, workdir=str(workdir), out_dir=out_dir, warm_start=True)
  assert record["tag"] == "warm_start" and record["step"] == 0
  with open(workdir / "eval_before.json") as f:
    before = json.load(f)
  for k in METRICS:
    assert record[k] == pytest.approx(before[k]), k
  cfg, out_dir = eval_entry.resolve(None, str(export))
  eval_entry.apply_overrides(cfg, checkpoint=str(export))

  # --base: the same policy and seed against its own earlier eval: every problem ties; --entropy.
  record = eval_entry.evaluate(cfg, checkpoint=str(export), out_dir=out_dir, tag="vs", entropy=True,
                               base=str(workdir / "eval_step1.json"))
  vs = record["vs_base"]
  assert vs["base"] == "step1" and vs["sampled"]["ties"] == 4 and vs["sampled"]["mean_delta"] == 0
  assert sum(r["count"] for r in vs["winner_take_all"]) == 4
  assert np.isfinite(record["eval_token_entropy"]) and record["eval_token_entropy"] > 0
  with open(workdir / "eval_vs.json") as f:
    assert json.load(f)["vs_base"] == vs
  assert "token entropy" in eval_entry.format_table(record)


def test_eval_errors_name_what_is_missing(tmp_path):
  with pytest.raises(ValueError, match="--workdir"):
    eval_entry.resolve(None, None)
  with pytest.raises(ValueError, match="config.json"):
    eval_entry.resolve(str(tmp_path), None)
  assert np.isfinite(eval_entry.DEFAULT_SIZE)
