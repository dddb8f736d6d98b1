"""The reward process pool (timeouts, crashes, reuse) and the math-verify / reasoning-gym rewards."""
import numpy as np
import pytest

from rlvr_jax import rewards
from rlvr_jax.rewards.pool import VerifierPool
from tests.rewards import pool_task_helpers as helpers


def test_pool_survives_errors_timeouts_and_crashes():
  pool = VerifierPool(num_workers=2)
  try:
    assert pool.map(helpers.add, [(1, 2), (3, 4), (5, 6)], timeout=10) == [("ok", 3), ("ok", 7), ("ok", 11)]

    status, message = pool.map(helpers.fail, [("boom",)], timeout=10)[0]
    assert status == "error" and "RuntimeError: boom" in message

    # Python-level hang: the worker's own timer stops it; the worker is kept.
    assert pool.map(helpers.sleep_then_return, [(60,), (0,)], timeout=0.5) == [("timeout", None), ("ok", 0)]
    assert pool.restarts == 0

    # A hang in C code ignores the timer: the parent kills and replaces the worker.
    out = pool.map(helpers.spin_in_c, [(10**15,), (10,)], timeout=0.5)
    assert out == [("timeout", None), ("ok", 45)]
    assert pool.restarts == 1

    # A worker that dies costs only its item.
    assert pool.map(helpers.crash, [(3,)], timeout=10) == [("crash", None)]
    assert pool.restarts == 2

    # The pool keeps working with its replacement workers.
    assert pool.map(helpers.add, [(i, i) for i in range(5)], timeout=10) == [("ok", 2 * i) for i in range(5)]
    processes = [w.process for w in pool._workers]
    assert len(processes) == 2 and all(p.poll() is None for p in processes)
  finally:
    pool.close()
  assert all(p.poll() is not None for p in processes)  # shut down cleanly
  with pytest.raises(ValueError, match="timeout must be > 0"):
    pool.map(helpers.add, [(1, 2)], timeout=0)


def test_math_verify_reward_hand_cases():
  completions = [
      "<think>1/2 of it</think><answer>\\frac{1}{2}</answer>",  # tag, LaTeX
      "so the result is \\boxed{0.5}",  # boxed decimal == 1/2
      "<answer>\\frac{2}{4}</answer>",  # unreduced fraction
      "The answer is \\boxed{\\frac{1}{3}}",  # wrong
      "<answer>\\sqrt{4}</answer>",  # == 2
      "<answer>2.0</answer>",  # string fast path after normalisation
      "I think it is 3",  # wrong
      "no answer at all",  # unparseable -> incorrect, not a failure
  ]
  examples = [{"question": "q", "answer": "1/2"}] * 4 + [{"question": "q", "answer": "2"}] * 4
  scores, metrics = rewards.compute_rewards(
      [{"name": "math_verify", "options": {"incorrect": -1.0}}], completions, examples, group_size=4
  )
  np.testing.assert_array_equal(scores, [1, 1, 1, -1, 1, 1, -1, -1])
  assert metrics["reward_fail/math_verify"] == 0.0
  assert metrics["reward_timeout/math_verify"] == 0.0
  np.testing.assert_allclose(metrics["reward/math_verify"], 0.25)


def test_math_verify_open_r1_preset_hand_cases():
  # open-r1 / TRL parse the completion as LaTeX only, boxed first, and need an anchor: a bare
  # number or an unanchored $..$ does not count, while math-verify's defaults accept both.
  completions = [
      "The answer is 42",  # default: found as a plain expression; open_r1: no anchor
      "\\boxed{42}",  # both
      "first $x = 41$, finally \\boxed{42}",  # boxed tried first: both
      "$\\frac{84}{2}$",  # default: LaTeX span, equal to 42; open_r1: no anchor
      "\\boxed{41}",  # wrong under both
  ]
  examples = [{"question": "q", "answer": "42"}] * len(completions)
  default, _ = rewards.compute_rewards(["math_verify"], completions, examples, group_size=1)
  open_r1, _ = rewards.compute_rewards([{"name": "math_verify", "options": {"preset": "open_r1"}}],
                                       completions, examples, group_size=1)
  np.testing.assert_array_equal(default, [1, 1, 1, 1, 0])
  np.testing.assert_array_equal(open_r1, [0, 1, 1, 0, 0])
  with pytest.raises(rewards.RewardConfigError, match="preset='r1'"):
    rewards.compute_rewards([{"name": "math_verify", "options": {"preset": "r1"}}], completions,
                            examples, group_size=1)


def test_math_verify_counts_a_failing_item_and_scores_it_zero():
  # An empty gold answer cannot be parsed: that item errors in the worker, the other is scored.
  completions = ["\\boxed{5}", "\\boxed{4}"]
  examples = [{"question": "q", "answer": ""}, {"question": "q", "answer": "5"}]
  scores, metrics = rewards.compute_rewards(["math_verify"], completions, examples, group_size=1)
  np.testing.assert_array_equal(scores, [0.0, 0.0])
  assert metrics["reward_fail/math_verify"] == 1.0
  scores, _ = rewards.compute_rewards(["math_verify"], completions[:1], examples[1:], group_size=1)
  np.testing.assert_array_equal(scores, [1.0])


def test_reasoning_gym_reward_uses_the_task_scorer():
  import reasoning_gym

  data = reasoning_gym.create_dataset("chain_sum", size=2, seed=12345)
  rows = [{"question": e["question"], "answer": e["answer"], "metadata": e["metadata"]} for e in data]
  wrong = str(int(rows[0]["answer"]) + 1)
  completions = [f"<answer>{rows[0]['answer']}</answer>", f"<answer>{wrong}</answer>", rows[1]["answer"],
                 f"<think>x</think><answer>{rows[1]['answer']}</answer>"]
  examples = [rows[0], rows[0], {**rows[1], "task": "chain_sum"}, rows[1]]
  scores, metrics = rewards.compute_rewards(["reasoning_gym"], completions, examples, group_size=2)
  # Right, wrong, no <answer> tag (reasoning-gym's format) -> 0, right via metadata.source_dataset.
  np.testing.assert_array_equal(scores, [1.0, 0.0, 0.0, 1.0])
  assert metrics["reward_fail/reasoning_gym"] == 0.0
  # The scorer's own verdict is the oracle.
  assert data.score_answer(rows[0]["answer"], data[0]) == 1.0 and data.score_answer(wrong, data[0]) == 0.0
  with pytest.raises(rewards.RewardConfigError, match="example 0 names no reasoning-gym task"):
    rewards.compute_rewards(["reasoning_gym"], ["x"], [{"question": "q", "answer": "1"}], group_size=1)


def test_shared_pool_shuts_down_at_interpreter_exit(tmp_path):
  import os
  import subprocess
  import sys

  script = (
      "from rlvr_jax.rewards import get_pool\n"
      "from tests.rewards import pool_task_helpers as h\n"
      "pool = get_pool('exit_test', num_workers=1)\n"
      "assert pool.map(h.add, [(1, 2)], timeout=30) == [('ok', 3)]\n"
      "print(pool._workers[0].process.pid)\n"
  )
  repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  env = {**os.environ, "PYTHONPATH": repo}
  done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env, cwd=repo)
  assert done.returncode == 0, done.stderr
  worker_pid = int(done.stdout.strip().splitlines()[-1])
  # The atexit handler stopped and reaped the worker: no process is left behind.
  assert not os.path.exists(f"/proc/{worker_pid}")
