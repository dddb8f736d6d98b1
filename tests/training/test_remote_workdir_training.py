"""A run whose workdir is ``gs://...`` writes every file there and resumes from there.

``gs://`` is a fake object store (tests/training/fake_gcs.py: fsspec's local filesystem under a
temporary root, refusing append mode like GCS does), reached through the same epath / fsspec path a
real bucket takes with gcsfs. Orbax checkpoints are the one exception: orbax streams arrays through
tensorstore's own GCS driver, which cannot be pointed at a fake, so here the checkpoint directory
``gs://bucket/run/checkpoints`` is mapped onto the fake's local folder; against a real bucket that
part is tested only by orbax itself.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from rlvr_jax.training import checkpoint, loop, storage, workdir as workdir_lib
from tests.training import fake_gcs
from tests.training import rl_loop_helpers as helpers


@pytest.fixture
def gcs(tmp_path, monkeypatch):
  fake = fake_gcs.install(tmp_path / "gcs")
  real_init = checkpoint.Checkpointer.__init__

  def local_orbax(self, directory, **kwargs):  # see the module docstring
    if directory.startswith("gs://"):
      directory = os.path.join(fake.root, directory[len("gs://"):])
    real_init(self, directory, **kwargs)

  monkeypatch.setattr(checkpoint.Checkpointer, "__init__", local_orbax)
  yield fake
  fake.fail_with = None


def test_storage_basics_on_an_object_store(gcs):
  root = "gs://bucket/run"
  storage.write_text(f"{root}/a.json", "{}")
  assert storage.read_text(f"{root}/a.json") == "{}" and storage.isfile(f"{root}/a.json")
  storage.append_text(f"{root}/changes.jsonl", "x\n")
  storage.append_text(f"{root}/changes.jsonl", "y\n")  # no append on GCS: read + rewrite
  assert storage.read_text(f"{root}/changes.jsonl") == "x\ny\n"
  log = storage.AppendLog(f"{root}/metrics.jsonl", flush_every_s=3600)
  log.write_line('{"step": 1}')
  assert not storage.exists(f"{root}/metrics.jsonl")  # buffered until a flush
  log.flush()
  log.write_line('{"step": 2}')
  log.close()
  assert storage.read_text(f"{root}/metrics.jsonl").splitlines() == ['{"step": 1}', '{"step": 2}']
  again = storage.AppendLog(f"{root}/metrics.jsonl")  # a resumed run keeps the earlier rows
  again.write_line('{"step": 3}')
  again.close()
  assert len(storage.read_text(f"{root}/metrics.jsonl").splitlines()) == 3
  with storage.staged_dir(f"{root}/tok") as out:
    os.makedirs(os.path.join(out, "sub"))
    for name in ("tokenizer.json", "sub/x.txt"):
      with open(os.path.join(out, name), "w") as f:
        f.write(name)
  with storage.local_copy(f"{root}/tok") as local:
    assert open(os.path.join(local, "sub", "x.txt")).read() == "sub/x.txt"
  assert storage.listdir(f"{root}/tok") == ["sub", "tokenizer.json"]
  with pytest.raises(NotImplementedError):  # the fake really refuses appends
    storage.as_path(f"{root}/a.json").open("a")


def test_missing_credentials_fail_at_start_naming_the_path(gcs, tmp_path):
  gcs.fail_with = PermissionError("403 Forbidden: no credentials for this bucket")
  with pytest.raises(storage.StorageError, match=r"gs://bucket/nocred.*credentials"):
    storage.check_access("gs://bucket/nocred")
  cfg = helpers.get_config("quickstart", "cpu")
  t0 = time.time()
  with pytest.raises(storage.StorageError, match="gs://bucket/nocred"):
    loop.run(cfg, "gs://bucket/nocred")
  assert time.time() - t0 < 30  # refused before any data, model or compilation work
  assert not (tmp_path / "gcs" / "bucket" / "nocred").exists()


def test_without_gcsfs_the_error_names_the_package():
  """No fake here (a fresh process): this machine has no gcsfs, the case of a fresh install."""
  code = ("from rlvr_jax.training import storage\n"
          "storage.check_access('gs://some-bucket/run')\n")
  done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                        env=dict(os.environ, PYTHONPATH=str(helpers.REPO)))
  try:
    import gcsfs  # noqa: F401  pylint: disable=unused-import,import-outside-toplevel
    pytest.skip("gcsfs is installed here: the failure would be about credentials instead")
  except ImportError:
    pass
  assert done.returncode != 0
  assert "gs://some-bucket/run" in done.stderr and "gcsfs" in done.stderr, done.stderr[-2000:]


def test_remote_lock_heartbeat(gcs):
  path = "gs://bucket/locked"
  first = workdir_lib.WorkdirLock(path, heartbeat_s=0.2).acquire()
  time.sleep(0.5)
  beat = json.loads(storage.read_text(f"{path}/.lock"))["heartbeat"]
  assert time.time() - beat < 0.45  # refreshed by the holder's thread
  # Another process (here: another pid in the lock file) is refused while the heartbeat is fresh.
  storage.write_text(f"{path}/.lock", json.dumps(
      {"host": "other-vm", "pid": 1, "started": "x", "heartbeat": time.time()}))
  first._stop.set()  # pylint: disable=protected-access  (stop rewriting it)
  with pytest.raises(workdir_lib.WorkdirBusy, match="other-vm"):
    workdir_lib.WorkdirLock(path).acquire()
  # ... and taken over once the heartbeat is older than stale_after_s (a preempted VM).
  storage.write_text(f"{path}/.lock", json.dumps(
      {"host": "other-vm", "pid": 1, "started": "x", "heartbeat": time.time() - 600}))
  second = workdir_lib.WorkdirLock(path).acquire()
  assert second.took_over["host"] == "other-vm"
  second.release()
  assert not storage.exists(f"{path}/.lock")


def _config(total_steps: int):
  helpers.register_test_rewards()
  cfg = helpers.get_config("dapo", "cpu")
  cfg.total_steps = total_steps
  cfg.reward.terms = list(cfg.reward.terms) + [dict(name=helpers.DIGITS_REWARD, weight=1.0)]
  cfg.batch.builder_options.dynamic_sampling.metric = "reward"
  cfg.eval.size, cfg.eval.before, cfg.eval.after = 4, True, True
  cfg.checkpoint.every = 1
  cfg.export_hf = True
  cfg.export.every = 1
  return cfg


def test_run_and_resume_in_a_bucket(gcs, tmp_path, monkeypatch):
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)  # nothing may land in the current directory either
  loop.run(_config(2), "gs://bucket/run")
  run = tmp_path / "gcs" / "bucket" / "run"
  names = set(os.listdir(run))
  for expected in ("config.json", "metrics.jsonl", "run_info.json", "launches.jsonl",
                   "eval_before.json", "eval.json", "eval_samples.jsonl", "tokenizer",
                   "export", "exports", "tensorboard", "checkpoints"):
    assert expected in names, (expected, sorted(names))
  assert not (run / ".lock").exists()  # released
  assert {"config.json", "model.safetensors", "generation_config.json", "tokenizer.json"} <= set(
      os.listdir(run / "export"))
  assert os.listdir(run / "exports") == ["step_1"]  # every step but the last (that is export/)
  assert os.listdir(run / "tensorboard")
  rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2]
  assert rows[0]["run_info"]["devices"]["device_count"] >= 1 and "run_info" not in rows[1]
  info = json.loads((run / "run_info.json").read_text())
  assert info["workdir"] == "gs://bucket/run" and info["packages"]["jax"]
  assert not os.listdir(cwd)

  loop.run(_config(3), "gs://bucket/run")  # resume from the bucket
  rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
  assert [r["step"] for r in rows] == [1, 2, 3] and "run_info" in rows[2]
  assert len((run / "launches.jsonl").read_text().splitlines()) == 2
  assert "config.1.json" in os.listdir(run)  # the first launch's config is kept
  assert sorted(os.listdir(run / "checkpoints"))[-1] == "3"

  # The entry points that read a finished run read it from the bucket too.
  from experiments import eval as eval_lib  # pylint: disable=import-outside-toplevel
  from experiments import export as export_cli  # pylint: disable=import-outside-toplevel
  cfg, out = eval_lib.resolve("gs://bucket/run", None)
  assert out == "gs://bucket/run"
  eval_lib.apply_overrides(cfg, size=4, num_samples=2)
  record = eval_lib.evaluate(cfg, workdir="gs://bucket/run", step=3, out_dir=out)
  assert record["path"] == "gs://bucket/run/eval_step3.json"
  assert {"eval_step3.json", "eval_step3_samples.jsonl"} <= set(os.listdir(run))
  assert eval_lib.load_record("gs://bucket/run/eval_step3.json")["step"] == 3
  done = export_cli.export("gs://bucket/run", step=3, dtype="bf16")
  assert done["out"] == "gs://bucket/run/exports/step_3"
  assert "model.safetensors" in os.listdir(run / "exports" / "step_3")
  assert not os.listdir(cwd)
