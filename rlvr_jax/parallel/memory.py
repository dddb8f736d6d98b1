"""Memory plan of a run config: bytes per device, phase by phase, under a mesh, against a device.

``plan(config)`` says, before any run, whether the config's command fits the hardware its card
names (``config.hardware``) and, when it does not, which mesh, chunk sizes and remat setting do.
Nothing is allocated: parameter and optimizer shapes come from ``nnx.eval_shape`` of the model and
``jax.eval_shape`` of the optimizer's init (a 32B model plans in seconds on a laptop CPU); every
other term is a product of the run's sizes. Each array is split with the run's own rules
(``rules.logical_to_spec``, the function that places the real arrays), so a dimension its mesh
axes do not divide stays whole here too (e.g. 4 kv heads on tensor=8).

What one device holds (p / c: bytes of the param / compute dtype; L layers, D width, N and K query
and kv heads of size H, F MLP width, V vocabulary, Tp prompt and Tn new tokens):

  resident  params; optimizer state (AdamW: mu and nu shaped like the params, in p, and a step
            count); the reference policy (a copy of the params) when the loss, the KL term or the
            episode needs one (the trainer's own ``loop.plugins`` decides).
  rollout   one sampler call of R rows (``rollout.max_rows_per_call``: prompts x G; the call pads
            its prompts to a power of two and to the batch split): the KV cache, k and v
            [L, R, K, Tp - 1 + Tn, H] in c, plus the smaller cache it is copied from when the
            decode loop grows it at its last phase change; the decode step's logits and sampling
            copies [R, V] f32 (3, or 6 with top-p's sort) and its attention scores [R, N, S] f32;
            one layer's prefill scores [prompts, N, Tp, Tp] f32; weights gathered for FSDP (two
            layers and the unembedding, in p).
  update    one micro-batch of b rows of T = Tp + Tn tokens: gradients in p (the accumulator and
            the micro-batch's own when there are several); activations (below); the mini-batch's
            rows; the log-prob kernel's tiles and its f32 gradient of the hidden states; gathered
            weights.
  eval      as rollout, with ``eval.batch_size`` rows per call, when the config evaluates.

Activations of b rows x T tokens, per layer: a linear part, per token c (4 D + 3 N H + 4 K H +
3 F) + 8 D bytes (residual stream, norms, q / k / v around RoPE, attention output, the SwiGLU
hidden), and the attention scores [b, N, T, T]: the masked scores, their exponentials and the
probabilities in f32 plus the mask (13 bytes, and c more when c is not f32). The model runs plain
softmax attention, so this part grows as T^2 and rules long responses. Without remat all L layers
keep theirs; with remat (``model.remat``) each layer keeps its input [b, T, D] and two layers' sets
are live (the recomputed layer and its gradients). The no-remat constants match XLA's compiled
memory analysis on CPU within 20% (tests/parallel/test_memory_plan_parallel.py); the remat
figure is not checked there, since XLA:CPU's schedule keeps the recomputed values alive (its
compiled temp memory is the same with and without remat, for a pure-JAX toy as well).

A device fits when the resident state plus its largest phase is at most ``usable`` (0.9) of its
memory; the rest is for the runtime, fragmentation and the estimate's error. On GPUs JAX
preallocates 75% by default: set ``XLA_PYTHON_CLIENT_MEM_FRACTION=0.9`` to use what the plan
counts on.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from flax import nnx

from rlvr_jax import sampling
from rlvr_jax.models import transformer
from rlvr_jax.models.config import ModelConfig
from rlvr_jax.parallel import rules as rules_lib

GIB = 1024 ** 3
USABLE = 0.9  # fraction of a device's memory the plan may fill
MAX_TENSOR = 8  # tensor parallelism stays within one node's fast interconnect
# Log-prob kernel tile [tokens, vocab] f32 bytes, CPU and accelerators (kernels/logprob/xla.py).
LOGPROB_TILES = {"cpu": 1024 * 2048 * 4, "gpu": 4096 * 8192 * 4}


def _replace(preset: str, **fields) -> ModelConfig:
  return getattr(ModelConfig, preset)().replace(**fields)


# Checkpoints the cards name that have no ModelConfig preset: shapes from their public config.json.
MODELS = {
    "qwen2p5_32b": lambda: _replace("qwen2p5_7b", hidden_size=5120, intermediate_size=27648,
                                    num_layers=64, num_heads=40, num_kv_heads=8),
    "qwen3_14b": lambda: _replace("qwen3_8b", hidden_size=5120, intermediate_size=17408,
                                  num_layers=40, num_heads=40, num_kv_heads=8),
    # Qwen2.5-Math: the Qwen2.5 shapes with a 4,096-position context (rope_theta 10,000).
    "qwen2p5_math_7b": lambda: _replace("qwen2p5_7b", max_position_embeddings=4096,
                                        rope_theta=10000.0),
    "qwen2p5_math_1p5b": lambda: _replace("qwen2p5_1p5b", max_position_embeddings=4096,
                                          rope_theta=10000.0),
    # DeepSeekMath 7B: a Llama-architecture model with full multi-head attention (30 layers).
    "deepseek_math_7b": lambda: _replace(
        "llama3p1_8b", vocab_size=102400, hidden_size=4096, intermediate_size=11008, num_layers=30,
        num_heads=32, num_kv_heads=32, rope_type="default", rope_theta=10000.0,
        max_position_embeddings=4096, bos_token_id=100000, eos_token_ids=(100001,)),
}


@dataclasses.dataclass(frozen=True)
class Hardware:
  device: str  # e.g. "H100-80GB"
  count: int  # devices in the mesh (all hosts together)
  memory_gib: float  # memory of one device

  def __str__(self) -> str:
    return f"{self.count} x {self.device}"


@dataclasses.dataclass(frozen=True)
class Settings:
  """The knobs a plan varies: mesh axis sizes, rollout rows per sampler call, rows per micro-batch,
  eval rows per sampler call, remat."""
  mesh: tuple[tuple[str, int], ...]
  rows_per_call: int
  micro_batch: int
  eval_batch: int
  remat: bool

  @property
  def mesh_dict(self) -> dict[str, int]:
    return dict(self.mesh)

  def mesh_text(self) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in self.mesh) + "}"

  def flags(self) -> list[str]:
    """The command-line overrides that select these settings."""
    out = [f"--config.mesh.{k}={v}" for k, v in self.mesh]
    out += [f"--config.rollout.max_rows_per_call={self.rows_per_call}",
            f"--config.algo.micro_batch_size={self.micro_batch}",
            f"--config.eval.batch_size={self.eval_batch}",
            f"--config.model.remat={self.remat}"]
    return out


@dataclasses.dataclass(frozen=True)
class Run:
  """The sizes of a run that memory depends on (from the config)."""
  prompts: int  # P per step (one generation batch)
  samples: int  # G
  prompt_len: int  # data.max_prompt_len
  new_tokens: int  # rollout.max_new_tokens
  minibatches: int
  needs_ref: bool
  top_p: float
  evaluates: bool
  eval_top_p: float
  logprob_tile: int = LOGPROB_TILES["gpu"]


class _Mesh:
  """The one attribute of a Mesh that the sharding rules read: axis name -> size."""

  def __init__(self, shape: Mapping[str, int]):
    self.shape = dict(shape)


def _per_device(names: Sequence[str | None], shape: Sequence[int], rules, mesh: _Mesh) -> int:
  """Elements of an array of ``shape`` that one device holds, split by ``names`` and the rules."""
  spec = rules_lib.logical_to_spec(names, shape, rules, mesh)
  n = 1
  for size, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
    axes = () if axes is None else (axes,) if isinstance(axes, str) else axes
    n *= size // math.prod(mesh.shape[a] for a in axes)
  return n


# ------------------------------------------------------------------------------------------------
# Model, hardware and run sizes from the config
# ------------------------------------------------------------------------------------------------


def _get(section: Any, key: str, default: Any = None) -> Any:
  try:
    value = section.get(key) if hasattr(section, "get") else section[key]
  except (KeyError, AttributeError):
    return default
  return default if value is None else value


def _tokenizer_vocab(cfg: Any) -> int | None:
  kind = _get(cfg.tokenizer, "kind", "pretrained")
  if kind == "char" and _get(cfg.tokenizer, "alphabet"):
    from rlvr_jax import models  # pylint: disable=import-outside-toplevel
    return models.char_level(cfg.tokenizer.alphabet).vocab_size
  if kind in ("bpe", "sentencepiece"):
    return int(_get(cfg.tokenizer, "vocab_size", 512))
  return None


def model_of(cfg: Any) -> tuple[str, ModelConfig]:
  """(name, ModelConfig) of the model the config's command trains, with the trainer's dtypes.

  ``model.init="preset"``: the preset and overrides, as the trainer builds them. ``"hf"``: the
  checkpoint's config.json when ``model.path`` is a local directory, else ``hardware.model`` (a
  ModelConfig preset or a name in ``MODELS``), the card's stand-in for the checkpoint."""
  from rlvr_jax.training import builders  # pylint: disable=import-outside-toplevel
  m = cfg.model
  if _get(m, "init", "preset") == "preset":
    vocab = _tokenizer_vocab(cfg)
    if vocab is None:
      vocab = getattr(ModelConfig, _get(m, "preset", "tiny_qwen2"))().vocab_size
    return str(_get(m, "preset", "tiny_qwen2")), builders.model_config(m, vocab)
  name = _get(_get(cfg, "hardware", {}), "model")
  path = _get(m, "path")
  mc = None
  if path:
    from rlvr_jax.models import hf, hub  # pylint: disable=import-outside-toplevel
    try:
      mc = ModelConfig.from_hf_dict(hf.read_config(hub.resolve_model_path(path)))
      name = str(path)
    except (OSError, ValueError):
      mc = None
  if mc is None:
    if not name:
      raise ValueError("model.init='hf' plans need the checkpoint's shapes: pass "
                       "--config.model.path=<a local checkpoint directory> or set "
                       "config.hardware.model (a ModelConfig preset or one of "
                       f"{sorted(MODELS)})")
    if name in MODELS:
      mc = MODELS[name]()
    elif hasattr(ModelConfig, name) and not name.startswith("_"):
      mc = getattr(ModelConfig, name)()
    else:
      raise ValueError(f"config.hardware.model={name!r} is neither a ModelConfig preset nor one of "
                       f"{sorted(MODELS)}")
  dtype = _get(m, "param_dtype", "float32")  # load_hf: params and compute in this dtype
  overrides = dict(param_dtype=dtype, dtype=_get(m, "dtype", dtype))
  if _get(m, "remat") is not None:
    overrides["remat"] = bool(m.remat)
  return name, mc.replace(**overrides)


