r"""Held-out evaluation of a run or a checkpoint: greedy accuracy, unbiased pass@k and maj@k.

  python -m experiments.eval --workdir /runs/grpo                 # latest checkpoint of the run
  python -m experiments.eval --workdir /runs/grpo --step 200 --num_samples 64
  python -m experiments.eval --workdir /runs/grpo --warm_start    # the SFT policy RL started from
  python -m experiments.eval --checkpoint /runs/grpo/export       # exported / any HF checkpoint
  python -m experiments.eval --checkpoint /models/Qwen2.5-0.5B-Instruct \
      --config configs/grpo_qwen2p5_0p5b_gsm8k.py --config.data.path=... --config.data.eval_path=...
  python -m experiments.eval --checkpoint Qwen/Qwen2.5-0.5B-Instruct --config ...  # local HF cache

The held-out set, prompt template, tokenizer, correctness reward and sampling settings are the
run's (``<workdir>/config.json``; for ``--checkpoint`` alone, the ``config.json`` of the
checkpoint's parent run directory; ``--config`` overrides both; a ``--checkpoint`` that names a
model id in the local Hugging Face cache, ``rlvr_jax.models.hub``, needs it), built by the same
``loop.build_inputs`` the trainer uses, so the problems and prompts are exactly those of the run's
own before/after evaluation. pass@k uses the unbiased estimator (Chen et al. 2021) for k = 1, 2,
4, ... up to n = ``--num_samples``; maj@k votes over extracted answers.

Writes ``<out>/eval_<tag>.json`` (``<out>``: ``--workdir``, else the run directory holding the
checkpoint, else the checkpoint directory, or the current directory for a cached model id) and
prints a table. The json keeps the per-problem
results (``per_problem``: problem ids, correct counts of the n samples, greedy verdicts; lists of
numbers on one line each) for later comparisons; ``--entropy`` adds ``eval_token_entropy``, the
policy's mean token entropy (nats) on its sampled completions at the eval temperature. Beside it,
``<out>/eval_<tag>_samples.jsonl`` holds every completion (greedy and sampled), one JSON object per
line: problem id, prompt, gold, completion, extracted answer, the correctness reward's value and the
verdict, for reading which problems changed or rescoring with another harness (docs/evaluation.md).

Against a base model (``rlvr_jax.eval.metrics``: per-problem change, winner-take-all split); the
run's own ``eval_before.json`` (the policy before RL, same problems) serves as a base too:

  python -m experiments.eval --workdir /runs/grpo --base /runs/grpo/eval_before.json
  python -m experiments.eval --checkpoint /models/Qwen2.5-0.5B-Instruct --config ... --tag base
  python -m experiments.eval --base eval_base.json --compare eval_step200.json   # no model run

``--base`` (an eval json of the same problems, checked by problem id) prints wins / losses / ties
of the per-problem sampled accuracy, the mean change +- its standard error, and the table by base
accuracy ({0}, (0, .25], ..., (.75, 1), {1}), and stores them as ``vs_base`` in the new eval json
(``--compare``: in that existing json). pass@k curves of several evaluations on one figure:

  python -m experiments.eval --plot passk.png --curves eval_base.json,eval_step200.json
  python -m experiments.eval --plot passk.png /runs/*/eval_*.json
"""
from __future__ import annotations

import json
import math
import os
import sys
import time

from absl import app, flags, logging
from ml_collections import config_flags

from rlvr_jax import optional

DEFAULT_SIZE = 200


def _read_config(path: str):
  import ml_collections  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import storage  # pylint: disable=import-outside-toplevel
  return ml_collections.ConfigDict(json.loads(storage.read_text(path)))


