"""Writes notebooks/papers.ipynb: one section per configs/<paper>.py (its card's first line, the
`:cpu` run, the run's metrics plot), for Colab or a local Jupyter.

    python -m notebooks.make_papers_notebook        # rewrite the notebook after adding a config

tests/test_notebooks.py checks that the committed notebook is what this script writes, so every
config has its cell.
"""
from __future__ import annotations

import importlib
import json
import pathlib

REPO = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = REPO / "notebooks" / "papers.ipynb"
SKIP = ("__init__", "common")


def _cell(kind: str, text: str) -> dict:
  cell = {"cell_type": kind, "metadata": {}, "source": text.splitlines(keepends=True)}
  if kind == "code":
    cell.update(execution_count=None, outputs=[])
  return cell


def config_names() -> list[str]:
  return sorted(p.stem for p in (REPO / "configs").glob("*.py") if p.stem not in SKIP)


def build() -> dict:
  cells = [
      _cell("markdown", "# rlvr_jax: every paper config, CPU-sized\n\n"
            "Each section runs a config's `:cpu` variant (a few RL steps of a tiny model on an "
            "arithmetic task: a pipeline check, not the paper's result) and shows its metrics. "
            "The reproduction card in `configs/<name>.py` gives the real model, data and "
            "command; measured results and claim verdicts are in the README ledger.\n"),
      _cell("code", "# In Colab: clone the repository and install it (no hub downloads at run time).\n"
            "# !git clone <your copy of rlvr_jax> rlvr_jax && cd rlvr_jax && "
            "pip install -q -e '.[test]'\n"
            "import os\n"
            "os.makedirs('/tmp/rlvr_notebook', exist_ok=True)\n"),
  ]
  for name in config_names():
    doc = (importlib.import_module(f"configs.{name}").__doc__ or "").strip()
    title = doc.splitlines()[0].strip() if doc else name
    cells.append(_cell("markdown", f"## `configs/{name}.py`\n\n{title}\n"))
    cells.append(_cell("code", f"!python -m experiments.run --config configs/{name}.py:cpu "
                               f"--workdir /tmp/rlvr_notebook/{name}\n"
                               f"from IPython.display import Image\n"
                               f"Image('/tmp/rlvr_notebook/{name}/metrics.png')\n"))
  return {"cells": cells, "metadata": {"kernelspec": {"display_name": "Python 3",
                                                      "language": "python", "name": "python3"},
                                       "language_info": {"name": "python"}},
          "nbformat": 4, "nbformat_minor": 5}


def render() -> str:
  return json.dumps(build(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
  NOTEBOOK.write_text(render())
  print(f"wrote {NOTEBOOK}")
