"""Writes tests/training/golden/cpu_metrics.json: the deterministic metrics of every configs/*.py:cpu
variant (two RL steps, plus the digit-fraction test reward: ``rl_loop_helpers.pinned_config``),
which test_loop_configs_training pins.

Regenerate only on purpose, when a change is meant to alter what a config does, and say so in the
commit message:  python -m tests.training.make_golden_metrics [name ...]
"""
from __future__ import annotations

import json
import sys
import tempfile

import jax

from tests.training import rl_loop_helpers as helpers

GOLDEN = helpers.REPO / "tests" / "training" / "golden" / "cpu_metrics.json"


def main(names):
  jax.config.update("jax_compilation_cache_dir", str(helpers.JAX_CACHE))
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  golden = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
  for name in names or helpers.config_names():
    cfg = helpers.pinned_config(name)
    cfg.lock()
    with tempfile.TemporaryDirectory() as d:
      loop.run(cfg, d)
      golden[name] = [helpers.deterministic(r) for r in helpers.read_metrics(d)]
    print(name, "done", flush=True)
  GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
  main(sys.argv[1:])