def resolve(workdir: str | None, checkpoint: str | None, config=None):
  """(config, output directory) for the given flags; raises ValueError naming what is missing."""
  if not workdir and not checkpoint:
    raise ValueError("pass --workdir (a run directory) or --checkpoint (an HF checkpoint dir)")
  from rlvr_jax.training import storage  # pylint: disable=import-outside-toplevel
  if workdir and not storage.isdir(workdir):  # local or gs://
    raise ValueError(f"--workdir={workdir!r} is not a directory")
  # --checkpoint may name a model id (org/name[@revision]) already in the local HF cache.
  cached = bool(checkpoint) and not os.path.isdir(checkpoint)
  if cached:
    _checkpoint_dir(checkpoint)  # raises naming the cache directories searched
    if config is None and not workdir:
      raise ValueError(f"--checkpoint={checkpoint!r} is a model in the local Hugging Face cache, "
                       "with no run config beside it: pass --config configs/<name>.py[:arg]")
  run_dir = workdir or (None if cached else os.path.dirname(os.path.abspath(checkpoint)))
  found = storage.join(run_dir, "config.json") if run_dir else ""  # <run>/export -> <run>
  if config is None:
    if not (found and storage.isfile(found)):
      raise ValueError(f"no run config at {found}; pass --config configs/<name>.py[:arg]")
    config = _read_config(found)
  out = workdir or (os.getcwd() if cached else run_dir if storage.isfile(found) else checkpoint)
  return config, storage.resolve(out)


def _checkpoint_dir(checkpoint: str) -> str:
  """The checkpoint directory: ``checkpoint`` itself, or a cached model id's snapshot."""
  if os.path.isdir(checkpoint):
    return os.path.abspath(checkpoint)
  from rlvr_jax.models import hub  # pylint: disable=import-outside-toplevel
  try:
    return hub.resolve_model_path(checkpoint)
  except ValueError as e:
    raise ValueError(f"--checkpoint={checkpoint!r}: {e}") from None


def apply_overrides(cfg, *, checkpoint=None, size=None, num_samples=None, temperature=None,
                    top_p=None, batch_size=None) -> None:
  """Points the config at ``checkpoint`` and applies the evaluation flags (in place)."""
  if checkpoint:
    cfg.model.init = "hf"
    cfg.model.path = _checkpoint_dir(checkpoint)
    cfg.tokenizer.kind = "pretrained"  # exports carry their tokenizer (tokenizer.save)
    cfg.tokenizer.path = cfg.model.path
  if size is not None:
    cfg.eval.size = int(size)
  elif int(cfg.eval.size) <= 0:
    print(f"the run evaluated no held-out problems (config.eval.size=0); using {DEFAULT_SIZE}")
    cfg.eval.size = DEFAULT_SIZE
  if num_samples is not None:
    cfg.eval.num_samples = int(num_samples)
  if temperature is not None:
    cfg.eval.temperature = float(temperature)
  if top_p is not None:
    cfg.eval.top_p = float(top_p)
  if batch_size is not None:
    cfg.eval.batch_size = int(batch_size)


