"""Builders that turn config sections into objects: tokenizer, model, optimizer, loss spec.

Each takes one config section (an ``ml_collections.ConfigDict`` or plain mapping) and fails with a
ValueError naming the key at fault.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any, Callable, Iterable

import jax
import jax.numpy as jnp
import optax
from absl import logging
from flax import nnx

from rlvr_jax import models
from rlvr_jax.models import hub
from rlvr_jax.training import storage
from rlvr_jax.training.step import LossSpec, freeze


def _get(section: Any, key: str, default: Any = None) -> Any:
  try:
    value = section[key]
  except (KeyError, AttributeError):
    return default
  return default if value is None else value


# ------------------------------------------------------------------------------------------------
# Tokenizer
# ------------------------------------------------------------------------------------------------

TOKENIZER_KINDS = ("pretrained", "char", "bpe", "sentencepiece")


def build_tokenizer(cfg: Any, *, workdir: str, model_path: str | None,
                    corpus: Callable[[], Iterable[str]]) -> models.Tokenizer:
  """The run's tokenizer; trained ones are cached in ``<workdir>/tokenizer`` so resumes reuse it.

  kinds: ``pretrained`` (``cfg.path``, else the model's HF directory), ``char`` (``cfg.alphabet``),
  ``bpe`` / ``sentencepiece`` (trained on ``corpus()`` with ``cfg.vocab_size``).
  """
  kind = _get(cfg, "kind", "pretrained")
  if kind not in TOKENIZER_KINDS:
    raise ValueError(f"config.tokenizer.kind={kind!r}; choose one of {TOKENIZER_KINDS}")
  cache = storage.join(workdir, "tokenizer")  # local or gs://
  if kind == "pretrained":
    path = _get(cfg, "path") or model_path
    if not path:
      raise ValueError("config.tokenizer.kind='pretrained' needs config.tokenizer.path or "
                       "config.model.path (a directory with tokenizer.json or tokenizer.model)")
    # A directory, or an org/name[@revision] id already in the local HF cache (never downloaded).
    return models.Tokenizer.from_pretrained(hub.resolve_model_path(path))
  if storage.isdir(cache):
    with storage.local_copy(cache) as local:
      return models.Tokenizer.from_pretrained(local)
  if kind == "char":
    alphabet = _get(cfg, "alphabet")
    if not alphabet:
      raise ValueError("config.tokenizer.kind='char' needs config.tokenizer.alphabet (a string)")
    tok = models.char_level(alphabet)
  elif kind == "bpe":
    tok = models.train_bpe(corpus(), int(_get(cfg, "vocab_size", 512)), eos_token="<|endoftext|>",
                           pad_token="<|pad|>", special_tokens=("<|pad|>", "<|endoftext|>"))
  else:
    tok = models.train_sentencepiece(corpus(), int(_get(cfg, "vocab_size", 512)))
  if jax.process_index() == 0:
    with storage.staged_dir(cache) as out:
      tok.save(out)
  logging.info("tokenizer %s: vocab %d, pad %d, eos %s", kind, tok.vocab_size, tok.pad_id, tok.eos_ids)
  return tok


# ------------------------------------------------------------------------------------------------
# Model
# ------------------------------------------------------------------------------------------------


def model_config(cfg: Any, vocab_size: int) -> models.ModelConfig:
  """ModelConfig from ``config.model``: a preset plus overrides (``init='preset'``)."""
  preset = _get(cfg, "preset", "tiny_qwen2")
  if not hasattr(models.ModelConfig, preset):
    raise ValueError(f"config.model.preset={preset!r} is not a ModelConfig preset")
  mc = getattr(models.ModelConfig, preset)()
  overrides = dict(_get(cfg, "overrides", {}) or {})
  valid = set(mc.__dataclass_fields__)
  unknown = sorted(set(overrides) - valid)
  if unknown:
    raise ValueError(f"config.model.overrides has unknown ModelConfig fields {unknown}")
  if "vocab_size" not in overrides:
    overrides["vocab_size"] = -(-vocab_size // 8) * 8  # round up: friendlier matmul shapes
  for key in ("dtype", "param_dtype", "remat"):
    if _get(cfg, key) is not None:
      overrides[key] = cfg[key]
  return mc.replace(**overrides)


def build_model(cfg: Any, *, vocab_size: int, seed: int, shardings: Any = None
                ) -> tuple[nnx.Module, models.ModelConfig]:
  """``init='preset'``: random init of a preset; ``init='hf'``: load ``cfg.path`` (safetensors).

  ``shardings``: one sharding per parameter (``parallel.mesh.param_shardings`` of
  ``abstract_model``), or None for the default device. With them the params are born sharded: a
  checkpoint is read slice by slice onto the devices that hold each slice, a random init runs
  under jit with these output shardings; no device ever holds the whole model.
  """
  init = _get(cfg, "init", "preset")
  if init == "hf":
    path = _get(cfg, "path")
    if not path:
      raise ValueError("config.model.init='hf' needs config.model.path (a local HF checkpoint dir)")
    path = hub.resolve_model_path(path)  # a directory, or org/name in the local HF cache
    model, mc = models.load_hf(path, dtype=_get(cfg, "param_dtype", "float32"), shardings=shardings)
    if mc.vocab_size < vocab_size:
      raise ValueError(f"tokenizer has {vocab_size} ids but the checkpoint's vocab is {mc.vocab_size}")
    overrides = {k: cfg[k] for k in ("dtype", "remat") if _get(cfg, k) is not None}
    if overrides:  # same weights, another compute dtype / remat setting
      mc = mc.replace(**overrides)
      _, state = nnx.split(model)
      graphdef = nnx.split(nnx.eval_shape(lambda: models.Transformer(mc, rngs=nnx.Rngs(0))))[0]
      model = nnx.merge(graphdef, state)
    return model, mc
  if init != "preset":
    raise ValueError(f"config.model.init={init!r}; choose 'preset' or 'hf'")
  mc = model_config(cfg, vocab_size)
  return init_model(mc, seed, shardings=shardings), mc


def abstract_model(cfg: Any, *, vocab_size: int) -> tuple[nnx.Module, models.ModelConfig]:
  """The model ``build_model`` would return, as shapes only (no weights read or initialised):
  the restore target for a checkpoint of the run (``experiments/eval.py``) and the shapes the
  trainer derives its param shardings from before it builds the model."""
  if _get(cfg, "init", "preset") == "hf":
    path = _get(cfg, "path")
    if not path:
      raise ValueError("config.model.init='hf' needs config.model.path (a local HF checkpoint dir)")
    path = hub.resolve_model_path(path)  # a directory, or org/name in the local HF cache
    from rlvr_jax.models import hf  # pylint: disable=import-outside-toplevel
    dtype = _get(cfg, "param_dtype", "float32")
    mc = models.ModelConfig.from_hf_dict(hf.read_config(path), param_dtype=dtype, dtype=dtype)
    overrides = {k: cfg[k] for k in ("dtype", "remat") if _get(cfg, k) is not None}
    mc = mc.replace(**overrides) if overrides else mc
  else:
    mc = model_config(cfg, vocab_size)
  return nnx.eval_shape(lambda: models.Transformer(mc, rngs=nnx.Rngs(0))), mc


def init_model(mc: models.ModelConfig, seed: int, *, shardings: Any = None) -> nnx.Module:
  """Random init inside one jit: one compile instead of one small one per parameter shape.
  ``shardings`` (one per parameter) become the jit's output shardings, so each device computes only
  its own slice; the values are the same as unsharded (threefry draws are partitionable).

  The key is an argument, not a constant of the traced function, so no compiler pass can evaluate
  the draws at compile time (constant folding). With a constant key, the real-size step benchmark
  on an H200 (Qwen2.5-0.5B, jax 0.11.2) raised XLA's "Very slow compile" alarm on this function
  (``jit__lambda``) and ran past its 3-minute limit; constant folding is the suspected cause, not
  yet confirmed on hardware (on CPU both forms compile equally fast). Same values as ``nnx.Rngs(seed)``.
  """
  graphdef = nnx.split(nnx.eval_shape(lambda: models.Transformer(mc, rngs=nnx.Rngs(0))))[0]
  placement = {} if shardings is None else {"out_shardings": shardings}
  state = jax.jit(lambda key: nnx.split(models.Transformer(mc, rngs=nnx.Rngs(key)))[1],
                  **placement)(jax.random.key(seed))
  return nnx.merge(graphdef, state)


# ------------------------------------------------------------------------------------------------
# Optimizer
# ------------------------------------------------------------------------------------------------


def learning_rate_schedule(cfg: Any, total_steps: int) -> optax.Schedule:
  lr = float(_get(cfg, "lr", 1e-6))
  warmup = int(_get(cfg, "warmup_steps", 0))
  kind = _get(cfg, "schedule", "constant")
  if kind == "constant":
    decay = optax.constant_schedule(lr)
  elif kind == "cosine":
    decay = optax.cosine_decay_schedule(lr, max(1, total_steps - warmup),
                                        alpha=float(_get(cfg, "min_lr_ratio", 0.0)))
  elif kind == "linear":
    decay = optax.linear_schedule(lr, lr * float(_get(cfg, "min_lr_ratio", 0.0)),
                                  max(1, total_steps - warmup))
  else:
    raise ValueError(f"config.optim.schedule={kind!r}; choose constant, cosine or linear")
  if warmup <= 0:
    return decay
  return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), decay], [warmup])


def build_optimizer(cfg: Any, total_steps: int) -> optax.GradientTransformation:
  """AdamW (or Adam / SGD) with warmup + schedule and global-norm clipping (``cfg.grad_clip``).

  Memoised on the settings: the optimizer is a static argument of the jitted update, so handing
  back the same object for the same settings lets a second run in one process (tests, notebooks)
  reuse the compiled update instead of tracing it again.
  """
  items = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
  return _build_optimizer(json.dumps(items, sort_keys=True, default=str), int(total_steps))


@functools.lru_cache(maxsize=32)
def _build_optimizer(settings: str, total_steps: int) -> optax.GradientTransformation:
  cfg = json.loads(settings)
  name = _get(cfg, "name", "adamw")
  schedule = learning_rate_schedule(cfg, total_steps)
  if name == "adamw":
    opt = optax.adamw(schedule, b1=float(_get(cfg, "b1", 0.9)), b2=float(_get(cfg, "b2", 0.999)),
                      eps=float(_get(cfg, "eps", 1e-8)),
                      weight_decay=float(_get(cfg, "weight_decay", 0.0)))
  elif name == "adam":
    opt = optax.adam(schedule, b1=float(_get(cfg, "b1", 0.9)), b2=float(_get(cfg, "b2", 0.999)),
                     eps=float(_get(cfg, "eps", 1e-8)))
  elif name == "sgd":
    opt = optax.sgd(schedule)
  else:
    raise ValueError(f"config.optim.name={name!r}; choose adamw, adam or sgd")
  clip = _get(cfg, "grad_clip", 0.0)
  if clip and float(clip) > 0:
    opt = optax.chain(optax.clip_by_global_norm(float(clip)), opt)
  return opt


# ------------------------------------------------------------------------------------------------
# Loss
# ------------------------------------------------------------------------------------------------


def aux_terms(algo: Any) -> tuple:
  """``config.algo.aux_losses`` ([{name, weight, options}]) as LossSpec.aux triples (checked)."""
  from rlvr_jax import algorithms
  out = []
  for i, term in enumerate(list(_get(algo, "aux_losses", []) or [])):
    term = term.to_dict() if hasattr(term, "to_dict") else dict(term)
    unknown = set(term) - {"name", "weight", "options"}
    if unknown or "name" not in term:
      raise ValueError(f"config.algo.aux_losses[{i}] must be {{name, weight, options}}, got keys "
                       f"{sorted(term)}")
    name = term["name"]
    if name not in algorithms.AUX_LOSSES:
      raise ValueError(f"config.algo.aux_losses[{i}]: unknown auxiliary loss {name!r}; choose one "
                       f"of {sorted(algorithms.AUX_LOSSES)}")
    from rlvr_jax.episodes.registry import check_options  # pylint: disable=import-outside-toplevel
    options = check_options("auxiliary loss", name, algorithms.AUX_LOSSES[name],
                            term.get("options") or {},
                            ("logp", "mask", "batch", "global_tokens", "global_seqs"))
    out.append((name, float(term.get("weight", 1.0)), freeze(options)))
  return tuple(out)


def loss_spec(algo: Any, *, temperature: float, logprob_impl: str | None,
              on_policy: bool) -> LossSpec:
  from rlvr_jax import algorithms
  name = _get(algo, "loss", "ppo_clip")
  if name not in algorithms.POLICY_LOSSES:
    raise ValueError(f"config.algo.loss={name!r}; registered: {sorted(algorithms.POLICY_LOSSES)}")
  options = _get(algo, "loss_options", {}) or {}
  options = algorithms.check_loss_options(name, options.to_dict() if hasattr(options, "to_dict")
                                          else options)
  agg = _get(algo, "agg_mode", "token-mean")
  if agg not in algorithms.AGGREGATIONS:
    raise ValueError(f"config.algo.agg_mode={agg!r}; registered: {sorted(algorithms.AGGREGATIONS)}")
  kl_coef = float(_get(algo, "kl_coef", 0.0))
  if kl_coef and _get(algo, "kl_in_reward", False):
    kl_coef_loss = 0.0  # the KL is subtracted from the reward instead
  else:
    kl_coef_loss = kl_coef
  return LossSpec(
      loss=name, agg_mode=agg,
      clip_low=_opt_float(_get(algo, "clip_low")), clip_high=_opt_float(_get(algo, "clip_high")),
      dual_clip=_opt_float(_get(algo, "dual_clip")), kl_coef=kl_coef_loss,
      kl_estimator=_get(algo, "kl_estimator", "k3"),
      entropy_coef=float(_get(algo, "entropy_coef", 0.0)),
      norm_constant=_opt_float(_get(algo, "norm_constant")), temperature=float(temperature),
      logprob_impl=logprob_impl, on_policy=on_policy, loss_options=freeze(options),
      aux=aux_terms(algo))


def _opt_float(x):
  return None if x is None else float(x)


def count_params(params: Any) -> int:
  return int(sum(x.size for x in jax.tree.leaves(params)))


def zeros_like_tree(tree: Any) -> Any:
  return jax.tree.map(jnp.zeros_like, tree)
