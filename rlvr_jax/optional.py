"""Optional dependencies: imported where they are used, with an error that names the extra.

The core install (``pip install rlvr_jax``) trains, evaluates and checkpoints; plots, TensorBoard
logs, TFDS sources and W&B runs need an extra (``pyproject.toml``,
``[project.optional-dependencies]``).
"""
from __future__ import annotations

import importlib
import types

# Top-level module -> (distribution on PyPI, extra that installs it).
EXTRAS = {
    "matplotlib": ("matplotlib", "plots"),
    "tensorboardX": ("tensorboardX", "tensorboard"),
    "tensorflow_datasets": ("tensorflow-datasets", "tfds"),
    "wandb": ("wandb", "wandb"),
}


def require(module: str, needed_for: str) -> types.ModuleType:
  """Imports ``module`` (e.g. "matplotlib.pyplot"), or raises ImportError naming the extra."""
  top = module.split(".")[0]
  try:
    return importlib.import_module(module)
  except ImportError as e:
    dist, extra = EXTRAS.get(top, (top, None))
    how = f"pip install 'rlvr_jax[{extra}]'" if extra else f"pip install {dist}"
    raise ImportError(f"{needed_for} needs the optional package {dist!r}, which is not "
                      f"installed ({e}); {how}") from e