def load_policy(cfg, *, workdir: str | None, checkpoint: str | None, step: int | None,
                vocab_size: int, warm_start: bool = False):
  """(model, description, step) with the params of the checkpoint to evaluate, sharded as the
  trainer shards them (``config.mesh``). ``warm_start``: the run's supervised warm start
  (``<workdir>/sft/params``, the policy RL started from) instead of a checkpoint; step 0."""
  import jax  # pylint: disable=import-outside-toplevel
  from flax import nnx  # pylint: disable=import-outside-toplevel
  from rlvr_jax import models  # pylint: disable=import-outside-toplevel
  from rlvr_jax.parallel import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import builders  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import checkpoint as ckpt_lib  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import storage  # pylint: disable=import-outside-toplevel

  mesh = mesh_lib.make_mesh(dict(cfg.mesh))
  rules = cfg.get("sharding_rules")
  abstract, _ = builders.abstract_model(cfg.model, vocab_size=vocab_size)
  graphdef, state = nnx.split(abstract)
  shardings = mesh_lib.param_shardings(state, models.logical_axes(abstract), mesh, rules)
  if checkpoint:  # read straight into the shardings: no device holds the whole model
    model, _ = builders.build_model(cfg.model, vocab_size=vocab_size, seed=int(cfg.seed),
                                    shardings=shardings)
    return model, checkpoint, None
  # shardings has one NamedSharding per nnx.Variable, in the order of the state's leaves.
  leaves, treedef = jax.tree.flatten(state)
  target = treedef.unflatten([jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s)
                              for x, s in zip(leaves, jax.tree.leaves(shardings), strict=True)])
  if warm_start:
    import orbax.checkpoint as ocp  # pylint: disable=import-outside-toplevel
    directory = storage.join(storage.resolve(workdir), "sft", "params")
    if not storage.isdir(directory):
      raise FileNotFoundError(f"no warm start under {directory} (config.sft.steps = 0, or the run "
                              "has not finished its warm start)")
    params = ocp.StandardCheckpointer().restore(directory, target)
    return nnx.merge(graphdef, params), directory, 0
  directory = storage.join(storage.resolve(workdir), "checkpoints")
  ckpt = ckpt_lib.Checkpointer(directory)
  if ckpt.latest_step() is None:
    ckpt.close()
    raise FileNotFoundError(f"no checkpoint under {directory}; evaluate an export with "
                            f"--checkpoint {storage.join(workdir, 'export')}")
  params, step = ckpt.restore_params(step, params=target)
  ckpt.close()
  return nnx.merge(graphdef, params), f"{directory}/{step}", step


def evaluate(cfg, *, workdir: str | None = None, checkpoint: str | None = None,
             step: int | None = None, tag: str | None = None, out_dir: str,
             entropy: bool = False, base: str | None = None, warm_start: bool = False) -> dict:
  """Runs the evaluation and writes ``<out_dir>/eval_<tag>.json``; returns its contents.

  ``base``: an earlier eval json of the same problems; its comparison goes into ``vs_base``. Its
  problems are checked before the policy is loaded."""
  from rlvr_jax.eval import evaluator  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import storage  # pylint: disable=import-outside-toplevel

  t0 = time.time()
  base_record = load_record(base) if base else None
  # The run directory holds trained tokenizers (char / bpe / sentencepiece) in <workdir>/tokenizer.
  _, examples, tokenizer, _, prompt_fn = loop.build_inputs(cfg, workdir or out_dir)
  if base_record is not None:  # fail before loading and sampling the policy
    evaluator.check_same_problems(evaluator.per_problem_record(base_record)["problem_ids"],
                                  [evaluator.problem_id(ex) for ex in examples])
  if warm_start and not workdir:
    raise ValueError("--warm_start evaluates <workdir>/sft: pass --workdir")
  model, source, step = load_policy(cfg, workdir=workdir, checkpoint=checkpoint, step=step,
                                    vocab_size=tokenizer.vocab_size, warm_start=warm_start)
  tag = tag or ("warm_start" if warm_start else None)
  tag = tag or (f"step{step}" if step is not None else os.path.basename(os.path.normpath(source)))
  storage.makedirs(out_dir)
  samples_path = storage.join(out_dir, f"eval_{tag}_samples.jsonl")
  result = evaluator.evaluate(model, tokenizer, examples, seed=int(cfg.seed), entropy=entropy,
                              samples_path=samples_path,
                              **loop.eval_options(cfg, tokenizer, prompt_fn))
  record = {"tag": tag, "checkpoint": source, "step": step, "num_problems": len(examples),
            "num_samples": int(cfg.eval.num_samples), "temperature": float(cfg.eval.temperature),
            "top_p": float(cfg.eval.top_p), "max_new_tokens": int(cfg.rollout.max_new_tokens),
            "time_s": time.time() - t0, "samples": storage.basename(samples_path), **result}
  if base_record is not None:
    record["vs_base"] = vs_base(base_record, record, base)
  path = storage.join(out_dir, f"eval_{tag}.json")
  write_record(record, path)
  record["path"] = path
  return record


