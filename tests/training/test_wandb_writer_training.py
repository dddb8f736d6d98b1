"""WandbWriter in W&B's offline mode, read back from the run files it leaves.

No network: the environment points W&B at a closed local port (base URL and proxies), removes any
credentials, moves W&B's home folders into a temporary one, and Python sockets may connect only to
the local machine. The ``run-<id>.wandb`` files are W&B's transaction log (the LevelDB log format,
a ``:W&B`` header, records that are ``wandb_internal_pb2.Record`` protos); ``_records`` parses it
with W&B's own protobuf classes.
"""
import glob
import json
import math
import os
import socket
import struct
import sys
import time

import numpy as np
import pytest

from rlvr_jax.training import wandb_writer
from rlvr_jax.training.wandb_writer import WandbWriter

pytest.importorskip("wandb")
from wandb.proto import wandb_internal_pb2  # pylint: disable=wrong-import-position

_CLOSED = "http://127.0.0.1:9"  # the discard port: nothing listens, a connection fails at once
_TEST_SETTINGS = {"console": "off", "x_disable_stats": True, "silent": True}


def _records(path):
  """Yields the Record protos of a ``.wandb`` file (32 KiB blocks of 7-byte-headed chunks)."""
  with open(path, "rb") as f:
    data = f.read()
  ident, magic, version = struct.unpack("<4sHB", data[:7])
  assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), data[:7]
  block, pos, pending = 32768, 7, b""
  while pos + 7 <= len(data):
    left = block - pos % block
    if left < 7:  # a block's tail too short for a header is padding
      pos += left
      continue
    _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
    if kind == 0:  # zero padding to the block's end
      pos += left
      continue
    if pos + 7 + length > len(data):  # still being written
      return
    pending += data[pos + 7:pos + 7 + length]
    pos += 7 + length
    if kind in (1, 4):  # a full record, or the last chunk of one
      record = wandb_internal_pb2.Record()
      record.ParseFromString(pending)
      pending = b""
      yield record


def _read_run(sync_dir, timeout_s=30.0):
  """{"run": RunRecord, "config": {...}, "history": [{...}], "summary": {...}} of one run folder.

  ``run.finish()`` only tells wandb-core the run is done; the core closes the file a moment later
  (measured: up to about a second on a busy 2-core machine), so this waits for the exit record."""
  (path,) = glob.glob(os.path.join(sync_dir, "run-*.wandb"))
  deadline = time.monotonic() + timeout_s
  while not any(r.WhichOneof("record_type") == "exit" for r in _records(path)):
    assert time.monotonic() < deadline, f"{path} has no exit record after {timeout_s} s"
    time.sleep(0.05)
  out = {"run": None, "config": {}, "history": [], "summary": {}}

  def value(item):
    return json.loads(item.value_json)

  for record in _records(path):
    kind = record.WhichOneof("record_type")
    if kind == "run":
      out["run"] = record.run
      out["config"].update({u.key: value(u) for u in record.run.config.update})
    elif kind == "config":
      out["config"].update({u.key: value(u) for u in record.config.update})
    elif kind == "history":
      out["history"].append({i.key or "/".join(i.nested_key): value(i)
                             for i in record.history.item})
    elif kind == "summary":
      out["summary"].update({u.key or "/".join(u.nested_key): value(u)
                             for u in record.summary.update})
  return out


@pytest.fixture(scope="module")
def offline_env(tmp_path_factory):
  """W&B with no way out: env, home folders, and local-only Python sockets."""
  home = tmp_path_factory.mktemp("wandb_home")
  mp = pytest.MonkeyPatch()
  for key in list(os.environ):
    if key.startswith("WANDB_"):
      mp.delenv(key)
  mp.setenv("HOME", str(home))
  mp.setenv("NETRC", str(home / "no.netrc"))
  for key, value in {"WANDB_MODE": "offline", "WANDB_SILENT": "true", "WANDB_BASE_URL": _CLOSED,
                     "WANDB_CONFIG_DIR": str(home / "config"),
                     "WANDB_CACHE_DIR": str(home / "cache"), "WANDB_DATA_DIR": str(home / "data"),
                     "WANDB_DISABLE_GIT": "true",
                     "HTTP_PROXY": _CLOSED, "HTTPS_PROXY": _CLOSED, "NO_PROXY": ""}.items():
    mp.setenv(key, value)
  real_connect = socket.socket.connect
  attempts = []

  def local_only(sock, address):
    if sock.family != socket.AF_UNIX and address[0] not in ("127.0.0.1", "::1", "localhost"):
      attempts.append(address)
      raise OSError(f"network blocked in this test: {address}")
    return real_connect(sock, address)

  mp.setattr(socket.socket, "connect", local_only)
  yield attempts
  mp.undo()


