"""A NaN/inf loss skips its update, is counted, and stops the run after too many, with the last good
checkpoint intact (issue 5 item 9)."""
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlvr_jax import algorithms
from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers

NAN_ADVANTAGE = "test_nan_advantage"


def _register_nan_advantage():
  if NAN_ADVANTAGE not in algorithms.ADVANTAGES:
    @algorithms.register_advantage(NAN_ADVANTAGE)
    def _nan(rewards, **options):  # pylint: disable=unused-variable
      del options
      return jnp.full_like(rewards, jnp.nan)


def _config(steps, advantage="grpo", max_nonfinite=1):
  helpers.register_test_rewards()
  cfg = helpers.get_config("grpo", "cpu")
  cfg.reward.terms = [dict(name=helpers.DIGITS_REWARD, weight=1.0)]  # non-zero advantages
  cfg.algo.advantage = advantage
  cfg.algo.advantage_options = {}
  cfg.algo.kl_coef = 0.0
  cfg.total_steps = steps
  cfg.checkpoint.every = 1
  cfg.train.max_nonfinite_steps = max_nonfinite
  cfg.lock()
  return cfg


def _params(workdir, step):
  path = workdir / "checkpoints" / str(step) / "params"
  return ocp.StandardCheckpointer().restore(path)


def _leaves(tree):
  return [np.asarray(x) for x in jax.tree.leaves(tree)]


def test_nonfinite_steps_are_skipped_counted_and_stop_the_run(tmp_path, monkeypatch):
  _register_nan_advantage()
  workdir = tmp_path / "run"
  loop.run(_config(2), str(workdir))  # two good steps: checkpoints 1 and 2

  # Steps 3-4 have NaN advantages (so a NaN loss): their updates are skipped and counted; within
  # the limit the run finishes, and its final params are exactly those after step 2. The NaN
  # estimator replaces "grpo" in the registry: a resume may not change config.algo.advantage.
  monkeypatch.setitem(algorithms.ADVANTAGES, "grpo", algorithms.ADVANTAGES[NAN_ADVANTAGE])
  loop.run(_config(4, max_nonfinite=5), str(workdir))
  rows = helpers.read_metrics(workdir)
  assert [r["step"] for r in rows] == [1, 2, 3, 4]
  assert [r["nonfinite_updates"] for r in rows] == [0, 0, 1, 1]
  assert [r["nonfinite_steps_total"] for r in rows[2:]] == [1, 2]
  assert rows[1]["update_norm"] > 0 and rows[2]["update_norm"] == 0.0
  for a, b in zip(_leaves(_params(workdir, 2)), _leaves(_params(workdir, 4))):
    np.testing.assert_array_equal(a, b)

  # Over the limit: a clear error naming the setting and the intact checkpoint, nothing new saved.
  with pytest.raises(RuntimeError, match=r"max_nonfinite_steps=0.*checkpoint \(step 4\)"):
    loop.run(_config(8, max_nonfinite=0), str(workdir))
  assert [r["step"] for r in helpers.read_metrics(workdir)][-1] == 5
  steps = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert steps[-1] == 4