# ------------------------------------------------------------------------------------------------
# Eval json files: reading, writing, comparing, plotting (no model, no jax)
# ------------------------------------------------------------------------------------------------

def load_record(path: str) -> dict:
  """An eval json written by this script, or the trainer's ``eval_before.json``."""
  from rlvr_jax.training import storage  # pylint: disable=import-outside-toplevel
  if not storage.isfile(path):
    raise ValueError(f"no eval json at {path!r}")
  record = json.loads(storage.read_text(path))
  if not isinstance(record, dict) or not any(k.startswith(("pass@", "greedy_")) for k in record):
    raise ValueError(f"{path} is not an eval json (no pass@k or greedy_accuracy entry; a run's "
                     "eval.json nests them under 'after': use eval_before.json / eval_<tag>.json)")
  return record


def _to_json(value, indent: int = 0, *, row: bool = False) -> str:
  """json with dicts indented, but lists of plain values, and the flat dicts inside lists (table
  rows), on one line each: the per-problem lists stay one line, a table one line per row."""
  pad, inner = " " * indent, " " * (indent + 2)
  flat_row = row and isinstance(value, dict) and not any(map(_nested, value.values()))
  if isinstance(value, dict) and value and not flat_row:
    items = [f"{inner}{json.dumps(str(k))}: {_to_json(v, indent + 2)}" for k, v in value.items()]
    return "{\n" + ",\n".join(items) + f"\n{pad}}}"
  if isinstance(value, (list, tuple)) and any(map(_nested, value)):
    return ("[\n" + ",\n".join(inner + _to_json(v, indent + 2, row=True) for v in value)
            + f"\n{pad}]")
  return json.dumps(value)


def _nested(value) -> bool:
  return isinstance(value, (dict, list, tuple))


def write_record(record: dict, path: str) -> None:
  """Writes ``record`` to ``path`` whole (``_to_json`` layout; local or gs://)."""
  from rlvr_jax.training import storage  # pylint: disable=import-outside-toplevel
  storage.write_text(path, _to_json({k: v for k, v in record.items() if k != "path"}) + "\n")


def vs_base(base: dict, record: dict, base_path: str) -> dict:
  """``evaluator.compare(base, record)`` with the base's tag and path."""
  from rlvr_jax.eval import evaluator  # pylint: disable=import-outside-toplevel
  name = base.get("tag") or os.path.splitext(os.path.basename(base_path))[0]
  return {"base": name, "base_path": os.path.abspath(base_path),
          **evaluator.compare(base, record)}


def compare_files(base_path: str, path: str) -> dict:
  """Compares two existing eval jsons; stores ``vs_base`` in the second; returns that record."""
  record = load_record(path)
  record["vs_base"] = vs_base(load_record(base_path), record, base_path)
  write_record(record, path)
  record["path"] = path
  return record


def format_comparison(vs: dict) -> str:
  """``vs_base`` as text: wins / losses / ties, mean change +- s.e., the winner-take-all table."""
  lines = [f"vs base {vs.get('base')} ({vs['num_problems']} problems)"]
  for key, name in (("sampled", "sampled accuracy"), ("greedy", "greedy accuracy")):
    if key in vs:
      c = vs[key]
      se = "n/a" if c["mean_delta_se"] is None else f"{100 * c['mean_delta_se']:.2f}"
      lines.append(f"  {name}: {100 * c['base_mean_acc']:.2f}% -> {100 * c['new_mean_acc']:.2f}%, "
                   f"change {100 * c['mean_delta']:+.2f} +- {se} points (s.e.); "
                   f"{c['wins']} wins / {c['losses']} losses / {c['ties']} ties")
  if "winner_take_all" in vs:
    lines.append(f"  {'base accuracy':<14}{'problems':>9}{'mean base':>11}{'mean change':>13}"
                 f"{'wins':>6}{'losses':>8}")
    for r in vs["winner_take_all"]:
      base_acc = "" if r["mean_base_acc"] is None else f"{100 * r['mean_base_acc']:.1f}%"
      delta = "" if r["mean_delta"] is None else f"{100 * r['mean_delta']:+.1f}"
      lines.append(f"  {r['bin']:<14}{r['count']:>9}{base_acc:>11}{delta:>13}{r['wins']:>6}"
                   f"{r['losses']:>8}")
  return "\n".join(lines)