@pytest.fixture(scope="module")
def runs(offline_env, tmp_path_factory):
  """A run that logs steps 1-3, and its resume from step 1 that logs steps 2-4 again."""
  workdir = str(tmp_path_factory.mktemp("run"))
  written = []

  def write_text(path, text):
    written.append(path)
    with open(path, "w") as f:
      f.write(text)

  settings = {"project": "tests", "group": "g", "tags": ("a", "b"), "settings": _TEST_SETTINGS}
  config = {"algo": {"lr": 1e-6, "clip": (0.2, 0.28)}, "total_steps": 4, "eval.temperature": None}
  first = WandbWriter(settings, workdir=workdir, config=config,
                      run_info={"git_commit": "abc123", "versions": {"jax": "0.10.2"}},
                      write_text=write_text)
  rows = [{"reward_mean": 0.25, "accuracy": np.float32(0.5), "kl": float("nan"),
           "response_len_correct": None, "phase": "rl"},
          {"reward_mean": np.asarray(0.5), "accuracy": 0.75, "kl": float("inf"), "stopped": True},
          {"reward_mean": 0.75, "accuracy": 1, "kl": 0.01, "loss": "-inf"}]
  for step, row in enumerate(rows, start=1):
    first.log(step, row)
  first.summary("eval", {"after": {"greedy_accuracy": 0.5, "per_problem": [1, 0]},
                         "steps": 3, "note": "ok"})
  first_dir = first.sync_dir
  first.close()
  first.close()  # a second close does nothing

  second = WandbWriter(settings, workdir=workdir, config={**config, "total_steps": 6},
                       write_text=write_text)
  for step in (2, 3, 4):  # resumed from the step-1 checkpoint: steps 2 and 3 come again
    second.log(step, {"reward_mean": step / 10})
  second_dir = second.sync_dir
  second.close()
  return {"workdir": workdir, "first": first, "second": second, "written": written,
          "first_run": _read_run(first_dir), "second_run": _read_run(second_dir),
          "first_dir": first_dir, "second_dir": second_dir}


def test_offline_run_records_metrics_and_config(runs, offline_env):
  first = runs["first_run"]
  assert runs["first"].mode == "offline"
  assert runs["first_dir"].startswith(os.path.join(runs["workdir"], "wandb", "offline-run-"))
  history = first["history"]
  assert [row["step"] for row in history] == [1, 2, 3]
  assert [row["reward_mean"] for row in history] == [0.25, 0.5, 0.75]
  assert [row["accuracy"] for row in history] == [0.5, 0.75, 1]
  assert math.isnan(history[0]["kl"]) and history[1]["kl"] == math.inf
  assert history[1]["stopped"] == 1
  assert history[2]["loss"] == -math.inf  # metrics.jsonl spells it "-inf"
  assert not any("phase" in row or "response_len_correct" in row for row in history)
  config = first["config"]
  assert config["algo.lr"] == 1e-6 and config["algo.clip"] == [0.2, 0.28]
  assert config["total_steps"] == 4 and config["eval.temperature"] is None
  assert config["run_info.git_commit"] == "abc123" and config["run_info.versions.jax"] == "0.10.2"
  run = first["run"]
  assert run.run_id == runs["first"].run_id and run.project == "tests" and run.run_group == "g"
  assert list(run.tags) == ["a", "b"]
  assert run.display_name == os.path.basename(runs["workdir"])
  summary = first["summary"]
  assert summary["eval/after/greedy_accuracy"] == 0.5 and summary["eval/steps"] == 3
  assert summary["eval/note"] == "ok" and "eval/after/per_problem" not in summary
  assert offline_env == []  # no Python socket tried to leave the machine
  logs = "".join(open(p, errors="replace").read()
                 for p in glob.glob(os.path.join(runs["workdir"], "wandb", "**", "*.log"),
                                    recursive=True))
  assert "127.0.0.1:9" not in logs  # and W&B's core never tried its (closed) server


