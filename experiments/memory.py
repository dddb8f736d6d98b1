r"""Memory plan of a run config: bytes per device, phase by phase, and whether it fits.

  python -m experiments.memory --config configs/dapo.py
  python -m experiments.memory --config configs/gspo.py --config.mesh.data=1 \
      --config.mesh.tensor=8 --config.rollout.max_rows_per_call=32 \
      --config.algo.micro_batch_size=1 --config.model.remat=True
  python -m experiments.memory --config configs/quickstart.py --devices 8 --memory_gib 16

Prints a table of what one device holds for the config's command (params, optimizer state,
reference model, rollout KV cache, update gradients and activations with and without remat, eval)
under the config's mesh, against the hardware its card names (``config.hardware``, or --devices /
--memory_gib). When that does not fit, it also prints the settings that do (mesh, rollout rows per
sampler call, micro-batch rows, eval rows per call, remat) as overrides for the run command, and
exits with status 1; it exits with 1 too when prompt + new tokens exceed the model's positions.
Shapes only (``jax.eval_shape``), on the CPU: a 32B model plans in seconds anywhere.
The method and its constants: rlvr_jax/parallel/memory.py.
"""
from __future__ import annotations

import os
import sys

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # shapes only: never take an accelerator

from absl import app, flags  # noqa: E402
from ml_collections import config_flags  # noqa: E402

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Path to a config file, optionally with ':ARG' (e.g. configs/grpo.py:cpu).",
    lock_config=True)
_DEVICES = flags.DEFINE_integer("devices", None,
                                "Devices to plan for (default config.hardware.count).")
_MEMORY = flags.DEFINE_float("memory_gib", None,
                             "Memory of one device in GiB (default config.hardware.memory_gib).")
_USABLE = flags.DEFINE_float("usable", None, "Fraction of a device's memory the plan may fill "
                             "(default rlvr_jax.parallel.memory.USABLE).")

flags.mark_flags_as_required(["config"])


def command_of(argv: list[str]) -> str:
  """The plan's own command line (the config, its overrides and the hardware flags)."""
  own = ("--config", "--devices", "--memory_gib", "--usable")
  keep, take_next = [], False
  for arg in argv[1:]:
    if take_next or arg.startswith(own):
      keep.append(arg)
      take_next = arg in own  # "--config PATH": the value is the next argument
  return " ".join(["python -m experiments.memory"] + keep)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from rlvr_jax.parallel import memory  # pylint: disable=import-outside-toplevel
  memory_bytes = _MEMORY.value * memory.GIB if _MEMORY.value else None
  try:
    result = memory.plan(_CONFIG.value, devices=_DEVICES.value, device_memory_bytes=memory_bytes,
                         usable=_USABLE.value or memory.USABLE)
  except ValueError as e:
    print(f"memory plan: {e}", file=sys.stderr)
    return 2
  command = command_of(sys.argv)
  print(memory.format_plan(result, command))
  if result["hardware"] is not None:
    print(memory.card_line(result, command))
  needed, available = result["context"]
  return 1 if result["fits"] is False or needed > available else 0


if __name__ == "__main__":
  app.run(main)
