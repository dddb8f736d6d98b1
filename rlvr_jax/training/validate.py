"""Config validation before anything is built: every numeric key in its valid range, and the
cross-key rules, each error naming the full key, its value and the allowed range.

``check_config(cfg)`` runs first in ``loop.setup`` (before the workdir is touched, data is read or a
model is built), so a bad value costs a second, not a warm start. Keys a config does not have are
skipped (configs written before a key existed still validate); ``None`` is allowed where the key is
optional (a placeholder), and means "keep all" for ``checkpoint.max_to_keep``.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any, Callable

_MISSING = object()


class ConfigError(ValueError):
  """A config value outside its range, or keys that contradict each other."""


def _get(cfg: Any, key: str) -> Any:
  node = cfg
  for part in key.split("."):
    if node is None or not hasattr(node, "get") or part not in node:
      return _MISSING
    node = node[part]
  return node


# (range text, test) for the rules below.
def _range(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
           hi_open: bool = False, integer: bool = False) -> tuple[str, Callable[[Any], bool]]:
  left = "(" if lo_open or lo is None else "["
  right = ")" if hi_open or hi is None else "]"
  text = f"{left}{'-inf' if lo is None else lo}, {'inf' if hi is None else hi}{right}"
  if integer:
    text = "an integer in " + text

  def ok(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
      return False
    if integer and int(v) != v:
      return False
    if lo is not None and (v <= lo if lo_open else v < lo):
      return False
    if hi is not None and (v >= hi if hi_open else v > hi):
      return False
    return True

  return text, ok


COUNT = _range(1, integer=True)  # >= 1
NONNEG_INT = _range(0, integer=True)
POSITIVE = _range(0, lo_open=True)
NONNEG = _range(0)
PROBABILITY = _range(0, 1)
FINITE = _range()

# key -> (range, optional): optional keys may be None (a placeholder left unset).
RULES: dict[str, tuple[tuple[str, Callable[[Any], bool]], bool]] = {
    "total_steps": (NONNEG_INT, False),  # 0: no RL (the warm start evaluated, a claim's base arm)
    "seed": (NONNEG_INT, False),
    "optim.lr": (POSITIVE, False),
    "optim.warmup_steps": (NONNEG_INT, False),
    "optim.min_lr_ratio": (PROBABILITY, False),
    "optim.weight_decay": (NONNEG, False),
    "optim.b1": (_range(0, 1, hi_open=True), False),
    "optim.b2": (_range(0, 1, hi_open=True), False),
    "optim.eps": (POSITIVE, False),
    "optim.grad_clip": (NONNEG, True),  # 0 or None: no clipping
    "rollout.prompts_per_step": (COUNT, False),
    "rollout.num_samples": (COUNT, False),
    "rollout.max_new_tokens": (COUNT, False),
    "rollout.temperature": (POSITIVE, False),
    "rollout.temperature_end": (POSITIVE, True),
    "rollout.top_p": (_range(0, 1, lo_open=True), False),
    "rollout.top_k": (NONNEG_INT, False),
    "rollout.min_p": (_range(0, 1, hi_open=True), False),
    "rollout.max_rows_per_call": (NONNEG_INT, True),  # 0 / None: the whole rollout in one call
    "data.max_prompt_len": (COUNT, False),
    "data.labelled_fraction": (PROBABILITY, True),  # 0: every RL prompt unlabelled
    "data.rl_size": (COUNT, True),
    "reward.threshold": (FINITE, False),
    "algo.epochs": (COUNT, False),
    "algo.num_minibatches": (COUNT, False),
    "algo.micro_batch_size": (NONNEG_INT, False),  # 0: the whole mini-batch at once
    "algo.clip_low": (PROBABILITY, False),
    "algo.clip_high": (NONNEG, False),
    "algo.dual_clip": (_range(1, lo_open=True), True),
    "algo.kl_coef": (NONNEG, False),
    "algo.entropy_coef": (FINITE, False),
    "algo.norm_constant": (POSITIVE, True),
    "batch.max_gen_batches": (COUNT, False),
    "sft.steps": (NONNEG_INT, False),
    "sft.batch_size": (COUNT, False),
    "sft.micro_batch_size": (NONNEG_INT, False),
    "sft.log_every": (COUNT, False),
    "sft.optim.lr": (POSITIVE, False),
    "eval.size": (NONNEG_INT, False),
    "eval.num_samples": (NONNEG_INT, False),
    "eval.temperature": (NONNEG, False),  # 0: greedy samples
    "eval.top_p": (_range(0, 1, lo_open=True), False),
    "eval.batch_size": (COUNT, False),
    "eval.every": (NONNEG_INT, False),
    "eval.every_size": (COUNT, False),
    "train.max_nonfinite_steps": (NONNEG_INT, False),
    "checkpoint.every": (NONNEG_INT, False),  # 0: only at the end and on a signal
    "checkpoint.max_to_keep": (COUNT, True),  # None: keep every checkpoint
    "export.every": (NONNEG_INT, True),  # 0 / None: only the final export
}


def check_ranges(cfg: Any) -> None:
  for key, ((text, ok), optional) in RULES.items():
    value = _get(cfg, key)
    if value is _MISSING or (value is None and optional):
      continue
    if value is None or not ok(value):
      extra = " or None" if optional else ""
      hint = ""
      if key == "checkpoint.max_to_keep":
        hint = " (None keeps every checkpoint; 0 would delete them all)"
      raise ConfigError(f"config.{key}={value!r} is out of range: it must be {text}{extra}{hint}")


def _context_length(cfg: Any) -> tuple[int, str] | None:
  """(the model's context length, where it comes from), when known without building the model."""
  model = cfg.get("model")
  if model is None:
    return None
  if model.get("init") == "hf":
    path = model.get("path")
    if path and not os.path.isdir(path):  # an org/name id: its snapshot in the local HF cache
      from rlvr_jax.models import hub  # pylint: disable=import-outside-toplevel
      try:
        path = hub.resolve_model_path(path)
      except ValueError:
        return None  # the model builder names the cache directories searched
    file = os.path.join(path, "config.json") if path else None
    if file and os.path.isfile(file):
      try:
        with open(file) as f:
          n = json.load(f).get("max_position_embeddings")
      except (OSError, ValueError):
        return None  # load_hf names the broken file when the model is built
      return (int(n), file) if n else None
    return None
  from rlvr_jax.training import builders  # pylint: disable=import-outside-toplevel
  try:
    mc = builders.model_config(model, 256)
  except Exception:  # pylint: disable=broad-except  (an unknown preset is reported when built)
    return None
  return int(mc.max_position_embeddings), f"preset {model.get('preset')!r}"


def check_cross_keys(cfg: Any) -> None:
  prompts, samples = _get(cfg, "rollout.prompts_per_step"), _get(cfg, "rollout.num_samples")
  num_mb, micro = _get(cfg, "algo.num_minibatches"), _get(cfg, "algo.micro_batch_size")
  if _MISSING not in (prompts, samples, num_mb):
    rows = prompts * samples
    if num_mb > rows:
      raise ConfigError(f"config.algo.num_minibatches={num_mb} is more than the {rows} rows of a "
                        f"step (rollout.prompts_per_step={prompts} x rollout.num_samples={samples})")
    if micro not in (_MISSING, 0) and micro > rows // num_mb:
      raise ConfigError(f"config.algo.micro_batch_size={micro} is larger than a mini-batch "
                        f"({rows} rows / algo.num_minibatches={num_mb} = {rows // num_mb})")
  _check_rows_per_call(cfg)
  sft_steps, sft_batch = _get(cfg, "sft.steps"), _get(cfg, "sft.batch_size")
  sft_micro = _get(cfg, "sft.micro_batch_size")
  if sft_steps not in (_MISSING, 0) and sft_micro not in (_MISSING, 0) and sft_batch % sft_micro:
    raise ConfigError(f"config.sft.micro_batch_size={sft_micro} does not divide "
                      f"config.sft.batch_size={sft_batch}")
  eval_t, eval_n = _get(cfg, "eval.temperature"), _get(cfg, "eval.num_samples")
  if eval_t == 0 and eval_n not in (_MISSING, 0, 1):
    raise ConfigError(f"config.eval.temperature=0 makes the {eval_n} samples of "
                      "config.eval.num_samples identical: set a temperature > 0 or num_samples 1")
  wandb = _get(cfg, "log.wandb")
  if wandb not in (_MISSING, None):
    from rlvr_jax.training import wandb_writer  # pylint: disable=import-outside-toplevel
    try:
      wandb_writer.check_settings(wandb)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  export_dtype = _get(cfg, "export.dtype")
  if export_dtype not in (_MISSING, None):
    from rlvr_jax.training import export  # pylint: disable=import-outside-toplevel
    try:
      export.canonical_dtype(export_dtype)
    except ValueError as e:
      raise ConfigError(f"config.export.dtype: {e}") from None
  if _get(cfg, "rollout.temperature_schedule") == "ead":
    from rlvr_jax.episodes import context  # pylint: disable=import-outside-toplevel
    try:
      context.ead_schedule(cfg.rollout, 0)
    except ValueError as e:
      raise ConfigError(str(e)) from None
  prompt_len, new_tokens = _get(cfg, "data.max_prompt_len"), _get(cfg, "rollout.max_new_tokens")
  if _MISSING not in (prompt_len, new_tokens):
    context = _context_length(cfg)
    if context is not None and prompt_len + new_tokens > context[0]:
      raise ConfigError(
          f"config.data.max_prompt_len={prompt_len} + config.rollout.max_new_tokens={new_tokens} "
          f"= {prompt_len + new_tokens} tokens exceed the model's context of {context[0]} "
          f"(max_position_embeddings of {context[1]})")


def _check_rows_per_call(cfg: Any) -> None:
  """``rollout.max_rows_per_call`` holds whole prompts (all G samples of one in the same sampler
  call) and, when the mesh is given in full, whole prompts on every shard of the sampler's batch
  (the mesh axes the ``batch`` rule names); with a ``-1`` axis the sampler checks at its first call."""
  rows, samples = _get(cfg, "rollout.max_rows_per_call"), _get(cfg, "rollout.num_samples")
  if rows in (_MISSING, None, 0) or samples is _MISSING:
    return
  if rows % samples:
    raise ConfigError(f"config.rollout.max_rows_per_call={rows} is not a multiple of "
                      f"config.rollout.num_samples={samples}: the samples of a prompt are drawn in "
                      f"one sampler call (e.g. {max(rows // samples, 1) * samples})")
  mesh = _get(cfg, "mesh")
  if mesh is _MISSING or mesh is None:
    return
  from rlvr_jax.parallel import rules as rules_lib  # pylint: disable=import-outside-toplevel
  rules = _get(cfg, "sharding_rules")
  axes = rules_lib.mesh_axes_for("batch", rules_lib.as_rules(None if rules is _MISSING else rules))
  sizes = {a: mesh.get(a, 1) for a in axes}
  if any(not isinstance(v, int) or v < 1 for v in sizes.values()):
    return  # an axis sized at run time (-1)
  split = math.prod(sizes.values())
  if (rows // samples) % split:
    named = " x ".join(f"mesh.{a}={v}" for a, v in sizes.items())
    raise ConfigError(f"config.rollout.max_rows_per_call={rows} holds {rows // samples} prompts of "
                      f"config.rollout.num_samples={samples}, not a multiple of the {split}-way "
                      f"data-parallel split of the sampler's batch ({named}): use a multiple of "
                      f"{samples} x {split} = {samples * split}")


def check_config(cfg: Any) -> None:
  """Raises ConfigError naming the first key out of range or the first contradiction."""
  check_ranges(cfg)
  check_cross_keys(cfg)
