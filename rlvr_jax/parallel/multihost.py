"""Multi-process start-up with plain ``jax.distributed`` (one command per host, no Pathways).

Three ways in:
- explicit: ``coordinator_address``, ``num_processes`` and ``process_id`` (any cluster, and two local
  processes on one CPU machine in the tests);
- auto: ``jax.distributed.initialize()``, which detects TPU VM pod slices and SLURM jobs
  (``--distributed`` on the command line). Under SLURM on GPUs the local device ids are computed
  here (``slurm_local_device_ids``): JAX's own default gives each task one GPU, its SLURM_LOCALID;
- neither: a single process, nothing to do.
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from absl import logging
from jax.experimental import multihost_utils

_INITIALIZED = False


def initialize(*, coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, auto: bool = False,
               gpus_per_process: int | None = None) -> None:
  """Initialises jax.distributed once; raises ValueError on an incomplete explicit setting.

  ``gpus_per_process`` (auto mode under SLURM only): GPUs each task drives; inferred from the
  SLURM variables when None (see ``slurm_local_device_ids``).
  """
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
    kwargs = auto_initialize_kwargs(os.environ, gpus_per_process)
    if kwargs:
      logging.info("jax.distributed.initialize(%s) (SLURM task %s)", kwargs,
                   os.environ.get("SLURM_PROCID"))
    jax.distributed.initialize(**kwargs)
    _INITIALIZED = True
  if _INITIALIZED:
    logging.info("jax.distributed: process %d of %d, %d local / %d global devices",
                 jax.process_index(), jax.process_count(), jax.local_device_count(),
                 jax.device_count())


def check_device_count(expected: int) -> None:
  """Raises ValueError naming both counts when JAX does not see ``expected`` devices in all.

  Called right after ``initialize`` so a launch that leaves accelerators idle (or sees the wrong
  machines) stops before any data or model work.
  """
  found = jax.device_count()
  if found != expected:
    raise ValueError(
        f"expected {expected} devices in all (--expect_devices) but JAX sees {found}: "
        f"{jax.local_device_count()} local on process {jax.process_index()} of "
        f"{jax.process_count()}, backend {jax.default_backend()}. Check the launch: processes per "
        "node, GPUs per process (CUDA_VISIBLE_DEVICES) and --distributed")


# ------------------------------------------------------------------------------------------------
# Local device ids under SLURM
#
# Given only the SLURM variables, jax.distributed.initialize() restricts each process to one GPU,
# the one numbered SLURM_LOCALID (jax._src.clusters.ClusterEnv). That leaves 7 of 8 GPUs idle with
# one process per node, and with one GPU bound per task (CUDA_VISIBLE_DEVICES of length 1) asks
# for ordinal SLURM_LOCALID, which does not exist. The ids JAX takes are CUDA ordinals, that is
# positions in what the process sees (CUDA_VISIBLE_DEVICES renumbers from 0), so:
# - a task that sees exactly its own g GPUs (SLURM bound them: --gpus-per-task) gets 0..g-1;
# - a task that sees all g * T GPUs of its node (T tasks there, no per-task binding) gets the
#   block SLURM_LOCALID * g .. SLURM_LOCALID * g + g - 1.
# ------------------------------------------------------------------------------------------------

# The variables JAX's SLURM detection needs (jax._src.clusters.slurm_cluster).
_SLURM_STEP_VARS = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID",
                    "SLURM_LOCALID")
_VISIBLE_VARS = ("CUDA_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES", "ROCR_VISIBLE_DEVICES")


def _count(value: str | None) -> int | None:
  """The integer at the end of a SLURM count such as '4' or 'a100:4' (None if absent)."""
  if not value:
    return None
  tail = value.rsplit(":", 1)[-1]
  return int(tail) if tail.isdigit() else None


def slurm_tasks_on_node(environ: Mapping[str, str]) -> int:
  """Tasks of this job step on this process's node (SLURM_NTASKS_PER_NODE, or the node's entry of
  SLURM_STEP_TASKS_PER_NODE such as '2(x3),1'); 1 when neither is set."""
  if (n := _count(environ.get("SLURM_NTASKS_PER_NODE"))) is not None:
    return n
  spec = environ.get("SLURM_STEP_TASKS_PER_NODE") or environ.get("SLURM_TASKS_PER_NODE")
  if spec:
    per_node = []
    for part in spec.split(","):
      count, _, repeat = part.partition("(x")
      per_node += [int(count)] * (int(repeat.rstrip(")")) if repeat else 1)
    node = int(environ.get("SLURM_NODEID", "0"))
    if node < len(per_node):
      return per_node[node]
  return 1


def visible_devices(environ: Mapping[str, str]) -> tuple[str, list[str]] | None:
  """(variable, entries) of the first *_VISIBLE_DEVICES variable set, or None."""
  for name in _VISIBLE_VARS:
    if name in environ:
      return name, [v for v in environ[name].split(",") if v.strip()]
  return None


def slurm_local_device_ids(environ: Mapping[str, str],
                           gpus_per_process: int | None = None) -> list[int] | None:
  """The ``local_device_ids`` a SLURM task should give jax.distributed.initialize(), or None to
  leave JAX's choice (not a SLURM job step, JAX_LOCAL_DEVICE_IDS set, or no GPUs known).

  ``gpus_per_process`` (g): GPUs this task drives; when None it is SLURM_GPUS_PER_TASK, else the
  GPUs visible to the task (or SLURM_GPUS_ON_NODE) divided by the tasks on the node. Raises
  ValueError when what the task sees fits neither layout described above.
  """
  if not all(v in environ for v in _SLURM_STEP_VARS) or environ.get("JAX_LOCAL_DEVICE_IDS"):
    return None
  tasks = slurm_tasks_on_node(environ)
  local = int(environ["SLURM_LOCALID"])
  seen = visible_devices(environ)
  visible = len(seen[1]) if seen else None
  g = gpus_per_process
  if g is None:
    g = _count(environ.get("SLURM_GPUS_PER_TASK"))
  if g is None:
    on_node = visible if visible is not None else _count(environ.get("SLURM_GPUS_ON_NODE"))
    if on_node and on_node % tasks == 0:
      g = on_node // tasks
  if not g:
    return None
  where = f"SLURM task {environ['SLURM_PROCID']} (local task {local} of {tasks} on its node)"
  if local >= tasks:
    raise ValueError(f"{where}: SLURM_LOCALID={local} is not below the {tasks} tasks on the node")
  if visible == g:
    return list(range(g))
  if visible is None or visible == g * tasks:
    return list(range(local * g, local * g + g))
  raise ValueError(
      f"{where} should drive {g} GPUs but sees {visible} ({seen[0]}={environ[seen[0]]}); "
      f"expected {g} (bound per task) or {g * tasks} (the whole node). Launch with "
      f"--gpus-per-task={g}, or fix --gpus_per_process")


def auto_initialize_kwargs(environ: Mapping[str, str] | None = None,
                           gpus_per_process: int | None = None) -> dict[str, Any]:
  """Arguments for jax.distributed.initialize() in auto mode: ``{}`` (let JAX detect everything:
  TPU VMs, and SLURM without GPUs) or ``{'local_device_ids': [...]}`` for a SLURM task on GPUs."""
  environ = os.environ if environ is None else environ
  ids = slurm_local_device_ids(environ, gpus_per_process)
  return {} if ids is None else {"local_device_ids": ids}


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
