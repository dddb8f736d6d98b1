"""The rlvr_jax side of experiments/bench_grpo_step.py runs (no TRL / tunix needed): its config
still builds against the trainer's keys, every row generates exactly the benchmark's 32 tokens (no
stop id), and the reward sees the decoded "t<id>" words (a random policy scores about 0.5)."""
import numpy as np

from experiments import bench_grpo_step as bench


def test_even_fraction_counts_even_ids_over_all_new_tokens():
  assert bench.even_fraction("t2 t3 t4 <eos> t10x") == 2 / bench.NEW
  assert bench.even_fraction("") == 0.0


def test_rlvr_side_runs_one_timed_step(tmp_path):
  bench.write_task(tmp_path)
  result = bench._rlvr_worker(str(tmp_path), steps=1, warmup=1)  # pylint: disable=protected-access
  assert len(result["step_s"]) == len(result["rollout_s"]) == len(result["update_s"]) == 1
  assert 0 < result["rollout_s"][0] + result["update_s"][0] <= result["step_s"][0]
  # ids 2..511 are "t<id>", half of them even: a random policy's mean reward is near 0.5 (64 x 32
  # tokens: std ~0.01); a decoding or tokenizer mismatch would give 0.
  assert 0.4 < result["reward_mean"] < 0.6, result
  assert np.isfinite(result["step_s"]).all()