def passk_curve(record: dict) -> tuple[list[int], list[float]]:
  """(ks, pass@k) of an eval record, ks ascending."""
  ks = sorted(int(k[5:]) for k in record if k.startswith("pass@") and k[5:].isdigit())
  return ks, [float(record[f"pass@{k}"]) for k in ks]


def plot_passk_curves(paths: list[str], out: str) -> str:
  """pass@k against k (log2 axis) of several eval jsons on one figure, each labelled by its tag."""
  matplotlib = optional.require("matplotlib", "plots")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  if not paths:
    raise ValueError("--plot needs eval jsons to draw (--curves a.json,b.json)")
  fig, ax = plt.subplots(figsize=(5.5, 4))
  for path in paths:
    record = load_record(path)
    ks, ys = passk_curve(record)
    if not ks:
      raise ValueError(f"{path} has no pass@k entries (evaluated with --num_samples 0?)")
    label = record.get("tag") or os.path.splitext(os.path.basename(path))[0]
    ax.plot(ks, ys, marker="o", label=f"{label} (n={record.get('num_samples', max(ks))})")
  ax.set_xscale("log", base=2)
  ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda x, _: f"{x:g}"))  # 1 2 4
  ax.set_xlabel("k")
  ax.set_ylabel("pass@k")
  ax.set_ylim(0, 1)
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out


def format_table(record: dict) -> str:
  """The metrics of ``record`` as an aligned two-column text table (percentages)."""
  keys = [k for k in ("greedy_accuracy", "mean_accuracy") if k in record]
  keys += sorted((k for k in record if k.startswith("pass@") and "_" not in k),
                 key=lambda k: int(k.split("@")[1]))
  keys += sorted((k for k in record if k.startswith("maj@") and "_" not in k),
                 key=lambda k: int(k.split("@")[1]))
  keys += sorted((k for k in record if k.startswith("cot_pass@")),
                 key=lambda k: int(k.split("@")[1]))
  lines = [f"{'metric':<18}{'value':>9}", "-" * 27]
  for k in keys:
    value = record[k]
    text = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{100 * float(value):.2f}%"
    lines.append(f"{k:<18}{text:>9}")
  if "eval_token_entropy" in record:
    lines.append(f"{'token entropy':<18}{record['eval_token_entropy']:>9.4f}")
  lines.append(f"({record['num_problems']} problems, n={record['num_samples']}, "
               f"T={record['temperature']:g}, checkpoint {record['checkpoint']})")
  return "\n".join(lines)