def test_resume_continues_the_same_run_and_relogs_steps(runs):
  first, second = runs["first"], runs["second"]
  assert second.run_id == first.run_id
  id_file = os.path.join(runs["workdir"], wandb_writer.ID_FILE)
  assert runs["written"] == [id_file]  # written once, on the first start
  assert open(id_file).read().strip() == first.run_id
  assert runs["second_dir"] != runs["first_dir"]
  resumed = runs["second_run"]
  # Both starts ask to resume the id, so `wandb sync` of the two folders fills one W&B run.
  assert resumed["run"].run_id == first.run_id
  assert runs["first_run"]["run"].resume and resumed["run"].resume
  # Steps 2 and 3 come again after the resume; none is dropped.
  assert [row["step"] for row in resumed["history"]] == [2, 3, 4]
  assert [row["reward_mean"] for row in resumed["history"]] == [0.2, 0.3, 0.4]
  assert resumed["config"]["total_steps"] == 6


def test_new_workdir_gets_a_new_id_and_an_explicit_id_wins(offline_env, tmp_path):
  a = wandb_writer.run_id_for(str(tmp_path / "a"))
  assert a != wandb_writer.run_id_for(str(tmp_path / "b"))
  assert a == wandb_writer.run_id_for(str(tmp_path / "a"))
  with WandbWriter({"id": "chosen-id", "settings": _TEST_SETTINGS}, workdir=str(tmp_path / "a"),
                   config={}) as writer:
    assert writer.run_id == "chosen-id" and writer.sync_dir.endswith("-chosen-id")
  assert writer.run is None  # the context closed it


def test_remote_workdir_keeps_wandb_files_local(offline_env, tmp_path, monkeypatch):
  files = {}

  def read_text(path):
    if path not in files:
      raise FileNotFoundError(path)
    return files[path]

  monkeypatch.delenv("WANDB_DIR", raising=False)
  monkeypatch.setattr(wandb_writer.tempfile, "mkdtemp", lambda prefix: str(tmp_path / "local"))
  writer = WandbWriter({"settings": _TEST_SETTINGS}, workdir="gs://bucket/runs/r1/",
                       read_text=read_text, write_text=files.__setitem__)
  try:
    assert files == {"gs://bucket/runs/r1/wandb_id": writer.run_id + "\n"}
    assert writer.dir == str(tmp_path / "local") and writer.sync_dir.startswith(writer.dir)
    assert writer.run.name == "r1"
  finally:
    writer.close()


def test_disabled_imports_nothing(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "wandb", None)  # importing wandb would now fail
  for settings in (None, {"mode": "disabled"}):
    writer = WandbWriter(settings, workdir=str(tmp_path), config={"a": 1})
    writer.log(1, {"x": 1.0})
    writer.summary("eval", {"x": 1.0})
    writer.close()
    assert not writer.enabled and writer.mode == "disabled"
  assert os.listdir(tmp_path) == []  # no id file either


def test_missing_package_names_the_extra(monkeypatch, tmp_path):
  monkeypatch.setitem(sys.modules, "wandb", None)
  with pytest.raises(ImportError, match=r"pip install 'rlvr_jax\[wandb\]'"):
    WandbWriter({"mode": "offline"}, workdir=str(tmp_path))


