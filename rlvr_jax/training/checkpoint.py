"""Orbax checkpoints of a whole run: params, optimizer state, data-iterator state, algorithm state
(per-role baselines, per-prompt statistics, replay buffers: JSON), step, config.

One `Checkpointer` per workdir (``<workdir>/checkpoints/<step>/``). Orbax writes each step into a
temporary directory and renames it when complete, so an interrupted save never leaves a half-written
checkpoint that a resume could pick up. Every process of a multi-host run calls `save` (each writes
the array shards it owns); json items (data state, metadata) are written by process 0.

Restoring onto a different mesh: `restore` takes abstract targets (``jax.ShapeDtypeStruct`` with a
``sharding``) for params and optimizer state and lets orbax reshard on read.
"""
from __future__ import annotations

import json
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from absl import logging

_ITEMS = ("params", "opt_state", "data", "meta", "algo")


def _abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (keeping shardings) for a pytree of arrays, so orbax restores in place."""

  def one(x):
    if isinstance(x, jax.ShapeDtypeStruct):
      return x
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(np.shape(x), x.dtype, sharding=sharding)

  return jax.tree.map(one, tree)


class Checkpointer:
  """Saves and restores the run state under ``<workdir>/checkpoints``.

  Args:
    directory: the checkpoints folder (created if missing).
    max_to_keep: how many recent checkpoints to keep (older ones are deleted); None keeps all.
    async_save: write in a background thread (the loop continues while arrays stream to disk).
  """

  def __init__(self, directory: str, *, max_to_keep: int | None = 3, async_save: bool = False):
    self.directory = os.path.abspath(directory) if "://" not in directory else directory
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max_to_keep, create=True, enable_async_checkpointing=async_save,
        cleanup_tmp_directories=True)
    self._manager = ocp.CheckpointManager(self.directory, options=options, item_names=_ITEMS)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def all_steps(self) -> list[int]:
    return list(self._manager.all_steps())

  def save(self, step: int, *, params: Any, opt_state: Any, data_state: Any,
           rng: jax.Array | None = None, config_json: str, extra: dict | None = None,
           algo_state: dict | None = None, force: bool = True) -> None:
    """Writes step ``step``; ``data_state`` must be JSON-serialisable (grain iterator state);
    ``algo_state`` is the run's algorithm state (dicts, lists, numbers, strings, numpy arrays)."""
    meta = {"step": int(step), "config": json.loads(config_json), "extra": extra or {}}
    if rng is not None:
      meta.update(rng=np.asarray(jax.random.key_data(rng)).tolist(),
                  rng_impl=str(jax.random.key_impl(rng)))
    args = ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        opt_state=ocp.args.StandardSave(opt_state),
        data=ocp.args.JsonSave(_jsonable(data_state)),
        meta=ocp.args.JsonSave(meta),
        algo=ocp.args.JsonSave(_jsonable(algo_state or {})),
    )
    self._manager.save(step, args=args, force=force)

  def reload(self) -> None:
    """Re-reads the steps on disk (after another process moved one)."""
    self._manager.reload()

  def wait(self) -> None:
    self._manager.wait_until_finished()

  def restore(self, step: int | None, *, params: Any, opt_state: Any) -> dict:
    """Restores ``step`` (latest when None) into the structure/shardings of the given templates.

    Returns a dict with params, opt_state, data_state, rng (None if not saved), step, config,
    extra, algo_state (None for a checkpoint written before the algorithm state existed: the
    caller then starts from the initial state).
    """
    if step is None:
      step = self.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint found under {self.directory}")
    has_algo = (epath.Path(self.directory) / str(step) / "algo").exists()
    items = dict(
        params=ocp.args.StandardRestore(_abstract(params)),
        opt_state=ocp.args.StandardRestore(_abstract(opt_state)),
        data=ocp.args.JsonRestore(),
        meta=ocp.args.JsonRestore(),
    )
    if has_algo:
      items["algo"] = ocp.args.JsonRestore()
    out = self._manager.restore(step, args=ocp.args.Composite(**items))
    meta = out["meta"]
    rng = None
    if "rng" in meta:
      rng = jax.random.wrap_key_data(np.asarray(meta["rng"], dtype=np.uint32),
                                     impl=_impl_name(meta.get("rng_impl")))
    return {"params": out["params"], "opt_state": out["opt_state"],
            "data_state": _unjsonable(out["data"]), "rng": rng, "step": int(meta["step"]),
            "config": meta["config"], "extra": meta.get("extra", {}),
            "algo_state": _unjsonable(out["algo"]) if has_algo else None}

  def read_meta(self, step: int) -> dict:
    """Only the json metadata of ``step`` (step, config, extra): cheap, no arrays read."""
    out = self._manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))
    return out["meta"]

  def quarantine(self, step: int, reason: str) -> str:
    """Moves step ``step`` out of the checkpoints folder (to ``<checkpoints>_broken/<step>``, with
    ``reason.txt``) so that neither a resume nor the next save meets it again; returns the new
    path. Nothing is deleted."""
    src = epath.Path(self.directory) / str(step)
    dst_root = epath.Path(str(self.directory).rstrip("/") + "_broken")
    dst_root.mkdir(parents=True, exist_ok=True)
    dst = dst_root / str(step)
    n = 1
    while dst.exists():
      dst, n = dst_root / f"{step}.{n}", n + 1
    src.rename(dst)
    (dst / "reason.txt").write_text(reason + "\n")
    self._manager.reload()
    return str(dst)

  def restore_params(self, step: int | None, *, params: Any) -> tuple[Any, int]:
    """Only the params of ``step`` (latest when None), for evaluation: ``params`` may be abstract
    (``jax.ShapeDtypeStruct`` with shardings). Returns ``(params, step)``."""
    if step is None:
      step = self.latest_step()
    if step is None:
      raise FileNotFoundError(f"no checkpoint found under {self.directory}")
    out = self._manager.restore(
        step, args=ocp.args.Composite(params=ocp.args.StandardRestore(_abstract(params))))
    return out["params"], int(step)

  def close(self) -> None:
    self._manager.wait_until_finished()
    self._manager.close()


def _impl_name(text: str | None) -> str | None:
  # str(key_impl) looks like "PRNGImpl(...threefry2x32...)"; map it back to a registered name.
  if not text:
    return None
  for name in ("threefry2x32", "rbg", "unsafe_rbg"):
    if name in text:
      return name
  return None


def _jsonable(state: Any) -> Any:
  """Grain iterator states may hold bytes; store them base64 so the item stays plain JSON."""
  import base64
  if isinstance(state, bytes):
    return {"__bytes__": base64.b64encode(state).decode("ascii")}
  if isinstance(state, dict):
    return {str(k): _jsonable(v) for k, v in state.items()}
  if isinstance(state, (list, tuple)):
    return [_jsonable(v) for v in state]
  if isinstance(state, np.ndarray):
    return {"__array__": state.tolist(), "dtype": str(state.dtype)}
  if isinstance(state, np.generic):
    return state.item()
  return state


def _unjsonable(state: Any) -> Any:
  import base64
  if isinstance(state, dict):
    if set(state) == {"__bytes__"}:
      return base64.b64decode(state["__bytes__"])
    if set(state) == {"__array__", "dtype"}:
      return np.asarray(state["__array__"], dtype=state["dtype"])
    return {k: _unjsonable(v) for k, v in state.items()}
  if isinstance(state, list):
    return [_unjsonable(v) for v in state]
  return state


def log_restored(restored: dict, directory: str) -> None:
  logging.info("Resumed from %s at step %d", directory, restored["step"])
