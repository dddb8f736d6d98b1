"""Workdir safety: one process per run directory, and a resumed run's config checked against the
checkpoint it resumes.

- ``WorkdirLock``: ``<workdir>/.lock`` names the holder (host, pid, start time). A second process
  is refused with that name; a lock whose process is gone (same host, pid not alive, e.g. after
  kill -9) is taken over, and the take-over is said. On an object store (``gs://``), where no
  process can check another host's pids and a preempted VM comes back under a new name, the holder
  refreshes a heartbeat in the lock every minute and a lock silent for five minutes is stale
  (best effort: object stores have no exclusive create through fsspec).
- ``compare_configs``: the differences between the config stored in the checkpoint and the new one.
  Changes that would not restore or that change the algorithm (model, tokenizer, loss, advantage,
  episode, optimizer, warm start) are refused; bookkeeping keys (steps, logging, checkpoint cadence, evaluation
  settings, mesh) change freely; anything else (learning rate, temperature, rewards, data, ...)
  needs ``--allow_config_changes`` and is then listed in the log and in
  ``<workdir>/config_changes.jsonl``.
- ``record_config``: writes ``<workdir>/config.json`` only after those checks, moving a different
  earlier one to ``config.<n>.json`` so no launch's config is lost.
"""
from __future__ import annotations

import datetime
import json
import os
import socket
import threading
import time
from typing import Any, Mapping

from rlvr_jax.training import storage

LOCK_NAME = ".lock"
HEARTBEAT_S = 60.0   # remote locks: how often the holder rewrites its heartbeat
STALE_AFTER_S = 300.0  # remote locks: a heartbeat older than this is a dead holder's

# Keys a resume may never change: they decide the shapes, which algorithm is trained, or the warm
# start the checkpoint grew from.
REFUSED = ("model.init", "model.preset", "model.path", "model.overrides", "model.param_dtype", "tokenizer.",
           "algo.loss", "algo.advantage", "algo.aux_losses", "episode.name", "optim.name", "sft.")
# Keys a resume may change without a flag (how long, how often, what is logged / evaluated, where).
FREE = ("total_steps", "log.", "checkpoint.", "eval.", "export_hf", "export.", "train.max_nonfinite_steps",
        "mesh.", "sharding_rules", "model.remat")


class WorkdirBusy(RuntimeError):
  """Another live process holds the workdir."""


class ConfigChangeError(ValueError):
  """A resume whose config differs from the checkpoint's in a way that is not allowed."""


def _now() -> str:
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:  # exists, owned by someone else
    return True
  return True


class WorkdirLock:
  """An exclusive lock on a workdir, held from ``acquire`` to ``release`` (or process exit)."""

  def __init__(self, workdir: str, *, heartbeat_s: float = HEARTBEAT_S,
               stale_after_s: float = STALE_AFTER_S):
    self.path = storage.join(workdir, LOCK_NAME)
    self.remote = storage.is_remote(workdir)
    self.heartbeat_s, self.stale_after_s = heartbeat_s, stale_after_s
    self.held = False
    self.took_over: dict | None = None  # the stale holder replaced, if any
    self._me: dict = {}
    self._stop = threading.Event()
    self._beat: threading.Thread | None = None

  def _holder(self) -> dict | None:
    try:
      return json.loads(storage.read_text(self.path))
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}  # unreadable: a writer died between create and write

  def acquire(self) -> "WorkdirLock":
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now()}
    if self.remote:
      return self._acquire_remote(me)
    for _ in range(3):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        holder = self._holder()
        if holder is None:
          continue  # released meanwhile: try again
        same_host = holder.get("host") == me["host"]
        pid = holder.get("pid")
        if same_host and pid == me["pid"]:  # this process set up the workdir before (tests,
          os.remove(self.path)              # a notebook re-running a cell): take it again
          continue
        if holder and (not same_host or (isinstance(pid, int) and _alive(pid))):
          where = "this host" if same_host else f"host {holder.get('host')!r}"
          raise WorkdirBusy(
              f"workdir {os.path.dirname(self.path)} is in use by process {pid} on {where} "
              f"(since {holder.get('started')}); wait for it to finish or stop it. If that process "
              f"is gone, delete {self.path}")
        # Stale: the holder died (kill -9, node loss) or left an unreadable file.
        self.took_over = holder
        try:
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      with os.fdopen(fd, "w") as f:
        json.dump(me, f)
      self.held = True
      return self
    raise WorkdirBusy(f"could not take the lock {self.path} (it keeps reappearing)")

  def _acquire_remote(self, me: dict) -> "WorkdirLock":
    holder = self._holder()
    if holder:
      mine = holder.get("host") == me["host"] and holder.get("pid") == me["pid"]
      age = time.time() - float(holder.get("heartbeat", 0.0))
      if not mine and age < self.stale_after_s:
        raise WorkdirBusy(
            f"workdir {storage.dirname(self.path)} is in use by process {holder.get('pid')} on "
            f"host {holder.get('host')!r} (since {holder.get('started')}; its last heartbeat was "
            f"{age:.0f}s ago). A lock without a heartbeat for {self.stale_after_s:.0f}s is taken "
            f"over; if that run is gone and you cannot wait, delete {self.path}")
      if not mine:
        self.took_over = holder
    self._me = dict(me, heartbeat=time.time())
    storage.write_text(self.path, json.dumps(self._me))
    check = self._holder() or {}
    if (check.get("host"), check.get("pid")) != (me["host"], me["pid"]):
      raise WorkdirBusy(f"another process took the lock {self.path} at the same time: {check}")
    self.held = True
    self._stop.clear()
    self._beat = threading.Thread(target=self._heartbeat, name="rlvr_jax-lock", daemon=True)
    self._beat.start()
    return self

  def _heartbeat(self) -> None:
    while not self._stop.wait(self.heartbeat_s):
      try:
        storage.write_text(self.path, json.dumps(dict(self._me, heartbeat=time.time())))
      except Exception:  # pylint: disable=broad-except  (a transient store error: retry next beat)
        pass

  def release(self) -> None:
    if not self.held:
      return
    self._stop.set()
    if self._beat is not None:
      self._beat.join(timeout=10)
    holder = self._holder()
    if holder and holder.get("pid") == os.getpid() and holder.get("host") == socket.gethostname():
      try:
        storage.remove(self.path)
      except FileNotFoundError:
        pass
    self.held = False


def flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
  """{"a.b": leaf}; lists and tuples are leaves (compared whole)."""
  if isinstance(tree, Mapping):
    out: dict[str, Any] = {}
    for k, v in tree.items():
      out.update(flatten(v, f"{prefix}{k}."))
    if not tree and prefix:
      out[prefix[:-1]] = {}
    return out
  return {prefix[:-1]: list(tree) if isinstance(tree, tuple) else tree}


def _matches(key: str, patterns: tuple[str, ...]) -> bool:
  return any(key == p or (p.endswith(".") and key.startswith(p)) or key.startswith(p + ".")
             for p in patterns)


def compare_configs(saved: Mapping, new: Mapping) -> dict[str, dict[str, tuple]]:
  """{"refused" | "flagged" | "free": {key: (checkpoint value, new value)}} of the differences."""
  a, b = flatten(saved), flatten(new)
  out: dict[str, dict[str, tuple]] = {"refused": {}, "flagged": {}, "free": {}}
  missing = object()
  for key in sorted(set(a) | set(b)):
    old, now = a.get(key, missing), b.get(key, missing)
    if old == now:
      continue
    if old is missing and now in (None, {}, []):
      continue  # a key added by a later version of the code, left empty: nothing changed
    pair = (None if old is missing else old, None if now is missing else now)
    if _matches(key, REFUSED):
      out["refused"][key] = pair
    elif _matches(key, FREE):
      out["free"][key] = pair
    else:
      out["flagged"][key] = pair
  return out


def _lines(changes: Mapping[str, tuple]) -> str:
  return "; ".join(f"{k}: {old!r} -> {new!r}" for k, (old, new) in changes.items())


def check_resume(saved: Mapping | None, new: Mapping, *, step: int, checkpoint_dir: str,
                 allow_changes: bool) -> dict[str, dict[str, tuple]]:
  """Raises ConfigChangeError for refused changes, and for flagged ones without ``allow_changes``;
  returns the differences otherwise (empty when there is nothing to resume)."""
  if saved is None:
    return {"refused": {}, "flagged": {}, "free": {}}
  diff = compare_configs(saved, new)
  where = f"the checkpoint at step {step} in {checkpoint_dir}"
  if diff["refused"]:
    raise ConfigChangeError(
        f"cannot resume {where} with this config: these keys decide the model's shapes, the "
        f"algorithm or the warm start, and differ from the checkpoint's: "
        f"{_lines(diff['refused'])}. Use a new --workdir (or restore the original values)")
  if diff["flagged"] and not allow_changes:
    raise ConfigChangeError(
        f"this config differs from {where}: {_lines(diff['flagged'])}. Pass "
        "--allow_config_changes to resume with the new values (they are then logged in "
        "config_changes.jsonl), or use a new --workdir")
  return diff


def record_config(workdir: str, config_json: str, *, step: int,
                  diff: Mapping[str, Mapping[str, tuple]] | None = None) -> str | None:
  """Writes config.json; a different earlier one moves to config.<n>.json (returned). Changes
  accepted on resume are appended to config_changes.jsonl."""
  path = storage.join(workdir, "config.json")
  moved = None
  if storage.exists(path):
    previous = storage.read_text(path)
    if previous.strip() != config_json.strip():
      n = 1
      while storage.exists(storage.join(workdir, f"config.{n}.json")):
        n += 1
      moved = storage.join(workdir, f"config.{n}.json")
      storage.replace(path, moved)
  storage.write_text(path, config_json)
  if diff and (diff.get("flagged") or diff.get("free")):
    storage.append_text(storage.join(workdir, "config_changes.jsonl"), json.dumps(
        {"time": _now(), "resumed_at_step": int(step),
         "changes": {k: list(v) for part in ("flagged", "free")
                     for k, v in diff.get(part, {}).items()}}) + "\n")
  return moved
