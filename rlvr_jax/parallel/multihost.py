"""Multi-process start-up with plain ``jax.distributed`` (one command per host, no Pathways).

Three ways in:
- explicit: ``coordinator_address``, ``num_processes`` and ``process_id`` (any cluster, and two local
  processes on one CPU machine in the tests);
- auto: ``jax.distributed.initialize()`` with no arguments, which detects TPU VM pod slices and SLURM
  jobs (``--distributed`` on the command line);
- neither: a single process, nothing to do.
"""
from __future__ import annotations

import json
from typing import Any, Sequence

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

_INITIALIZED = False


def initialize(*, coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False) -> None:
  """Initialises jax.distributed once; raises ValueError on an incomplete explicit setting."""
  global _INITIALIZED
  explicit = [coordinator_address, num_processes, process_id]
  if _INITIALIZED:
    return
  if any(v is not None for v in explicit):
    if any(v is None for v in explicit):
      raise ValueError(
          "multi-process runs need all of --coordinator_address, --num_processes and --process_id "
          f"(got coordinator_address={coordinator_address!r}, num_processes={num_processes!r}, "
          f"process_id={process_id!r}); or use --distributed for auto-detection on TPU VMs / SLURM")
    if not 0 <= process_id < num_processes:
      raise ValueError(f"--process_id={process_id} must be in [0, {num_processes})")
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
    _INITIALIZED = True
  elif auto:
    jax.distributed.initialize()
    _INITIALIZED = True
  if _INITIALIZED:
    logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())


def is_primary() -> bool:
  """Process 0 writes logs, metrics and json files; every process writes its checkpoint shards."""
  return jax.process_index() == 0


# ------------------------------------------------------------------------------------------------
# Host data across processes
#
# The RL loop keeps its host-side data (prompts, sampled tokens, rewards, training rows) identical on
# every process, so host decisions (dynamic sampling, mini-batch shuffles, metrics) cannot diverge.
# Each process loads and scores only its own rows; these helpers exchange them. A process's row j is
# global row j * S + i (S processes, i = process index): exactly the order in which one process
# with an S times larger batch reads the same grain stream (rlvr_jax.data.pipeline), so S processes
# and one process see the same global batch in the same order.
# ------------------------------------------------------------------------------------------------


def barrier(name: str) -> None:
  """Waits until every process has reached ``name`` (no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def allgather_object(obj: Any) -> list[Any]:
  """Every process's ``obj`` (JSON-serialisable: lists, dicts, numbers, strings), in process order.

  Payloads are padded to a power of two bytes so a run compiles a handful of gather programs.
  """
  if jax.process_count() == 1:
    return [obj]
  data = np.frombuffer(json.dumps(obj).encode("utf-8"), np.uint8)
  sizes = np.asarray(multihost_utils.process_allgather(np.asarray([data.size], np.int32)))
  sizes = sizes.reshape(-1)
  width = 1 << max(8, int(sizes.max()) - 1).bit_length()
  padded = np.zeros((width,), np.uint8)
  padded[:data.size] = data
  everyone = np.asarray(multihost_utils.process_allgather(padded))  # [S, width]
  return [json.loads(everyone[i, :sizes[i]].tobytes().decode("utf-8")) for i in range(len(sizes))]


def any_process(flag: bool) -> bool:
  """True on every process if ``flag`` is True on any (e.g. a SIGTERM that reached only some hosts,
  or reached them at different steps: all must checkpoint and stop at the same step)."""
  if jax.process_count() == 1:
    return bool(flag)
  return any(allgather_object(bool(flag)))


def interleave(per_process: Sequence[Sequence[Any]]) -> list[Any]:
  """Global rows from per-process rows: row j of process i becomes row j * S + i."""
  counts = {len(rows) for rows in per_process}
  if len(counts) > 1:
    raise ValueError(f"processes hold different numbers of rows {[len(r) for r in per_process]}; "
                     "every process must contribute the same number")
  return [rows[j] for j in range(len(per_process[0])) for rows in per_process]


def gather_rows(local_rows: Sequence[Any]) -> list[Any]:
  """All processes' rows in global order (see the section comment); the input itself with one
  process. Rows must be JSON-serialisable (token-id lists, floats, dicts)."""
  if jax.process_count() == 1:
    return list(local_rows)
  return interleave(allgather_object(list(local_rows)))


def own_rows(num_rows: int) -> np.ndarray:
  """Indices of the global rows that this process loaded (and scores): i, i + S, i + 2S, ..."""
  return np.arange(jax.process_index(), num_rows, jax.process_count())


def to_host(tree: Any) -> Any:
  """A pytree of (possibly multi-process) jax Arrays as numpy arrays holding the full global value,
  on every process."""

  def one(x):
    if isinstance(x, jax.Array) and not x.is_fully_addressable and not x.is_fully_replicated:
      return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)

  return jax.tree.map(one, tree)


def global_array(value: np.ndarray, sharding: jax.sharding.Sharding) -> jax.Array:
  """A jax Array with ``sharding`` from a host array that holds the full global value on every
  process; each process copies only the slices its own devices hold."""
  value = np.asarray(value)
  return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def put_tree(tree: Any, shardings: Any) -> Any:
  """``jax.device_put(tree, shardings)`` that also works across processes (where every process holds
  the same host values, e.g. a model initialised from the same seed or loaded from one file)."""
  if jax.process_count() == 1:
    return jax.device_put(tree, shardings)
  # ``shardings`` may be a prefix of ``tree`` (one sharding per nnx.Variable node): map over it.
  return jax.tree.map(
      lambda s, sub: jax.tree.map(lambda x: global_array(np.asarray(x), s), sub), shardings, tree)
