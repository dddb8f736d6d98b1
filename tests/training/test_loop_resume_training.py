"""Resumption: 4 steps in one go equal 2 steps + resume for 2 more (metrics, params, data order);
SIGTERM makes a run checkpoint and exit 0, and rerunning resumes from that checkpoint."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from rlvr_jax import models
from rlvr_jax.training import builders, checkpoint, loop
from tests.training import rl_loop_helpers as helpers
from tests.training import sigterm_run_helper


def dapo_config(total_steps: int):
  """configs/dapo.py:cpu (dynamic sampling, 2 off-policy mini-batches, shuffling) with a reward
  that has spread inside groups, so every step really changes the params."""
  helpers.register_test_rewards()
  cfg = helpers.get_config("dapo", "cpu")
  cfg.total_steps = total_steps
  cfg.reward.terms = list(cfg.reward.terms) + [dict(name=helpers.DIGITS_REWARD, weight=1.0)]
  # A random model is never correct: filter on the reward's spread so that groups are trained.
  cfg.batch.builder_options.dynamic_sampling.metric = "reward"
  cfg.lock()
  return cfg


def final_params(workdir, cfg) -> tuple[list[np.ndarray], int]:
  vocab = models.Tokenizer.from_pretrained(os.path.join(workdir, "tokenizer")).vocab_size
  abstract, _ = builders.abstract_model(cfg.model, vocab_size=vocab)
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        nnx.split(abstract)[1])
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  params, step = ckpt.restore_params(None, params=target)
  ckpt.close()
  return [np.asarray(x) for x in jax.tree.leaves(params)], step


def data_state(workdir, step: int) -> dict:
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_names=("params", "opt_state", "data", "meta"))
  state = manager.restore(step, args=ocp.args.Composite(data=ocp.args.JsonRestore()))["data"]
  manager.close()
  return state


def test_resume_equals_uninterrupted_run(tmp_path):
  straight, split = tmp_path / "straight", tmp_path / "split"
  loop.run(dapo_config(4), str(straight))
  loop.run(dapo_config(2), str(split))
  halfway = data_state(split, 2)
  loop.run(dapo_config(4), str(split))  # same workdir: resumes from step 2

  rows_a, rows_b = helpers.read_metrics(straight), helpers.read_metrics(split)
  assert [r["step"] for r in rows_a] == [r["step"] for r in rows_b] == [1, 2, 3, 4]
  for a, b in zip(rows_a, rows_b):
    assert helpers.deterministic(a) == helpers.deterministic(b), a["step"]
  assert any(r["update_norm"] > 0 for r in rows_a)  # the comparison is not between no-ops

  params_a, step_a = final_params(straight, dapo_config(4))
  params_b, step_b = final_params(split, dapo_config(4))
  assert step_a == step_b == 4
  for x, y in zip(params_a, params_b, strict=True):
    np.testing.assert_array_equal(x, y)
  # The grain iterator position is part of the checkpoint: the resumed run continued from it.
  assert data_state(straight, 4) == data_state(split, 4) != halfway


def test_sigterm_checkpoints_exits_zero_and_resumes(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.Popen(
      [sys.executable, sigterm_run_helper.__file__, str(workdir), "100000"], cwd=helpers.REPO,
      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
      env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", TOKENIZERS_PARALLELISM="false"))
  try:
    deadline = time.monotonic() + 300
    metrics = workdir / "metrics.jsonl"
    while not (metrics.exists() and metrics.read_text().count("\n") >= 1):
      assert proc.poll() is None, f"run ended early:\n{proc.stdout.read()}"
      assert time.monotonic() < deadline, "no training step within the deadline"
      time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=120)
  finally:
    if proc.poll() is None:
      proc.kill()
  assert proc.returncode == 0, out
  assert "stopped by signal" in out

  done = helpers.read_metrics(workdir)[-1]["step"]
  assert 1 <= done < 100000
  ckpt = checkpoint.Checkpointer(str(workdir / "checkpoints"))
  assert ckpt.latest_step() == done
  ckpt.close()

  loop.run(sigterm_run_helper.config(done + 1), str(workdir))  # rerun: resumes, one more step
  steps = [r["step"] for r in helpers.read_metrics(workdir)]
  assert steps == list(range(1, done + 2))


def selfplay_config(total_steps: int):
  """configs/selfplay_tictactoe.py:cpu: the RAE baselines live in the algorithm state."""
  cfg = helpers.get_config("selfplay_tictactoe", "cpu")
  cfg.total_steps = total_steps
  cfg.checkpoint.every = 1
  cfg.lock()
  return cfg


def algo_state(workdir, step: int) -> dict:
  manager = ocp.CheckpointManager(os.path.join(workdir, "checkpoints"),
                                  item_names=("params", "opt_state", "data", "meta", "algo"))
  state = manager.restore(step, args=ocp.args.Composite(algo=ocp.args.JsonRestore()))["algo"]
  manager.close()
  return state


def test_resume_restores_the_algorithm_state(tmp_path):
  straight, split, legacy = tmp_path / "straight", tmp_path / "split", tmp_path / "legacy"
  loop.run(selfplay_config(3), str(straight))
  loop.run(selfplay_config(2), str(split))
  loop.run(selfplay_config(3), str(split))
  rows_a, rows_b = helpers.read_metrics(straight), helpers.read_metrics(split)
  assert [r["step"] for r in rows_b] == [1, 2, 3]
  for a, b in zip(rows_a, rows_b):
    assert helpers.deterministic(a) == helpers.deterministic(b), a["step"]
  baselines = algo_state(straight, 3)["advantage"]["baseline"]
  assert baselines and baselines == algo_state(split, 3)["advantage"]["baseline"]
  assert baselines != algo_state(split, 2)["advantage"]["baseline"]  # it kept moving
  # A checkpoint written before the algorithm state existed (no "algo" item) still restores, with
  # the initial (empty) state: the baselines restart from 0.
  loop.run(selfplay_config(2), str(legacy))
  shutil.rmtree(legacy / "checkpoints" / "2" / "algo")
  loop.run(selfplay_config(3), str(legacy))
  rows_c = helpers.read_metrics(legacy)
  assert [r["step"] for r in rows_c] == [1, 2, 3]
  assert rows_c[2]["adv/baseline_role0"] != rows_a[2]["adv/baseline_role0"]
