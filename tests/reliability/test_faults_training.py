"""Faults around a real (tiny) run: a resume with a changed config, a corrupt newest checkpoint, a
second process on the workdir, and user errors on the command line. Each case asserts that the
message names the culprit and that nothing is lost (checkpoints, config.json, metrics rows)."""
from __future__ import annotations

import json
import os
import pathlib
import subprocess
import sys

import pytest

from rlvr_jax.training import loop, workdir as workdir_lib
from tests.reliability import test_workdir as lock_helpers
from tests.training import rl_loop_helpers as helpers


def _cfg(steps: int):
  cfg = helpers.get_config("grpo", "cpu")
  cfg.total_steps = steps
  cfg.checkpoint.every = 1
  cfg.checkpoint.max_to_keep = 3
  return cfg


def _steps(workdir) -> list[int]:
  return [r["step"] for r in helpers.read_metrics(workdir)]


def test_resume_with_a_changed_config(tmp_path):
  run = str(tmp_path / "run")
  loop.run(_cfg(1), run)
  original = pathlib.Path(run, "config.json").read_text()

  changed = _cfg(2)
  changed.optim.lr = 3e-4
  with pytest.raises(workdir_lib.ConfigChangeError, match=r"optim.lr: 0.0001 -> 0.0003.*"
                     r"--allow_config_changes"):
    loop.run(changed, run)
  assert pathlib.Path(run, "config.json").read_text() == original  # untouched by the refusal

  bigger = _cfg(2)
  bigger.model.overrides.hidden_size = 128
  with pytest.raises(workdir_lib.ConfigChangeError, match=r"model.overrides.hidden_size: 64 -> 128"):
    loop.run(bigger, run, allow_config_changes=True)

  loop.run(changed, run, allow_config_changes=True)  # accepted with the flag, and recorded
  assert _steps(run) == [1, 2]
  assert json.loads(pathlib.Path(run, "config.1.json").read_text())["optim"]["lr"] == 1e-4
  assert json.loads(pathlib.Path(run, "config.json").read_text())["optim"]["lr"] == 3e-4
  (change,) = [json.loads(x) for x in pathlib.Path(run, "config_changes.jsonl").read_text().split("\n")
               if x]
  assert change["resumed_at_step"] == 1
  assert change["changes"]["optim.lr"] == [1e-4, 3e-4] and "total_steps" in change["changes"]
  assert not pathlib.Path(run, ".lock").exists()  # released at the end


def _corrupt(step_dir: pathlib.Path) -> None:
  files = sorted(p for p in (step_dir / "params").rglob("*") if p.is_file() and p.parent.name == "d")
  assert files
  for p in files:
    p.write_bytes(p.read_bytes()[: max(1, p.stat().st_size // 2)])  # truncated


def test_corrupt_newest_checkpoint_falls_back_to_the_intact_one(tmp_path, capsys):
  run = tmp_path / "run"
  loop.run(_cfg(2), str(run))
  _corrupt(run / "checkpoints" / "2")

  refusing = _cfg(3)
  refusing.checkpoint.fallback = False
  with pytest.raises(loop.CheckpointError, match=r"newest checkpoint, step 2 .* does not restore "
                     r"\(.*\); the newest intact one is step 1"):
    loop.run(refusing, str(run))
  assert (run / "checkpoints" / "2").is_dir()  # refusing moves nothing

  capsys.readouterr()
  loop.run(_cfg(3), str(run))
  out = capsys.readouterr().out
  line = next(x for x in out.splitlines() if x.startswith("checkpoint step 2"))
  assert "does not restore" in line and "resuming from step 1" in line
  assert "dropped 1 row(s) after step 1" in out  # step 2's row is written again
  assert _steps(run) == [1, 2, 3]  # no duplicate rows
  broken = run / "checkpoints_broken" / "2"
  assert (broken / "reason.txt").read_text().strip() and (broken / "params").is_dir()
  assert sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()) == [1, 2, 3]


def test_total_steps_below_the_checkpoint_is_refused(tmp_path):
  run = tmp_path / "run"
  loop.run(_cfg(2), str(run))
  with pytest.raises(ValueError, match=r"config.total_steps=1 is below the step of the checkpoint "
                     r"this workdir resumes \(2, in .*\).*experiments.eval --workdir"):
    loop.run(_cfg(1), str(run))
  assert _steps(run) == [1, 2]


def test_a_second_process_on_the_workdir_is_refused_before_any_work(tmp_path):
  run = tmp_path / "run"
  run.mkdir()
  holder = lock_helpers._holder(run)  # pylint: disable=protected-access
  try:
    with pytest.raises(workdir_lib.WorkdirBusy, match=f"process {holder.pid} on this host"):
      loop.run(_cfg(1), str(run))
    assert not (run / "config.json").exists() and not (run / "checkpoints").exists()
  finally:
    holder.kill()
    holder.wait()


def test_command_line_user_errors_are_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(helpers.REPO), JAX_PLATFORMS="cpu")
  base = [sys.executable, "-m", "experiments.run", "--config", "configs/grpo.py:cpu",
          "--workdir", str(tmp_path / "run"), "--compilation_cache="]
  done = subprocess.run(base + ["--config.optim.lr=-1"], cwd=helpers.REPO, env=env,
                        capture_output=True, text=True, timeout=300)
  assert done.returncode == 2
  lines = [x for x in done.stderr.splitlines() if x.strip()]
  assert lines == ["error: config.optim.lr=-1.0 is out of range: it must be (0, inf)",
                   "(run with --verbose for the traceback)"], done.stderr
  verbose = subprocess.run(base + ["--config.optim.lr=-1", "--verbose"], cwd=helpers.REPO, env=env,
                           capture_output=True, text=True, timeout=300)
  assert verbose.returncode != 0 and "Traceback" in verbose.stderr


def test_eval_command_line_errors_are_one_line(tmp_path):
  env = dict(os.environ, PYTHONPATH=str(helpers.REPO), JAX_PLATFORMS="cpu")
  done = subprocess.run([sys.executable, "-m", "experiments.eval", "--workdir", str(tmp_path / "no")],
                        cwd=helpers.REPO, env=env, capture_output=True, text=True, timeout=300)
  assert done.returncode == 2
  assert [x for x in done.stderr.splitlines() if x.strip()] == [
      f"error: --workdir={str(tmp_path / 'no')!r} is not a directory",
      "(run with --verbose for the traceback)"], done.stderr