def hardware_of(cfg: Any) -> Hardware | None:
  """``config.hardware`` as a Hardware, or None when the config names none."""
  hw = _get(cfg, "hardware", {})
  device, count, memory = _get(hw, "device"), _get(hw, "count"), _get(hw, "memory_gib")
  if not device or not count or not memory:
    return None
  return Hardware(str(device), int(count), float(memory))


def run_of(cfg: Any) -> Run:
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  needs_ref = bool(loop.plugins(cfg)["needs_ref"])
  evaluates = int(_get(cfg.eval, "size", 0)) > 0 and (
      bool(_get(cfg.eval, "before", False)) or bool(_get(cfg.eval, "after", False)))
  return Run(prompts=int(cfg.rollout.prompts_per_step), samples=int(cfg.rollout.num_samples),
             prompt_len=int(cfg.data.max_prompt_len), new_tokens=int(cfg.rollout.max_new_tokens),
             minibatches=int(cfg.algo.num_minibatches), needs_ref=needs_ref,
             top_p=float(_get(cfg.rollout, "top_p", 1.0)), evaluates=evaluates,
             eval_top_p=float(_get(cfg.eval, "top_p", 1.0)))


def settings_of(cfg: Any, run: Run, num_devices: int, mc: ModelConfig) -> Settings:
  """The config's own settings (its mesh resolved for ``num_devices``)."""
  from rlvr_jax.parallel import mesh as mesh_lib  # pylint: disable=import-outside-toplevel
  mesh = mesh_lib.mesh_shape(dict(cfg.mesh), num_devices)
  rows = int(_get(cfg.rollout, "max_rows_per_call", 0)) or run.prompts * run.samples
  micro = int(_get(cfg.algo, "micro_batch_size", 0)) or _minibatch_rows(run)
  return Settings(mesh=tuple(mesh.items()), rows_per_call=min(rows, run.prompts * run.samples),
                  micro_batch=micro, eval_batch=int(_get(cfg.eval, "batch_size", 256)),
                  remat=bool(mc.remat))


