"""Workdir safety: one process per run directory, and a resumed run's config checked against the
checkpoint it resumes.

- ``WorkdirLock``: ``<workdir>/.lock`` names the holder (host, pid, start time). A second process
  is refused with that name; a lock whose process is gone (same host, pid not alive, e.g. after
  kill -9) is taken over, and the take-over is said.
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
from typing import Any, Mapping

LOCK_NAME = ".lock"

# Keys a resume may never change: they decide the shapes, which algorithm is trained, or the warm
# start the checkpoint grew from.
REFUSED = ("model.init", "model.preset", "model.overrides", "model.param_dtype", "tokenizer.",
           "algo.loss", "algo.advantage", "algo.aux_losses", "episode.name", "optim.name", "sft.")
# Keys a resume may change without a flag (how long, how often, what is logged / evaluated, where).
FREE = ("total_steps", "log.", "checkpoint.", "eval.", "export_hf", "train.max_nonfinite_steps",
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

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, LOCK_NAME)
    self.held = False
    self.took_over: dict | None = None  # the stale holder replaced, if any

  def _holder(self) -> dict | None:
    try:
      with open(self.path) as f:
        return json.load(f)
    except FileNotFoundError:
      return None
    except (OSError, ValueError):
      return {}  # unreadable: a writer died between create and write

  def acquire(self) -> "WorkdirLock":
    me = {"host": socket.gethostname(), "pid": os.getpid(), "started": _now()}
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

  def release(self) -> None:
    if not self.held:
      return
    holder = self._holder()
    if holder and holder.get("pid") == os.getpid():
      try:
        os.remove(self.path)
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
  path = os.path.join(workdir, "config.json")
  moved = None
  if os.path.exists(path):
    with open(path) as f:
      previous = f.read()
    if previous.strip() != config_json.strip():
      n = 1
      while os.path.exists(os.path.join(workdir, f"config.{n}.json")):
        n += 1
      moved = os.path.join(workdir, f"config.{n}.json")
      os.replace(path, moved)
  with open(path + ".tmp", "w") as f:
    f.write(config_json)
  os.replace(path + ".tmp", path)
  if diff and (diff.get("flagged") or diff.get("free")):
    with open(os.path.join(workdir, "config_changes.jsonl"), "a") as f:
      f.write(json.dumps({"time": _now(), "resumed_at_step": int(step),
                          "changes": {k: list(v) for part in ("flagged", "free")
                                      for k, v in diff.get(part, {}).items()}}) + "\n")
  return moved
