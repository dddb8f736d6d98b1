r"""Start-up cost: ``python -X importtime`` totals of the modules a run imports, per checkout.

    python -m experiments.bench_import                       # this checkout
    python -m experiments.bench_import --checkout /tmp/old   # a second checkout, side by side

Each module is imported ``--repeats`` times, each time in a fresh interpreter (``-X importtime``
reports cumulative microseconds per module; the row is the top-level module's total), and the
median is printed. A second checkout (``git worktree add /tmp/old <rev>``) gives the before /
after table in one run, on one machine, with the same interpreter and packages.
"""
from __future__ import annotations

import argparse
import os
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]
MODULES = ("rlvr_jax", "rlvr_jax.training.loop", "rlvr_jax.eval", "experiments.run")


def import_seconds(module: str, checkout: pathlib.Path) -> float:
  """Cumulative import time of ``module`` in a fresh interpreter run from ``checkout``."""
  env = dict(os.environ, PYTHONPATH=str(checkout))
  done = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                        cwd=checkout, env=env, capture_output=True, text=True, check=True)
  for line in done.stderr.splitlines():  # "import time: self | cumulative | name"
    parts = [p.strip() for p in line.split("|")]
    if len(parts) == 3 and parts[2] == module:
      return int(parts[1]) / 1e6
  raise RuntimeError(f"no importtime row for {module} in {checkout}:\n{done.stderr[-2000:]}")


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--checkout", action="append", default=[],
                      help="another checkout to time beside this one (repeatable)")
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()
  checkouts = [pathlib.Path(c).resolve() for c in args.checkout] + [REPO]
  heads = {c: subprocess.run(["git", "describe", "--always", "--dirty"], cwd=c, capture_output=True,
                             text=True).stdout.strip() or c.name for c in checkouts}
  print("| module | " + " | ".join(f"{heads[c]} (s)" for c in checkouts) + " |")
  print("|---|" + "---:|" * len(checkouts))
  for module in MODULES:
    row = [statistics.median(import_seconds(module, c) for _ in range(args.repeats))
           for c in checkouts]
    print(f"| `{module}` | " + " | ".join(f"{t:.2f}" for t in row) + " |")


if __name__ == "__main__":
  main()