@pytest.mark.parametrize("settings, message", [
    ({"projet": "x"}, r"config\.log\.wandb\.projet is not a W&B setting; the keys are mode, "),
    ({"mode": "dryrun"}, r"config\.log\.wandb\.mode='dryrun' must be one of 'auto', 'online'"),
    ({"project": "a/b"}, r"config\.log\.wandb\.project='a/b' has a character W&B refuses \(/\)"),
    ({"id": "x" * 65}, r"config\.log\.wandb\.id=.* is longer than W&B's 64"),
    ({"name": 3}, r"config\.log\.wandb\.name=3 must be a non-empty string or None"),
    ({"tags": ("a", 1)}, r"config\.log\.wandb\.tags=.* must be a sequence of strings"),
    ({"settings": "console=off"}, r"config\.log\.wandb\.settings=.* must be a mapping"),
    ("offline", r"config\.log\.wandb must be a mapping of W&B settings or None, not str"),
])
def test_bad_settings_name_the_key(settings, message):
  with pytest.raises(ValueError, match=message):
    wandb_writer.check_settings(settings)


def test_settings_from_a_locked_config_dict():
  import ml_collections  # pylint: disable=import-outside-toplevel
  config = ml_collections.ConfigDict({"wandb": dict(wandb_writer.SETTINGS, mode="disabled")})
  config.lock()
  wandb_writer.check_settings(config.wandb)
  config.wandb.project = "p"
  config.wandb.tags = ("a",)
  wandb_writer.check_settings(config.wandb)


def test_mode_auto(tmp_path):
  netrc = tmp_path / "netrc"
  base = {"HOME": str(tmp_path), "NETRC": str(netrc)}
  assert wandb_writer.resolve_mode(None, base)[0] == "offline"
  assert wandb_writer.resolve_mode("auto", {**base, "WANDB_API_KEY": "k" * 40})[0] == "online"
  assert wandb_writer.resolve_mode("auto", {**base, "WANDB_MODE": "dryrun"})[0] == "offline"
  assert wandb_writer.resolve_mode("offline", {**base, "WANDB_MODE": "online"})[0] == "offline"
  netrc.write_text("machine api.wandb.ai\n  login user\n  password " + "k" * 40 + "\n")
  assert wandb_writer.resolve_mode(None, base) == ("online", "W&B credentials found")
  assert wandb_writer.resolve_mode(None, {**base, "WANDB_BASE_URL": "https://wandb.example"})[0] \
      == "offline"  # the login is for another host


def test_online_without_credentials_is_refused(offline_env, tmp_path):
  with pytest.raises(RuntimeError, match=r"no W&B credentials.*wandb login"):
    WandbWriter({"mode": "online"}, workdir=str(tmp_path))


def test_trainer_logs_to_wandb_offline(offline_env, tmp_path):
  """configs/...:cpu with config.log.wandb.mode="offline": the W&B run holds every metrics.jsonl
  row (by the trainer's step), the run config and run_info, and the eval summary."""
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  from tests.training import rl_loop_helpers as helpers  # pylint: disable=import-outside-toplevel
  cfg = helpers.get_config("quickstart", "cpu")
  cfg.total_steps, cfg.eval.size, cfg.export_hf = 2, 4, False
  cfg.log.wandb.mode = "offline"
  cfg.log.wandb.project = "trainer-test"
  cfg.log.wandb.settings = _TEST_SETTINGS
  workdir = tmp_path / "run"
  loop.run(cfg, str(workdir))
  (sync_dir,) = glob.glob(str(workdir / "wandb" / "offline-run-*"))
  run = _read_run(sync_dir)
  rows = [json.loads(x) for x in (workdir / "metrics.jsonl").read_text().splitlines()]
  history = [h for h in run["history"] if "reward_mean" in h]
  assert [h["step"] for h in history] == [r["step"] for r in rows] == [1, 2]
  assert [h["reward_mean"] for h in history] == pytest.approx([r["reward_mean"] for r in rows])
  assert run["config"]["algo.loss"] == cfg.algo.loss
  assert run["config"]["run_info.devices.device_count"] >= 1
  assert any("eval" in k for k in run["summary"]), sorted(run["summary"])
  assert (workdir / "wandb_id").read_text().strip() == run["run"].run_id
  assert not offline_env  # no connection attempted
