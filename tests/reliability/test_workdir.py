"""Workdir safety without a training run: the lock (a live holder is named, a dead one is taken
over), the resume config check, the config history, and metrics rows truncated on resume."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap

import pytest

from rlvr_jax.training import metrics as metrics_lib
from rlvr_jax.training import workdir as workdir_lib

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _holder(workdir) -> subprocess.Popen:
  """A process that takes the lock of ``workdir`` and waits."""
  code = textwrap.dedent(f"""
      import sys, time
      from rlvr_jax.training import workdir
      workdir.WorkdirLock({str(workdir)!r}).acquire()
      print("locked", flush=True)
      time.sleep(120)
  """)
  proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                          env=dict(os.environ, PYTHONPATH=REPO))
  assert proc.stdout.readline().strip() == "locked"
  return proc


def test_a_second_process_is_refused_naming_the_holder_and_a_dead_holder_is_taken_over(tmp_path):
  proc = _holder(tmp_path)
  try:
    with pytest.raises(workdir_lib.WorkdirBusy) as e:
      workdir_lib.WorkdirLock(str(tmp_path)).acquire()
    assert f"in use by process {proc.pid} on this host" in str(e.value)
    assert str(tmp_path / ".lock") in str(e.value)
  finally:
    proc.send_signal(signal.SIGKILL)  # dies holding the lock, as after kill -9
    proc.wait()
  lock = workdir_lib.WorkdirLock(str(tmp_path)).acquire()
  assert lock.took_over["pid"] == proc.pid
  assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
  lock.release()
  assert not (tmp_path / ".lock").exists()


def test_a_holder_on_another_host_is_never_taken_over(tmp_path):
  (tmp_path / ".lock").write_text(json.dumps({"host": "other-node-7", "pid": 1, "started": "x"}))
  with pytest.raises(workdir_lib.WorkdirBusy, match="process 1 on host 'other-node-7'"):
    workdir_lib.WorkdirLock(str(tmp_path)).acquire()


def test_an_unreadable_lock_is_stale_and_the_same_process_may_lock_again(tmp_path):
  (tmp_path / ".lock").write_text("{half")
  lock = workdir_lib.WorkdirLock(str(tmp_path)).acquire()
  assert lock.took_over == {}
  again = workdir_lib.WorkdirLock(str(tmp_path)).acquire()  # e.g. a notebook re-running a cell
  assert again.held and json.loads((tmp_path / ".lock").read_text())["host"] == socket.gethostname()


SAVED = {"total_steps": 20, "optim": {"lr": 1e-6, "name": "adamw"}, "model": {"preset": "tiny",
         "overrides": {"hidden_size": 64}}, "rollout": {"temperature": 1.0}, "eval": {"size": 100},
         "sft": {"steps": 0}}


def _changed(**updates):
  cfg = json.loads(json.dumps(SAVED))
  for key, value in updates.items():
    *path, last = key.split("__")
    node = cfg
    for p in path:
      node = node[p]
    node[last] = value
  return cfg


def test_compare_sorts_changes_into_refused_flagged_and_free():
  new = _changed(total_steps=40, optim__lr=2e-6, model__overrides__hidden_size=128, eval__size=5)
  diff = workdir_lib.compare_configs(SAVED, new)
  assert diff == {"refused": {"model.overrides.hidden_size": (64, 128)},
                  "flagged": {"optim.lr": (1e-6, 2e-6)},
                  "free": {"eval.size": (100, 5), "total_steps": (20, 40)}}


def test_an_empty_key_added_by_a_later_version_is_not_a_change():
  new = _changed()
  new["rollout"]["schedule_options"] = {}
  new["rollout"]["temperature_end"] = None
  assert workdir_lib.compare_configs(SAVED, new) == {"refused": {}, "flagged": {}, "free": {}}
  new["rollout"]["schedule_options"] = {"decay0": 4.0}
  assert workdir_lib.compare_configs(SAVED, new)["flagged"] == {
      "rollout.schedule_options.decay0": (None, 4.0)}


def test_resume_refuses_shape_changes_even_with_the_flag():
  new = _changed(model__overrides__hidden_size=128)
  with pytest.raises(workdir_lib.ConfigChangeError, match=r"shapes, the algorithm or the warm "
                     r"start.*model.overrides.hidden_size: 64 -> 128.*new --workdir"):
    workdir_lib.check_resume(SAVED, new, step=20, checkpoint_dir="/ck", allow_changes=True)


def test_resume_needs_the_flag_for_a_learning_rate_change():
  new = _changed(optim__lr=2e-6, rollout__temperature=0.7)
  with pytest.raises(workdir_lib.ConfigChangeError, match=r"step 20 in /ck: optim.lr: 1e-06 -> "
                     r"2e-06; rollout.temperature: 1.0 -> 0.7. Pass --allow_config_changes"):
    workdir_lib.check_resume(SAVED, new, step=20, checkpoint_dir="/ck", allow_changes=False)
  diff = workdir_lib.check_resume(SAVED, new, step=20, checkpoint_dir="/ck", allow_changes=True)
  assert set(diff["flagged"]) == {"optim.lr", "rollout.temperature"}
  # Nothing to resume: no check.
  assert workdir_lib.check_resume(None, new, step=0, checkpoint_dir="/ck",
                                  allow_changes=False)["flagged"] == {}


def test_record_config_keeps_every_earlier_config(tmp_path):
  assert workdir_lib.record_config(str(tmp_path), '{"a": 1}', step=0) is None
  assert workdir_lib.record_config(str(tmp_path), '{"a": 1}', step=0) is None  # unchanged
  moved = workdir_lib.record_config(str(tmp_path), '{"a": 2}', step=5,
                                    diff={"flagged": {"a": (1, 2)}, "free": {}})
  assert moved == str(tmp_path / "config.1.json")
  assert json.loads((tmp_path / "config.1.json").read_text()) == {"a": 1}
  assert json.loads((tmp_path / "config.json").read_text()) == {"a": 2}
  workdir_lib.record_config(str(tmp_path), '{"a": 3}', step=9)
  assert json.loads((tmp_path / "config.2.json").read_text()) == {"a": 2}
  changes = [json.loads(line) for line in (tmp_path / "config_changes.jsonl").read_text().splitlines()]
  assert len(changes) == 1 and changes[0]["resumed_at_step"] == 5
  assert changes[0]["changes"] == {"a": [1, 2]}


def test_truncate_rows_drops_steps_after_the_checkpoint_and_a_cut_line(tmp_path):
  path = tmp_path / "metrics.jsonl"
  rows = [{"step": s, "reward_mean": 0.1 * s} for s in (1, 2, 3, 4)]
  path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 5, "rew')
  assert metrics_lib.truncate_rows(str(path), 2) == 3  # steps 3, 4 and the cut row
  assert [json.loads(line)["step"] for line in path.read_text().splitlines()] == [1, 2]
  assert metrics_lib.truncate_rows(str(path), 2) == 0
  assert metrics_lib.truncate_rows(str(tmp_path / "none.jsonl"), 2) == 0


def test_resume_refuses_another_model_path():
  saved = _changed()
  saved["model"]["path"] = "/models/a"
  new = _changed()
  new["model"]["path"] = "/models/b"
  with pytest.raises(workdir_lib.ConfigChangeError, match=r"model.path: '/models/a' -> '/models/b'"):
    workdir_lib.check_resume(saved, new, step=20, checkpoint_dir="/ck", allow_changes=True)
