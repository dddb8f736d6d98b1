"""Multi-process start-up with plain ``jax.distributed`` (one command per host, no Pathways).

Three ways in:
- explicit: ``coordinator_address``, ``num_processes`` and ``process_id`` (any cluster, and two local
  processes on one CPU machine in the tests);
- auto: ``jax.distributed.initialize()`` with no arguments, which detects TPU VM pod slices and SLURM
  jobs (``--distributed`` on the command line);
- neither: a single process, nothing to do.
"""
from __future__ import annotations

import jax
from absl import logging

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