def _minibatch_rows(run: Run) -> int:
  return max(1, run.prompts * run.samples // run.minibatches)


# ------------------------------------------------------------------------------------------------
# Terms
# ------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _abstract(mc: ModelConfig, optim: str) -> tuple[list, list]:
  """(param leaves, optimizer leaves) as (shape, itemsize, logical names or None, in a layer)."""
  from rlvr_jax.training import builders  # pylint: disable=import-outside-toplevel
  model = transformer.abstract_shapes(mc)
  state = nnx.split(model)[1]
  axes = transformer.logical_axes(model)
  is_names = lambda n: isinstance(n, tuple) and all(isinstance(a, str) for a in n)  # noqa: E731
  names = jax.tree.leaves(axes, is_leaf=is_names)
  paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(state)[0]]
  leaves = jax.tree.leaves(state)
  assert len(leaves) == len(names), (len(leaves), len(names))  # a model of nnx.Params only
  params = [(tuple(x.shape), np.dtype(x.dtype).itemsize, n, "layers" in p)
            for x, n, p in zip(leaves, names, paths)]
  tx = builders.build_optimizer(json.loads(optim), 1000)
  treedef = jax.tree.structure(state)

  def like_params(x):
    try:
      return jax.tree.structure(x) == treedef
    except Exception:  # pylint: disable=broad-except
      return False

  opt = []
  for sub in jax.tree.leaves(jax.eval_shape(tx.init, state), is_leaf=like_params):
    if like_params(sub):
      opt += [(tuple(x.shape), np.dtype(x.dtype).itemsize, n, l)
              for x, (_, _, n, l) in zip(jax.tree.leaves(sub), params)]
    else:
      opt.append((tuple(sub.shape), np.dtype(sub.dtype).itemsize, None, False))
  return params, opt


