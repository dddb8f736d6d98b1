r"""Exports a checkpoint of a run as a Hugging Face checkpoint (weights, both config layouts,
generation config, tokenizer and chat template), the same files a run writes to
``<workdir>/export`` at its end:

  python -m experiments.export --workdir /runs/grpo                    # latest checkpoint
  python -m experiments.export --workdir gs://bucket/runs/grpo --step 200 --dtype bf16
  python -m experiments.export --workdir /runs/grpo --warm_start       # the SFT policy RL began from

``--out`` defaults to ``<workdir>/exports/step_<N>`` (``exports/warm_start``); ``--dtype``
defaults to the run's ``config.export.dtype``, else the source checkpoint's dtype, else the param
dtype (rlvr_jax/training/export.py). The run's own ``config.json`` decides the model and tokenizer;
the params are restored with the run's mesh (``config.mesh``).
"""
from __future__ import annotations

import json

from absl import app, flags



def _no_corpus():
  raise ValueError("this run's tokenizer is trained, and <workdir>/tokenizer (its cache) is "
                   "missing: the export cannot rebuild the same vocabulary")


def export(workdir: str, *, step: int | None = None, out: str | None = None,
           dtype: str | None = None, warm_start: bool = False) -> dict:
  """Exports and returns {"out", "step", "dtype", "files"}."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  from experiments import eval as eval_lib  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import builders, storage  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import export as export_lib  # pylint: disable=import-outside-toplevel

  workdir = storage.resolve(workdir)
  config_path = storage.join(workdir, "config.json")
  if not storage.isfile(config_path):
    raise FileNotFoundError(f"no run config at {config_path}: is {workdir} a run directory?")
  cfg = ml_collections.ConfigDict(json.loads(storage.read_text(config_path)))
  dtype = export_lib.canonical_dtype(dtype)  # a bad --dtype fails before any loading
  tokenizer = builders.build_tokenizer(cfg.tokenizer, workdir=workdir,
                                       model_path=cfg.model.get("path"), corpus=_no_corpus)
  model, source, step = eval_lib.load_policy(cfg, workdir=workdir, checkpoint=None, step=step,
                                             vocab_size=tokenizer.vocab_size,
                                             warm_start=warm_start)
  _, model_cfg = builders.abstract_model(cfg.model, vocab_size=tokenizer.vocab_size)
  dtype = dtype or export_lib.export_dtype(cfg, model_cfg)
  out = out or storage.join(workdir, "exports", "warm_start" if warm_start else f"step_{step}")
  files = export_lib.export_policy(model, model_cfg, tokenizer, out, dtype=dtype,
                                   source=export_lib.source_checkpoint(cfg))
  print(f"exported {source} to {out} ({dtype} weights, {len(files)} files)")
  return {"out": out, "step": step, "dtype": dtype, "files": files}


def _define_flags() -> dict:
  """The CLI flags, defined only when run as a program (other entry points that import this
  module in the same process define their own --workdir / --step)."""
  return dict(
      workdir=flags.DEFINE_string("workdir", None, "the run directory (local or gs://)"),
      step=flags.DEFINE_integer("step", None, "checkpoint step (default: the latest)"),
      out=flags.DEFINE_string("out", None, "destination (default <workdir>/exports/step_<N>)"),
      dtype=flags.DEFINE_string("dtype", None, "stored weight dtype: float32 / bfloat16 / float16"),
      warm_start=flags.DEFINE_bool("warm_start", False, "export <workdir>/sft (the warm start)"),
  )


def main(argv, given: dict) -> None:
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if not given["workdir"].value:
    raise app.UsageError("--workdir is required")
  export(given["workdir"].value, step=given["step"].value, out=given["out"].value,
         dtype=given["dtype"].value, warm_start=given["warm_start"].value)


if __name__ == "__main__":
  _FLAGS = _define_flags()
  app.run(lambda argv: main(argv, _FLAGS))