def _define_flags():
  """Command-line flags, defined only when run as a program so that importing this module (tests,
  notebooks) never clashes with the flags of experiments.run."""
  return dict(
      config=config_flags.DEFINE_config_file(
          "config", None, "Optional config file (else the run's config.json).", lock_config=True),
      workdir=flags.DEFINE_string("workdir", None, "Run directory (config.json, checkpoints/)."),
      checkpoint=flags.DEFINE_string(
          "checkpoint", None, "A Hugging Face checkpoint directory (e.g. <workdir>/export), or a "
          "model id (org/name[@revision]) in the local HF cache, to evaluate instead of the run's "
          "orbax checkpoints."),
      step=flags.DEFINE_integer("step", None, "Checkpoint step of --workdir (default: latest)."),
      warm_start=flags.DEFINE_bool("warm_start", False, "Evaluate the run's supervised warm start "
                                   "(<workdir>/sft: the policy before RL) instead of a checkpoint."),
      tag=flags.DEFINE_string("tag", None, "Name of the output file eval_<tag>.json (default: "
                              "step<N> or the checkpoint directory name)."),
      size=flags.DEFINE_integer("size", None, "Held-out problems (default: config.eval.size, or "
                                f"{DEFAULT_SIZE} when the run evaluated none)."),
      num_samples=flags.DEFINE_integer(
          "num_samples", None, "n samples per problem for pass@k / maj@k (default: "
          "config.eval.num_samples; 0: greedy only)."),
      temperature=flags.DEFINE_float("temperature", None, "Sampling temperature (default: "
                                     "config)."),
      top_p=flags.DEFINE_float("top_p", None, "Nucleus top-p (default: config)."),
      batch_size=flags.DEFINE_integer("batch_size", None, "Rows per sampler call (default: "
                                      "config)."),
      entropy=flags.DEFINE_bool("entropy", False, "Also report eval_token_entropy, the policy's "
                                "mean token entropy on its sampled completions (one extra forward "
                                "per batch)."),
      base=flags.DEFINE_string("base", None, "An eval json of the base model on the same problems:"
                               " adds the per-problem comparison (vs_base) to the output."),
      compare=flags.DEFINE_string("compare", None, "With --base: an existing eval json to compare "
                                  "against it (no model is run; vs_base is written into it)."),
      plot=flags.DEFINE_string("plot", None, "Draw the pass@k curves of --curves (and of any "
                               "positional json paths) into this PNG; no model is run."),
      curves=flags.DEFINE_list("curves", [], "Eval jsons for --plot, comma separated."),
      verbose=flags.DEFINE_bool("verbose", False, "Show the full traceback of input errors (by "
                                "default one line naming the file or flag at fault)."),
      compilation_cache=flags.DEFINE_string(
          "compilation_cache", os.path.expanduser("~/.cache/rlvr_jax/jit"),
          "Persistent XLA compilation cache directory ('' to disable)."),
  )


def main(argv, f):
  try:
    _main(argv, f)
  except (ValueError, FileNotFoundError, ImportError) as e:
    if f["verbose"].value:
      raise
    print(f"error: {e}\n(run with --verbose for the traceback)", file=sys.stderr)
    sys.exit(2)


def _main(argv, f):
  if f["plot"].value:  # eval jsons only: no jax, no model
    print(f"wrote {plot_passk_curves(list(f['curves'].value) + list(argv[1:]), f['plot'].value)}")
    return
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  if f["compare"].value:
    if not f["base"].value:
      raise app.UsageError("--compare needs --base (the eval json to compare against)")
    record = compare_files(f["base"].value, f["compare"].value)
    print(format_comparison(record["vs_base"]))
    print(f"wrote vs_base into {record['path']}")
    return
  import jax  # pylint: disable=import-outside-toplevel

  if not flags.FLAGS["verbosity"].present:
    logging.set_verbosity(logging.WARNING)
  if f["compilation_cache"].value:
    jax.config.update("jax_compilation_cache_dir", f["compilation_cache"].value)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 1.0)
  workdir, checkpoint = f["workdir"].value, f["checkpoint"].value
  cfg, out_dir = resolve(workdir, checkpoint, f["config"].value)
  apply_overrides(cfg, checkpoint=checkpoint, size=f["size"].value,
                  num_samples=f["num_samples"].value, temperature=f["temperature"].value,
                  top_p=f["top_p"].value, batch_size=f["batch_size"].value)
  record = evaluate(cfg, workdir=workdir, checkpoint=checkpoint, step=f["step"].value,
                    tag=f["tag"].value, out_dir=out_dir, entropy=f["entropy"].value,
                    base=f["base"].value, warm_start=f["warm_start"].value)
  print(format_table(record))
  if "vs_base" in record:
    print(format_comparison(record["vs_base"]))
  print(f"wrote {record['path']}")


if __name__ == "__main__":
  os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
  os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
  _FLAGS = _define_flags()
  app.run(lambda argv: main(argv, _FLAGS), argv=sys.argv)
