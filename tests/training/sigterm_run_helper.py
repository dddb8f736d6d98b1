"""Runs a long configs/dr_grpo.py:cpu run in its own process, for the SIGTERM test.

  python tests/training/sigterm_run_helper.py WORKDIR TOTAL_STEPS

Same setup as the in-process tests (test rewards registered, the repository's compilation cache),
so the programs compiled by the other loop tests are reused.
"""
import os
import sys

sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))

import jax  # pylint: disable=wrong-import-position

from tests.training import rl_loop_helpers as helpers  # pylint: disable=wrong-import-position


def config(total_steps: int):
  helpers.register_test_rewards()
  cfg = helpers.get_config("dr_grpo", "cpu")
  cfg.total_steps = total_steps
  cfg.reward.terms = [dict(name="reasoning_gym", weight=1.0),
                      dict(name=helpers.DIGITS_REWARD, weight=1.0)]
  cfg.lock()
  return cfg


def main(workdir: str, total_steps: int) -> None:
  jax.config.update("jax_compilation_cache_dir", str(helpers.JAX_CACHE))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
  jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  loop.run(config(total_steps), workdir)


if __name__ == "__main__":
  main(sys.argv[1], int(sys.argv[2]))
