"""Benchmark peers are found at a reproducible place, never a machine-specific path, and a requested
peer that cannot run stops the benchmark with the reason and the setup command."""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest

from experiments import peers

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_default_interpreters(monkeypatch, tmp_path):
  monkeypatch.delenv("TRL_PYTHON", raising=False)
  monkeypatch.setenv("RLVR_PEERS_DIR", str(tmp_path))
  assert peers.default_python("trl") == str(tmp_path / "trl" / "bin" / "python")
  monkeypatch.setenv("TRL_PYTHON", "/somewhere/python")
  assert peers.default_python("trl") == "/somewhere/python"
  for name, file in peers.PEERS.items():  # every peer has pinned requirements
    pins = [l for l in (peers.HERE / file).read_text().splitlines() if l and not l.startswith("#")]
    assert pins and all("==" in l for l in pins), (name, pins)


def test_missing_or_broken_peer_names_the_fix(tmp_path):
  with pytest.raises(peers.PeerError, match=r"no interpreter at /nope/python.*experiments.peers setup trl"):
    peers.require("trl", "/nope/python")
  # An interpreter that exists but lacks the peer's packages (this venv has no tunix).
  with pytest.raises(peers.PeerError, match=r"cannot `import tunix.*No module named 'tunix'"):
    peers.require("tunix", sys.executable)


@pytest.mark.parametrize("cmd", [
    ["experiments.bench_grpo_step", "--engines", "rlvr_jax,trl", "--trl-python", "/nope/python"],
    ["experiments.bench_sampler", "--peers", "transformers,tunix", "--tunix-python", "/nope/python"],
])
def test_a_requested_peer_that_cannot_run_fails_the_benchmark(cmd):
  done = subprocess.run([sys.executable, "-m", *cmd], cwd=REPO, capture_output=True, text=True,
                        timeout=300, env=dict(os.environ, PYTHONPATH=str(REPO)))
  assert done.returncode == 2, (done.stdout[-1000:], done.stderr[-2000:])
  assert "no interpreter at /nope/python" in done.stderr and "experiments.peers setup" in done.stderr
