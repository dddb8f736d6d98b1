"""The policy as a Hugging Face checkpoint any serving stack loads: weights (``save_hf``), config in
both the transformers v4 and v5 layouts, generation config, tokenizer and chat template.

- ``export.dtype``: the dtype of the stored weights. Default: the source checkpoint's stored dtype
  for a run that started from one (a bf16 Qwen checkpoint trained in f32 params exports as bf16,
  the size people expect to download), else the run's param dtype.
- ``export.every``: also export every N steps to ``<workdir>/exports/step_<N>`` (the final policy
  always goes to ``<workdir>/export`` when ``export_hf``).
- ``python -m experiments.export --workdir W [--step N]`` exports any checkpoint of a run later.

The destination may be ``gs://``: the files are written to a local staging directory, uploaded,
and files of an earlier export that the new one does not have (stale shards) are removed.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from rlvr_jax import models
from rlvr_jax.training import storage

DTYPES = ("float32", "bfloat16", "float16")
_ALIASES = {"f32": "float32", "fp32": "float32", "bf16": "bfloat16", "f16": "float16",
            "fp16": "float16", "half": "float16"}


def canonical_dtype(name: str | None) -> str | None:
  if name is None:
    return None
  name = _ALIASES.get(str(name).lower(), str(name).lower())
  if name not in DTYPES:
    raise ValueError(f"export dtype {name!r} is not one of {', '.join(DTYPES)} (or bf16 / f32 / f16)")
  return name


def source_dtype(path: str | None) -> str | None:
  """The stored dtype of an HF checkpoint directory (its config.json, else its tensors:
  ``models.checkpoint_dtype``); None when there is no checkpoint or it names no float dtype."""
  if not path:
    return None
  try:
    return canonical_dtype(models.checkpoint_dtype(path))
  except (ValueError, OSError):
    return None


def source_checkpoint(cfg: Any) -> str | None:
  """The local directory of the HF checkpoint a run started from (a directory, or an
  ``org/name`` id in the local HF cache), None for a randomly initialised model."""
  if cfg.model.get("init") != "hf" or not cfg.model.get("path"):
    return None
  return models.resolve_model_path(cfg.model.path)


def export_dtype(cfg: Any, model_config: Any) -> str:
  """``config.export.dtype``, else the source checkpoint's dtype (``model.init == "hf"``), else the
  model's param dtype."""
  chosen = (cfg.get("export") or {}).get("dtype")
  if chosen:
    return canonical_dtype(chosen)
  found = source_dtype(source_checkpoint(cfg))
  if found:
    return found
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  return jnp.dtype(model_config.param_dtype).name


def export_policy(model: Any, model_config: Any, tokenizer: Any, dest: str, *, dtype: str | None,
                  source: str | None = None) -> list[str]:
  """Writes ``model`` (weights in ``dtype``) and ``tokenizer`` to ``dest`` (local or remote);
  returns the files written, relative to ``dest``. ``source``: the HF checkpoint the run started
  from, whose generation_config.json sampling defaults are kept."""
  generation = models.generation_defaults(source, tokenizer.eos_ids)

  def write(out: str) -> None:
    models.save_hf(model, model_config, out, generation=generation, dtype=dtype)
    tokenizer.save(out)

  if not storage.is_remote(dest):
    os.makedirs(dest, exist_ok=True)
    write(dest)
    return storage._files_under(dest)  # pylint: disable=protected-access
  tmp = tempfile.mkdtemp(prefix="rlvr_jax_export_")
  try:
    write(tmp)
    written = storage.copy_tree(tmp, dest)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)
  for rel in set(storage._files_under(dest)) - set(written):  # pylint: disable=protected-access
    storage.remove(storage.join(dest, *rel.split("/")))  # e.g. shards of a larger earlier export
  return written