def _tree_bytes(leaves, rules, mesh: _Mesh, *, layer_only: bool = False) -> int:
  total = 0
  for shape, itemsize, names, in_layer in leaves:
    if layer_only and not in_layer:
      continue
    n = math.prod(shape) if names is None else _per_device(names, shape, rules, mesh)
    total += n * itemsize
  return total


def _rollout(mc: ModelConfig, run: Run, rows: int, samples: int, top_p: float, rules, mesh: _Mesh,
             gathered: int) -> dict[str, int]:
  """Per-device bytes of one sampler call of ``rows`` rows (``samples`` per prompt)."""
  c = np.dtype(mc.dtype).itemsize
  prompts = max(1, rows // samples)
  split = math.prod(mesh.shape.get(a, 1) for a in rules_lib.mesh_axes_for("batch", rules))
  prompts = -(-sampling.bucket_batch_size(prompts) // split) * split  # MeshSampler's padding
  b = prompts * samples
  tp = sampling.bucket_prompt_length(run.prompt_len)
  n = run.new_tokens
  ends = sampling.phase_ends(n, sampling.SamplerConfig(max_new_tokens=n).decode_phases)
  prev = tp - 1 + (ends[-2] if len(ends) > 1 else 0)

  def cache(slots):  # k and v [L, B, K, S, H]
    return 2 * c * _per_device(("layer", "batch", "kv_heads", "length", "head_dim"),
                               (mc.num_layers, b, mc.num_kv_heads, slots, mc.head_dim), rules, mesh)

  rows_dev = _per_device(("batch",), (b,), rules, mesh)
  heads_dev = _per_device(("q_heads",), (mc.num_heads,), rules, mesh)
  copies = 6 if top_p < 1.0 else 3
  decode = rows_dev * (copies * mc.vocab_size + 2 * heads_dev * (tp - 1 + n)) * 4
  prefill = (8 + c) * _per_device(("batch", "q_heads", None, None),
                                  (prompts, mc.num_heads, tp, tp), rules, mesh)
  return {"kv_cache": cache(tp - 1 + n) + cache(prev), "kv_final": cache(tp - 1 + n),
          "rows": b, "other": decode + prefill + gathered}


def activation_bytes(mc: ModelConfig, rows: int, tokens: int, *, remat: bool, rules=None,
                     mesh: Mapping[str, int] | _Mesh | None = None) -> int:
  """Estimated activation memory of a forward + backward over ``rows`` x ``tokens`` (per device)."""
  rules = rules_lib.as_rules(rules)
  mesh = mesh if isinstance(mesh, _Mesh) else _Mesh(mesh or {})
  c = np.dtype(mc.dtype).itemsize
  b, t = rows, tokens
  x = _per_device(("batch", "length", "embed"), (b, t, mc.hidden_size), rules, mesh)
  q = _per_device(("batch", "length", "q_heads", "head_dim"), (b, t, mc.num_heads, mc.head_dim),
                  rules, mesh)
  kv = _per_device(("batch", "length", "kv_heads", "head_dim"),
                   (b, t, mc.num_kv_heads, mc.head_dim), rules, mesh)
  f = _per_device(("batch", "length", "mlp"), (b, t, mc.intermediate_size), rules, mesh)
  s = _per_device(("batch", "q_heads", "length", None), (b, mc.num_heads, t, t), rules, mesh)
  mask = _per_device(("batch", None, None), (b, t, t), rules, mesh)
  linear = c * (4 * x + 3 * q + 4 * kv + 3 * f) + 4 * 2 * x
  quadratic = s * (13 + (c if c != 4 else 0))  # masked scores, exp, probs in f32; the mask
  layer = linear + quadratic
  if remat:
    return mc.num_layers * c * x + 2 * layer + mask
  return mc.num_layers * layer + mask


def _update(mc: ModelConfig, run: Run, micro: int, remat: bool, rules, mesh: _Mesh,
            params: int, gathered: int) -> dict[str, int]:
  c = np.dtype(mc.dtype).itemsize
  mb_rows = _minibatch_rows(run)
  tp = max(16, run.prompt_len)
  t = tp + run.new_tokens
  num_micro = max(1, mb_rows // min(micro, mb_rows))
  grads = params * (2 if num_micro > 1 else 1)
  acts = activation_bytes(mc, min(micro, mb_rows), t, remat=remat, rules=rules, mesh=mesh)
  mb_dev = _per_device(("batch",), (mb_rows,), rules, mesh)
  micro_dev = _per_device(("batch",), (min(micro, mb_rows),), rules, mesh)
  batch = mb_dev * (t * 9 + run.new_tokens * 20)  # tokens, positions, masks; response fields
  kernel = 3 * run.logprob_tile + micro_dev * run.new_tokens * mc.hidden_size * (4 + c)
  return {"grads": grads, "activations": acts, "other": batch + kernel + gathered}


@functools.lru_cache(maxsize=256)
def _state_bytes(mc: ModelConfig, optim: str, mesh: tuple, rules: tuple) -> tuple[int, int, int]:
  """(params, optimizer state, FSDP-gathered weights) bytes per device."""
  param_leaves, opt_leaves = _abstract(mc.replace(remat=False), optim)
  shape = _Mesh(dict(mesh))
  params = _tree_bytes(param_leaves, rules, shape)
  opt = _tree_bytes(opt_leaves, rules, shape)
  gathered = 0
  if shape.shape.get("fsdp", 1) > 1:
    unsharded = _Mesh(dict(shape.shape, fsdp=1))
    layer = _tree_bytes(param_leaves, rules, unsharded, layer_only=True) // mc.num_layers
    unembed = _per_device(("embed", "vocab"), (mc.hidden_size, mc.vocab_size), rules, unsharded)
    gathered = 2 * layer + unembed * np.dtype(mc.param_dtype).itemsize
  return params, opt, gathered


def estimate(mc: ModelConfig, run: Run, settings: Settings, *, optim: str = '{"name": "adamw"}',
             rules=None) -> dict[str, Any]:
  """Per-device bytes of every term and phase for one choice of settings."""
  rules = rules_lib.as_rules(rules)
  mesh = _Mesh(settings.mesh_dict)
  mc = mc.replace(remat=settings.remat)
  params, opt, gathered = _state_bytes(mc.replace(remat=False), optim, settings.mesh, rules)
  ref = params if run.needs_ref else 0
  resident = params + opt + ref
  rollout = _rollout(mc, run, settings.rows_per_call, run.samples, run.top_p, rules, mesh,
                     gathered)
  update = _update(mc, run, settings.micro_batch, settings.remat, rules, mesh, params, gathered)
  t = max(16, run.prompt_len) + run.new_tokens
  micro = min(settings.micro_batch, _minibatch_rows(run))
  out = dict(
      params=params, optimizer=opt, reference=ref, resident=resident,
      kv_cache=rollout["kv_cache"], kv_final=rollout["kv_final"], rollout_rows=rollout["rows"],
      rollout_other=rollout["other"],
      grads=update["grads"],
      activations_no_remat=activation_bytes(mc, micro, t, remat=False, rules=rules, mesh=mesh),
      activations_remat=activation_bytes(mc, micro, t, remat=True, rules=rules, mesh=mesh),
      activations=update["activations"], update_other=update["other"])
  out["rollout"] = resident + rollout["kv_cache"] + rollout["other"]
  out["update"] = resident + update["grads"] + update["activations"] + update["other"]
  out["eval"] = 0
  if run.evaluates:
    # The greedy pass: eval.batch_size prompts of one sample (the sampled pass has as many rows).
    ev = _rollout(mc, run, settings.eval_batch, 1, run.eval_top_p, rules, mesh, gathered)
    out["eval_kv_cache"], out["eval_other"] = ev["kv_cache"], ev["other"]
    out["eval"] = resident + ev["kv_cache"] + ev["other"]
  out["peak"] = max(out["rollout"], out["update"], out["eval"])
  return out


# ------------------------------------------------------------------------------------------------
# Search and plan
# ------------------------------------------------------------------------------------------------


def _divisors(n: int) -> list[int]:
  return [d for d in range(1, n + 1) if n % d == 0]


def meshes(count: int, max_tensor: int = MAX_TENSOR) -> list[dict[str, int]]:
  """Every data x fsdp x tensor factorisation of ``count`` devices (tensor <= ``max_tensor``)."""
  out = []
  for t in _divisors(count):
    if t > max_tensor:
      continue
    for f in _divisors(count // t):
      out.append({"data": count // (t * f), "fsdp": f, "tensor": t})
  return out


def _largest(candidates: Sequence[int], fits) -> int | None:
  for value in sorted(set(candidates), reverse=True):
    if fits(value):
      return value
  return None


def search(mc: ModelConfig, run: Run, budget: float, count: int, given: Settings, *,
           optim: str, rules=None) -> Settings | None:
  """The settings that fit ``budget`` bytes per device with the fewest compromises: no remat
  unless the config has it or nothing fits without, then the most rollout rows per sampler call,
  the largest micro-batch (a multiple of the batch split, so no device repeats another's rows),
  the most eval rows per call, the least tensor, then fsdp, parallelism."""
  rows_options = [run.samples * k for k in _divisors(run.prompts)]
  mb_rows = _minibatch_rows(run)
  eval_options = [given.eval_batch >> i for i in range(given.eval_batch.bit_length())]
  best, best_key = None, None
  for axes in meshes(count):
    mesh = tuple(axes.items())

    def peak(**kw):
      s = dataclasses.replace(given, mesh=mesh, **kw)
      return estimate(mc, run, s, optim=optim, rules=rules)

    base = peak()
    if base["resident"] > budget:
      continue
    # Micro-batches of whole multiples of the batch split: a smaller one is computed redundantly.
    batch_axes = rules_lib.mesh_axes_for("batch", rules_lib.as_rules(rules))
    split = math.prod(axes.get(a, 1) for a in batch_axes)
    micro_options = [m for m in _divisors(mb_rows) if m % split == 0] or _divisors(mb_rows)
    rows = _largest(rows_options, lambda r: peak(rows_per_call=r)["rollout"] <= budget)
    ev = (_largest(eval_options, lambda e: peak(eval_batch=e)["eval"] <= budget)
          if run.evaluates else given.eval_batch)
    if rows is None or ev is None:
      continue
    for remat in sorted({given.remat, True}):  # False (no recompute) first when allowed
      micro = _largest(micro_options,
                       lambda m: peak(micro_batch=m, remat=remat)["update"] <= budget)
      if micro is not None:
        break
    if micro is None:
      continue
    key = (remat and not given.remat, -rows, -micro, -ev, axes["tensor"], axes["fsdp"])
    if best_key is None or key < best_key:
      best = Settings(mesh=mesh, rows_per_call=rows, micro_batch=micro, eval_batch=ev,
                      remat=remat)
      best_key = key
  return best


def plan(config: Any, *, devices: int | None = None, device_memory_bytes: float | None = None,
         usable: float = USABLE, settings: Settings | None = None, suggest: bool = True) -> dict:
  """The memory plan of ``config``'s command.

  Args:
    config: a run config (``configs/*.py``'s ``get_config()``, with command-line overrides).
    devices, device_memory_bytes: the hardware; default ``config.hardware`` (count, memory_gib).
      Without either, the plan has no verdict (``fits`` None).
    usable: fraction of a device's memory the plan may fill.
    settings: mesh / chunk / remat to plan instead of the config's own.
    suggest: when the config's settings do not fit, search for ones that do.

  Returns a dict: ``model`` (name), ``num_params``, ``model_config``, ``run``, ``hardware`` (or
  None), ``budget`` (bytes), ``given`` / ``suggested`` (Settings), ``estimate`` /
  ``suggested_estimate`` (per-device bytes of each term and phase), ``fits`` (bool or None),
  ``context`` (prompt + new tokens vs the model's positions: (needed, available)).
  """
  name, mc = model_of(config)
  hw = hardware_of(config)
  run = run_of(config)
  if hw is not None and hw.device.lower().startswith("cpu"):
    run = dataclasses.replace(run, logprob_tile=LOGPROB_TILES["cpu"])
  count = int(devices or (hw.count if hw else 0) or 1)
  memory = device_memory_bytes or (hw.memory_gib * GIB if hw else None)
  if hw is None and memory:
    hw = Hardware("device", count, memory / GIB)
  elif hw is not None and (devices or device_memory_bytes):
    hw = Hardware(hw.device, count, memory / GIB)
  optim = _optim_key(config)
  rules = _get(config, "sharding_rules")
  given = settings or settings_of(config, run, count, mc)
  est = estimate(mc, run, given, optim=optim, rules=rules)
  budget = usable * memory if memory else None
  fits = None if budget is None else est["peak"] <= budget
  suggested, suggested_est = (given, est) if fits else (None, None)
  if fits is False and suggest:
    suggested = search(mc, run, budget, count, given, optim=optim, rules=rules)
    if suggested is not None:
      suggested_est = estimate(mc, run, suggested, optim=optim, rules=rules)
  return dict(model=name, model_config=mc, num_params=mc.num_params, run=run, hardware=hw,
              devices=count, budget=budget, usable=usable, given=given, estimate=est, fits=fits,
              suggested=suggested, suggested_estimate=suggested_est,
              context=(run.prompt_len + run.new_tokens, mc.max_position_embeddings))


def _optim_key(config: Any) -> str:
  o = config.optim
  items = o.to_dict() if hasattr(o, "to_dict") else dict(o)
  return json.dumps(items, sort_keys=True, default=str)


# ------------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------------

ROWS = (("params", "params"), ("optimizer state", "optimizer"), ("reference model", "reference"),
        ("rollout KV cache (peak)", "kv_cache"), ("rollout other", "rollout_other"),
        ("update gradients", "grads"), ("update activations, no remat", "activations_no_remat"),
        ("update activations, remat", "activations_remat"), ("update other", "update_other"),
        ("eval KV cache (peak)", "eval_kv_cache"), ("eval other", "eval_other"),
        ("= rollout phase", "rollout"), ("= update phase", "update"), ("= eval phase", "eval"),
        ("peak", "peak"))


def card_line(result: Mapping[str, Any], command: str) -> str:
  """The reproduction card's line for a plan: the settings that fit and the command."""
  s = result["suggested"]
  if s is None:
    return f"Memory plan: nothing fits {result['hardware']} ({command})"
  return (f"Memory plan: mesh {s.mesh_text()}, rollout.max_rows_per_call {s.rows_per_call}, "
          f"algo.micro_batch_size {s.micro_batch}, eval.batch_size {s.eval_batch}, model.remat "
          f"{s.remat} fit {result['hardware']} ({command})")


def format_plan(result: Mapping[str, Any], command: str) -> str:
  """A markdown table of the plan: the config's settings and, when they do not fit, the
  suggested ones, per device in GiB."""
  run, hw, mc = result["run"], result["hardware"], result["model_config"]
  lines = [f"# {command}",
           f"# model {result['model']}: {result['num_params'] / 1e9:.2f}B params, "
           f"{mc.param_dtype} params / {mc.dtype} compute; P={run.prompts} x G={run.samples} rows, "
           f"{run.prompt_len} prompt + {run.new_tokens} new tokens, {run.minibatches} "
           f"mini-batch(es), "
           f"reference model {'kept' if run.needs_ref else 'none'}"]
  if hw is not None:
    lines.append(f"# hardware {hw}: {hw.memory_gib:g} GiB per device, "
                 f"{100 * result['usable']:.0f}% usable = {result['budget'] / GIB:.1f} GiB")
  else:
    lines.append("# hardware: none named (config.hardware, or --devices and --memory_gib): "
                 "no verdict")
  cols = [("config", result["given"], result["estimate"])]
  if result["fits"] is False:
    if result["suggested"] is not None:
      cols.append(("fits", result["suggested"], result["suggested_estimate"]))
  head = "| per device | " + " | ".join(c[0] for c in cols) + " |"
  lines += [head, "|---|" + "---:|" * len(cols)]
  settings_rows = (("mesh", lambda s: s.mesh_text()),
                   ("rollout rows per sampler call", lambda s: str(s.rows_per_call)),
                   ("micro-batch rows", lambda s: str(s.micro_batch)),
                   ("eval rows per sampler call", lambda s: str(s.eval_batch)),
                   ("remat", lambda s: "on" if s.remat else "off"))
  for label, fn in settings_rows:
    lines.append(f"| {label} | " + " | ".join(fn(c[1]) for c in cols) + " |")
  for label, key in ROWS:
    if any(key in c[2] for c in cols):
      lines.append(f"| {label} (GiB) | " + " | ".join(
          f"{c[2].get(key, 0) / GIB:.2f}" for c in cols) + " |")
  if result["budget"] is not None:
    verdicts = ["yes" if c[2]["peak"] <= result["budget"] else "NO" for c in cols]
    lines.append(f"| fits {result['budget'] / GIB:.1f} GiB? | " + " | ".join(verdicts) + " |")
  needed, available = result["context"]
  if needed > available:
    lines.append(f"context: {needed} prompt + new tokens exceed the model's {available} positions "
                 "(the sampler refuses such prompts)")
  if result["fits"] is False:
    if result["suggested"] is None:
      lines.append(f"verdict: does not fit {hw}, and no data x fsdp x tensor mesh, chunk size, "
                   "micro-batch or remat setting makes it fit")
    else:
      lines.append(f"verdict: does not fit {hw} as configured; these overrides fit: "
                   + " ".join(result["suggested"].flags()))
  elif result["fits"]:
    lines.append(f"verdict: fits {hw}")
  return "\n".join(lines)
