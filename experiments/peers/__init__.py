"""The peers the benchmarks compare against, each in a virtualenv of its own, built reproducibly.

  python -m experiments.peers setup trl          # -> ~/.cache/rlvr_jax/peers/trl (pinned: trl.txt)
  python -m experiments.peers setup tunix
  python -m experiments.peers where trl          # the interpreter the benchmarks will use

Where the benchmarks look for a peer's interpreter, first match wins: the ``--trl-python`` /
``--tunix-python`` flag, the ``TRL_PYTHON`` / ``TUNIX_PYTHON`` variable, then
``$RLVR_PEERS_DIR/<name>/bin/python`` (default ``~/.cache/rlvr_jax/peers``). A peer that was asked for
and cannot run stops the benchmark with the reason and the setup command (`require`), instead of
a table row that says it is missing.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys

PEERS = {"trl": "trl.txt", "tunix": "tunix.txt"}
HERE = pathlib.Path(__file__).resolve().parent
# What each peer's interpreter must import for the benchmark to run.
IMPORTS = {"trl": "import trl, transformers, torch", "tunix": "import tunix, jax, flax"}


class PeerError(RuntimeError):
  """A requested peer is not set up, or its environment cannot import what the benchmark needs."""


def peers_dir() -> pathlib.Path:
  return pathlib.Path(os.environ.get("RLVR_PEERS_DIR", "~/.cache/rlvr_jax/peers")).expanduser()


def default_python(name: str) -> str:
  """The interpreter of peer ``name`` when no flag names one."""
  env = os.environ.get(f"{name.upper()}_PYTHON")
  return env or str(peers_dir() / name / "bin" / "python")


def setup_command(name: str) -> str:
  return f"python -m experiments.peers setup {name}"


def require(name: str, python: str) -> None:
  """Raises PeerError naming why peer ``name`` cannot run with ``python`` and how to set it up."""
  if not pathlib.Path(python).exists():
    raise PeerError(f"peer {name!r}: no interpreter at {python}. Build it with `{setup_command(name)}` "
                    f"(pinned in experiments/peers/{PEERS[name]}), pass --{name}-python PATH, or "
                    f"leave {name} out of --engines")
  done = subprocess.run([python, "-c", IMPORTS[name]], capture_output=True, text=True, timeout=600,
                        cwd=str(pathlib.Path(python).parent))  # away from the checkout's kernels/
  if done.returncode != 0:
    tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
    raise PeerError(f"peer {name!r}: {python} cannot `{IMPORTS[name]}` ({tail}); rebuild it with "
                    f"`{setup_command(name)}`")


def setup(name: str, directory: pathlib.Path | None = None) -> str:
  """Creates (or refreshes) the virtualenv of peer ``name`` with its pinned requirements; returns
  its interpreter."""
  if name not in PEERS:
    raise SystemExit(f"unknown peer {name!r}; choose one of {sorted(PEERS)}")
  directory = directory or peers_dir() / name
  if not (directory / "bin" / "python").exists():
    subprocess.run([sys.executable, "-m", "venv", str(directory)], check=True)
  python = str(directory / "bin" / "python")
  subprocess.run([python, "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
  subprocess.run([python, "-m", "pip", "install", "-q", "-r", str(HERE / PEERS[name])], check=True)
  require(name, python)
  return python


def main(argv: list[str]) -> int:
  if len(argv) != 2 or argv[0] not in ("setup", "where") or argv[1] not in PEERS:
    print(f"usage: python -m experiments.peers setup|where {{{','.join(sorted(PEERS))}}}",
          file=sys.stderr)
    return 2
  action, name = argv
  print(setup(name) if action == "setup" else default_python(name))
  return 0

