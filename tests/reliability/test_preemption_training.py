"""Preemption from the first second: a signal during the warm start saves its state and the next
run continues it with the same batches; SIGTERM and a first Ctrl-C stop cleanly (exit 0, saying what
was saved), a second Ctrl-C aborts."""
from __future__ import annotations

import os
import pathlib
import signal
import subprocess
import sys

import numpy as np
import orbax.checkpoint as ocp
import pytest

from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers


def _cfg(sft_steps: int):
  cfg = helpers.get_config("quickstart", "cpu")
  cfg.sft.steps, cfg.sft.log_every = sft_steps, 1
  cfg.total_steps = 0
  cfg.eval.size = 0
  return cfg


class _StopAt(loop._StopFlag):  # pylint: disable=protected-access
  """Asks to stop at its ``n``-th question (the first is after loading, then one per SFT step)."""

  def __init__(self, n: int):
    super().__init__()
    self.n, self.asked = n, 0

  def requested(self) -> bool:
    self.asked += 1
    return self.asked >= self.n


def _sft_params(workdir):
  return [np.asarray(x) for x in
          __import__("jax").tree.leaves(ocp.StandardCheckpointer().restore(workdir / "sft" / "params"))]


def test_a_stopped_warm_start_continues_with_the_same_batches(tmp_path):
  stopped, straight = tmp_path / "stopped", tmp_path / "straight"
  with pytest.raises(loop.Stopped, match=r"during the warm start, before step 6/12; its state is "
                     r"saved in .*sft/partial"):
    loop.setup(_cfg(12), str(stopped), stop=_StopAt(7))
  assert (stopped / "sft" / "partial").is_dir() and not (stopped / "sft" / "params").exists()
  assert not (stopped / ".lock").exists()  # released on the way out
  env, _ = loop.setup(_cfg(12), str(stopped))  # continues at step 5 (0-based) and finishes
  env.lock.release()
  assert not (stopped / "sft" / "partial").exists()
  env, _ = loop.setup(_cfg(12), str(straight))
  env.lock.release()
  for a, b in zip(_sft_params(stopped), _sft_params(straight), strict=True):
    np.testing.assert_array_equal(a, b)


def _start(workdir: pathlib.Path) -> subprocess.Popen:
  cmd = [sys.executable, "-m", "experiments.run", "--config", "configs/quickstart.py:cpu",
         "--workdir", str(workdir), "--config.sft.steps=100000", "--config.sft.log_every=1",
         "--config.eval.size=0", f"--compilation_cache={helpers.JAX_CACHE}"]
  proc = subprocess.Popen(cmd, cwd=helpers.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=dict(os.environ, PYTHONPATH=str(helpers.REPO)))
  for line in proc.stdout:  # wait until the warm start is running
    if line.startswith("sft step 3/"):
      return proc
  raise AssertionError(f"the run ended before its warm start (rc {proc.wait()})")


@pytest.mark.parametrize("signals", [[signal.SIGTERM], [signal.SIGINT]])
def test_sigterm_or_a_first_ctrl_c_during_the_warm_start_stops_cleanly(tmp_path, signals):
  proc = _start(tmp_path / "run")
  for sig in signals:
    proc.send_signal(sig)
  out = proc.communicate(timeout=120)[0]
  assert proc.returncode == 0, out[-3000:]
  assert "stopping at the next safe point" in out
  assert "stopped by signal during the warm start, before step" in out
  assert (tmp_path / "run" / "sft" / "partial").is_dir()
  assert not (tmp_path / "run" / ".lock").exists()


def test_a_second_ctrl_c_aborts_and_the_handlers_are_restored(capsys):
  # In-process: two signals sent back to back to a child may be delivered as one.
  before = signal.getsignal(signal.SIGINT)
  stop = loop._StopFlag().install()  # pylint: disable=protected-access
  try:
    os.kill(os.getpid(), signal.SIGINT)
    assert stop.set and "press Ctrl-C again to abort" in capsys.readouterr().out
    with pytest.raises(KeyboardInterrupt):
      os.kill(os.getpid(), signal.SIGINT)
  finally:
    stop.uninstall()
  assert signal.getsignal(signal.SIGINT) is before
