"""What produced a run: code version, libraries, hardware and command, recorded at every launch.

``run_info()`` gathers them; the trainer writes it to ``<workdir>/run_info.json`` (this launch),
appends it to ``<workdir>/launches.jsonl`` (every launch of the workdir, so a resumed run shows
which code trained which steps) and puts the same fields, as ``run_info``, in the first
metrics.jsonl row of each launch. A result cited later can then be traced to a commit, a dirty
tree, the jax / flax / orbax versions and the accelerator it ran on.
"""
from __future__ import annotations

import datetime
import importlib.metadata
import os
import pathlib
import platform
import socket
import subprocess
import sys
from typing import Any

# Distributions whose versions change results or how a run restores (reward libraries included).
PACKAGES = ("rlvr_jax", "jax", "jaxlib", "flax", "optax", "orbax-checkpoint", "grain",
            "ml-collections", "numpy", "tokenizers", "safetensors", "math-verify",
            "latex2sympy2-extended", "reasoning-gym", "tensorstore", "etils")


def package_versions(names: tuple[str, ...] = PACKAGES) -> dict[str, str | None]:
  out: dict[str, str | None] = {}
  for name in names:
    try:
      out[name] = importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
      out[name] = None
  return out


def _git(root: pathlib.Path, *args: str) -> str | None:
  try:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          timeout=10, check=False)
  except (OSError, subprocess.SubprocessError):
    return None
  return done.stdout.strip() if done.returncode == 0 else None


def git_info(root: str | os.PathLike | None = None) -> dict[str, Any]:
  """Commit, dirty flag and branch of the checkout holding the code (``root``: default the
  directory above the rlvr_jax package); ``commit`` None outside a git checkout (an installed
  wheel), where the package version identifies the code."""
  if root is None:
    import rlvr_jax  # pylint: disable=import-outside-toplevel
    root = pathlib.Path(rlvr_jax.__file__).resolve().parent.parent
  root = pathlib.Path(root)
  commit = _git(root, "rev-parse", "HEAD")
  if commit is None:
    return {"commit": None, "dirty": None, "branch": None, "root": str(root)}
  status = _git(root, "status", "--porcelain", "--untracked-files=no")
  return {"commit": commit, "dirty": bool(status) if status is not None else None,
          "branch": _git(root, "rev-parse", "--abbrev-ref", "HEAD"), "root": str(root)}


def device_info() -> dict[str, Any]:
  import jax  # pylint: disable=import-outside-toplevel
  devices = jax.devices()
  return {"platform": devices[0].platform if devices else None,
          "device_kind": devices[0].device_kind if devices else None,
          "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
          "process_count": jax.process_count(), "process_index": jax.process_index()}


def run_info(*, workdir: str | None = None, argv: list[str] | None = None) -> dict[str, Any]:
  """Everything above as one JSON-able dict."""
  return {
      "time": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC"),
      "command": list(sys.argv if argv is None else argv),
      "cwd": os.getcwd(), "host": socket.gethostname(), "workdir": workdir,
      "python": platform.python_version(), "os": platform.platform(),
      "git": git_info(), "packages": package_versions(), "devices": device_info(),
  }
