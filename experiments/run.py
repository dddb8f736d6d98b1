r"""Main entry point: one RL (or warm-start + RL) run from an ml-collections config.

  python -m experiments.run --config configs/quickstart.py --workdir /tmp/qs
  python -m experiments.run --config configs/dapo.py:cpu --workdir /tmp/dapo \
      --config.optim.lr=1e-5 --config.total_steps=20

Overrides (``--config.a.b=value``) of keys the config does not have are errors (the config is
locked). Re-running with the same ``--workdir`` resumes from its latest checkpoint.

Multi-process (one command per host): add ``--coordinator_address=HOST:PORT --num_processes=N
--process_id=I``; on TPU VMs and under SLURM ``jax.distributed.initialize()`` detects these itself,
so ``--distributed`` alone is enough there. ``--expect_devices=N`` stops the run before step 0
when JAX sees another number of devices (the launch scripts in tpu/ pass it).
"""
from __future__ import annotations

import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with ':ARG' (e.g. configs/grpo.py:cpu).",
    lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory (metrics, checkpoints, eval.json).")
_COORD = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 (multi-process).")
_NPROC = flags.DEFINE_integer("num_processes", None, "Total number of processes (multi-process).")
_PID = flags.DEFINE_integer("process_id", None, "Index of this process (multi-process).")
_DIST = flags.DEFINE_bool(
    "distributed", False, "Call jax.distributed.initialize() with auto-detection (TPU VM, SLURM).")
_GPUS = flags.DEFINE_integer(
    "gpus_per_process", None, "With --distributed under SLURM: GPUs each task drives (default: "
    "from the SLURM variables). Sets JAX's local device ids, which otherwise default to one GPU "
    "per task.")
_EXPECT = flags.DEFINE_integer(
    "expect_devices", None, "Stop before any data or model work unless JAX sees exactly this many "
    "devices in all (the launch scripts pass nodes x accelerators per node).")
_ALLOW = flags.DEFINE_bool(
    "allow_config_changes", False,
    "Resume a workdir whose checkpoint was written with other values of keys such as the learning "
    "rate, temperature, rewards or data (they are listed and logged in config_changes.jsonl). Keys "
    "that decide shapes or the algorithm can never change on resume.")
_VERBOSE = flags.DEFINE_bool(
    "verbose", False, "Show the full traceback of configuration and input errors (by default they "
    "are one line naming the key, file or process at fault).")
_CACHE = flags.DEFINE_string(
    "compilation_cache", os.path.expanduser("~/.cache/rlvr_jax/jit"),
    "Persistent XLA compilation cache directory ('' to disable).")

flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  # Imported here so --help works without initialising JAX.
  import jax
  from rlvr_jax.parallel import multihost
  from rlvr_jax.training import loop

  if not flags.FLAGS["verbosity"].present:
    # Library INFO logs (orbax, grain) drown the one-line-per-step output; --verbosity=0 shows them.
    logging.set_verbosity(logging.WARNING)
  if _CACHE.value:
    jax.config.update("jax_compilation_cache_dir", _CACHE.value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  multihost.initialize(coordinator_address=_COORD.value, num_processes=_NPROC.value,
                       process_id=_PID.value, auto=_DIST.value, gpus_per_process=_GPUS.value)
  logging.info("JAX %s, backend %s, %d devices (%d local), process %d/%d", jax.__version__,
               jax.default_backend(), jax.device_count(), jax.local_device_count(),
               jax.process_index(), jax.process_count())
  try:
    if _EXPECT.value is not None:
      multihost.check_device_count(_EXPECT.value)
    loop.run(_CONFIG.value, _WORKDIR.value, allow_config_changes=_ALLOW.value)
  except user_errors() as e:
    if _VERBOSE.value:
      raise
    print(f"error: {e}\n(run with --verbose for the traceback)", file=sys.stderr)
    sys.exit(2)


def user_errors() -> tuple[type[BaseException], ...]:
  """Errors a user fixes by changing a config, a file or a flag: shown as one line."""
  from rlvr_jax.training import loop, workdir  # pylint: disable=import-outside-toplevel
  return (ValueError, FileNotFoundError, ImportError, workdir.WorkdirBusy, loop.CheckpointError)


if __name__ == "__main__":
  # Keep the console readable: tqdm bars from tfds/transformers and TF chatter off.
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
  app.run(main, argv=sys.argv)
