"""Hugging Face checkpoint import / export: ``load_hf`` and ``save_hf``.

A checkpoint directory holds ``config.json`` (transformers v4 or v5 layout, see config.py) and either
``model.safetensors`` or shards listed in ``model.safetensors.index.json``. The conversion is one
table (``hf_name_table``) from HF tensor names to parameter paths of `Transformer`, with one of three
reshapes:

- ``same``: identical shape (the embedding).
- ``flat``: HF 1-D vector <-> our vector or [heads, head_dim] bias (norm scales, biases).
- ``linear``: HF ``nn.Linear`` weight [out, in] <-> our einsum kernel [in..., out...]; the number of
  leading "in" axes is stored with the entry (1 for q/k/v/gate/up/down/lm_head, 2 for o = [N, H, D]).

Loading builds the model abstractly (``nnx.eval_shape``: no parameter memory), then reads the files
tensor by tensor with ``safetensors.safe_open`` and places each converted tensor on the device before
reading the next, so host memory peaks at about one tensor, not the checkpoint. Saving writes one
shard at a time for the same reason. Errors name the file, tensor and shapes at fault.

Sharded loading (``load_hf(..., shardings=...)``) builds each parameter as a global array with
``jax.make_array_from_callback``: every process reads, through ``get_slice``, only the HF ranges that
its own devices hold, converts them on the host and puts them straight on those devices. No device
ever holds more than its shard, and a process reads about its share of the checkpoint (all of it
when every process holds a replica). Our index maps back to HF ranges because each group of our
axes that comes from one HF axis is a row-major split of it (``_hf_range``).
"""
from __future__ import annotations

import contextlib
import json
import os
import pathlib
import re
from typing import Any, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from safetensors import safe_open
from safetensors.numpy import save_file

from rlvr_jax.models.config import ModelConfig
from rlvr_jax.models.transformer import Transformer

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
DEFAULT_MAX_SHARD_BYTES = 5 * 10**9  # transformers' historical default shard size ("5GB")
# Tensors some exporters add that carry no information for this model.
_IGNORED = re.compile(r".*rotary_emb\.inv_freq$")

Entry = tuple[tuple[Any, ...], str, int]  # (parameter path, reshape kind, number of "in" axes)


def hf_name_table(config: ModelConfig) -> dict[str, Entry]:
  """HF tensor name -> (path in ``nnx.state(model, nnx.Param)``, reshape kind, in-axes)."""
  table: dict[str, Entry] = {
      "model.embed_tokens.weight": (("embed",), "same", 0),
      "model.norm.weight": (("final_norm", "scale"), "flat", 0),
  }
  if not config.tie_embeddings:
    table["lm_head.weight"] = (("lm_head",), "linear", 1)
  for i in range(config.num_layers):
    hf, ours = f"model.layers.{i}.", ("layers", i)
    table[hf + "input_layernorm.weight"] = (ours + ("input_norm", "scale"), "flat", 0)
    table[hf + "post_attention_layernorm.weight"] = (ours + ("post_attn_norm", "scale"), "flat", 0)
    for name in ("q", "k", "v"):
      table[hf + f"self_attn.{name}_proj.weight"] = (ours + ("attn", name), "linear", 1)
      if config.qkv_bias:
        table[hf + f"self_attn.{name}_proj.bias"] = (ours + ("attn", f"{name}_bias"), "flat", 0)
    table[hf + "self_attn.o_proj.weight"] = (ours + ("attn", "o"), "linear", 2)
    if config.o_bias:
      table[hf + "self_attn.o_proj.bias"] = (ours + ("attn", "o_bias"), "flat", 0)
    if config.qk_norm:
      table[hf + "self_attn.q_norm.weight"] = (ours + ("attn", "q_norm", "scale"), "flat", 0)
      table[hf + "self_attn.k_norm.weight"] = (ours + ("attn", "k_norm", "scale"), "flat", 0)
    for name in ("gate", "up", "down"):
      table[hf + f"mlp.{name}_proj.weight"] = (ours + ("mlp", name), "linear", 1)
  return table


def hf_shape(our_shape: tuple[int, ...], kind: str, n_in: int) -> tuple[int, ...]:
  if kind == "same":
    return tuple(our_shape)
  if kind == "flat":
    return (int(np.prod(our_shape)),)
  return (int(np.prod(our_shape[n_in:])), int(np.prod(our_shape[:n_in])))  # nn.Linear [out, in]


def to_ours(x: jax.Array, our_shape: tuple[int, ...], kind: str) -> jax.Array:
  if kind == "linear":
    return x.T.reshape(our_shape)
  return x.reshape(our_shape)


def to_hf(x: jax.Array, kind: str, n_in: int) -> jax.Array:
  shape = hf_shape(x.shape, kind, n_in)
  if kind == "linear":
    return x.reshape(shape[::-1]).T
  return x.reshape(shape)


def _get(state, path):
  for key in path:
    state = state[key]
  return state


# ------------------------------------------------------------------------------------------------
# Loading
# ------------------------------------------------------------------------------------------------


def read_json_file(file: pathlib.Path) -> Any:
  """json.load of ``file``, with an error that names the file when it is not valid JSON."""
  try:
    with open(file, encoding="utf-8") as f:
      return json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{file} is not valid JSON ({e}); the file is truncated or corrupt") from e


@contextlib.contextmanager
def open_safetensors(file: pathlib.Path):
  """``safe_open`` (numpy), with an error naming the file when its header cannot be read."""
  try:
    handle = safe_open(str(file), framework="numpy")
  except Exception as e:  # safetensors raises its own SafetensorError / OSError
    raise ValueError(f"{file} is not a readable safetensors file ({type(e).__name__}: {e}); the "
                     "file is truncated or corrupt") from e
  with handle as f:
    yield f


def read_config(path: str | os.PathLike) -> dict[str, Any]:
  path = pathlib.Path(path)
  cfg_file = path / CONFIG_FILE
  if not cfg_file.is_file():
    raise ValueError(f"{path} has no {CONFIG_FILE}; expected a Hugging Face checkpoint directory")
  return read_json_file(cfg_file)


def checkpoint_files(path: str | os.PathLike) -> dict[str, list[str]]:
  """safetensors file -> tensor names in it, from the index when sharded."""
  path = pathlib.Path(path)
  if (path / INDEX_FILE).is_file():
    with open(path / INDEX_FILE) as f:
      weight_map = json.load(f).get("weight_map")
    if not weight_map:
      raise ValueError(f"{path / INDEX_FILE} has no weight_map")
    files: dict[str, list[str]] = {}
    for name, file in weight_map.items():
      files.setdefault(file, []).append(name)
    for file in files:
      if not (path / file).is_file():
        raise ValueError(f"{path / INDEX_FILE} lists shard {file!r}, which does not exist")
    return files
  if (path / SINGLE_FILE).is_file():
    with open_safetensors(path / SINGLE_FILE) as f:
      return {SINGLE_FILE: list(f.keys())}
  raise ValueError(f"{path} has neither {SINGLE_FILE} nor {INDEX_FILE}")


def _check_names(table: dict[str, Entry], names: set[str], config: ModelConfig, path) -> None:
  missing = sorted(set(table) - names)
  if missing:
    raise ValueError(f"checkpoint {path} is missing {len(missing)} tensor(s) the config requires, "
                     f"e.g. {missing[:5]}")
  unexpected = sorted(n for n in names - set(table) if not _IGNORED.match(n))
  if config.tie_embeddings and "lm_head.weight" in unexpected:
    unexpected.remove("lm_head.weight")  # some exporters store the tied copy too
  if unexpected:
    raise ValueError(f"checkpoint {path} has {len(unexpected)} tensor(s) this {config.family!r} config "
                     f"does not use, e.g. {unexpected[:5]} (wrong config.json or unsupported variant)")


def _hf_range(sizes: Sequence[int], index: Sequence[slice]
              ) -> tuple[slice, tuple[int, ...], tuple[slice, ...]]:
  """Where a block of our axes ``sizes`` (which flatten row-major into one HF axis) lives in HF.

  Returns ``(hf_slice, block_shape, rest)``: read ``hf_slice`` of the HF axis, reshape it to
  ``block_shape`` and index it with ``rest`` to get ``index`` of our axes. The read is exact (rest
  is all full slices) when the axes after the first one of length > 1 are whole, which is how
  ``param_shardings`` splits them (heads, not head_dim); otherwise it covers those axes whole.
  """
  if any((s.step or 1) != 1 for s in index):
    raise ValueError(f"strided index {tuple(index)} is not a shard of a parameter")
  bounds = [s.indices(n)[:2] for s, n in zip(index, sizes)]
  lead = next((i for i, (lo, hi) in enumerate(bounds) if hi - lo != 1), len(sizes) - 1)
  stride = [int(np.prod(sizes[i + 1:])) for i in range(len(sizes))]
  start = sum(lo * stride[i] for i, (lo, _) in enumerate(bounds[:lead + 1]))
  lo, hi = bounds[lead]
  block = (1,) * lead + (hi - lo,) + tuple(sizes[lead + 1:])
  rest = (slice(None),) * (lead + 1) + tuple(slice(a, b) for a, b in bounds[lead + 1:])
  return slice(start, start + (hi - lo) * stride[lead]), block, rest


def _read_block(tensor, our_shape: tuple[int, ...], kind: str, n_in: int,
               index: Sequence[slice]) -> np.ndarray:
  """``to_ours(whole tensor)[index]``, reading only (about) that block from the safetensors slice
  ``tensor`` (``safe_open(...).get_slice(name)``). On the host, in the stored dtype."""
  index = tuple(index) + (slice(None),) * (len(our_shape) - len(index))
  if kind == "same":
    return tensor[index]
  if kind == "flat":
    rng, block, rest = _hf_range(our_shape, index)
    return tensor[rng].reshape(block)[rest]
  in_rng, in_block, in_rest = _hf_range(our_shape[:n_in], index[:n_in])
  out_rng, out_block, out_rest = _hf_range(our_shape[n_in:], index[n_in:])
  x = tensor[out_rng, in_rng]  # block of the nn.Linear [out, in] weight
  return x.T.reshape(in_block + out_block)[in_rest + out_rest]


def _sharded_value(f, name: str, file: pathlib.Path, our_shape: tuple[int, ...], kind: str,
                   n_in: int, sharding: jax.sharding.Sharding, dtype: np.dtype) -> jax.Array:
  tensor = f.get_slice(name)
  blocks: dict[tuple, np.ndarray] = {}  # replicas of one block (e.g. over `tensor`) read it once

  def block(index):
    key = tuple(s.indices(n) for s, n in zip(index, our_shape))
    if key not in blocks:
      try:
        host = _read_block(tensor, our_shape, kind, n_in, index)
      except Exception as e:  # pylint: disable=broad-except  (SafetensorError on short data)
        raise ValueError(f"tensor {name!r} in {file} cannot be read ({type(e).__name__}: {e}); "
                         "the file is truncated or corrupt") from e
      blocks[key] = np.ascontiguousarray(host.astype(dtype, copy=False))
    return blocks[key]

  return jax.make_array_from_callback(our_shape, sharding, block, dtype=dtype)


def _sharding_at(shardings: Any, our_path: tuple[Any, ...]) -> jax.sharding.Sharding:
  try:
    sharding = _get(shardings, our_path)
  except (KeyError, IndexError, TypeError) as e:
    raise ValueError(f"shardings has no entry for parameter {our_path}; pass one sharding per "
                     "parameter of nnx.state(model, nnx.Param)") from e
  sharding = sharding.get_value() if isinstance(sharding, nnx.Variable) else sharding
  if not isinstance(sharding, jax.sharding.Sharding):
    raise ValueError(f"shardings at {our_path} is {type(sharding).__name__}, not a jax Sharding")
  return sharding


def load_hf(path: str | os.PathLike, dtype: Any = "float32", *, shardings: Any = None
            ) -> tuple[Transformer, ModelConfig]:
  """Loads a HF checkpoint directory into a `Transformer` with params and compute in ``dtype``.

  Returns ``(model, model_config)``. Tensors are converted one at a time from their stored dtype
  (bf16 or f32) to ``dtype``: on the default device when ``shardings`` is None; otherwise
  ``shardings`` is a tree like ``nnx.state(model, nnx.Param)`` with one ``jax.sharding.Sharding``
  per parameter (``parallel.mesh.param_shardings`` of the abstract model), and each process reads
  only the blocks its devices hold, converts them on the host and places them there directly (host
  memory then peaks at this process's blocks of one tensor; replicated blocks are read once).
  """
  path = pathlib.Path(path)
  config = ModelConfig.from_hf_dict(read_config(path), param_dtype=dtype, dtype=dtype)
  files = checkpoint_files(path)
  table = hf_name_table(config)
  _check_names(table, {n for names in files.values() for n in names}, config, path)

  abstract = nnx.eval_shape(lambda: Transformer(config, rngs=nnx.Rngs(0)))
  graphdef, state = nnx.split(abstract)
  for file, names in files.items():
    with open_safetensors(path / file) as f:
      for name in names:
        if name not in table:
          continue
        our_path, kind, n_in = table[name]
        var = _get(state, our_path)
        expected = hf_shape(var.shape, kind, n_in)
        got = tuple(f.get_slice(name).get_shape())
        if got != expected:
          raise ValueError(f"tensor {name!r} in {path / file} has shape {got}; the config expects {expected}")
        if shardings is not None:
          var.set_value(_sharded_value(f, name, path / file, tuple(var.shape), kind, n_in,
                                       _sharding_at(shardings, our_path),
                                       jnp.dtype(config.param_dtype)))
          continue
        try:
          host = f.get_tensor(name)  # the only host copy of this tensor
        except Exception as e:  # pylint: disable=broad-except  (SafetensorError on short data)
          raise ValueError(f"tensor {name!r} in {path / file} cannot be read ({type(e).__name__}: "
                           f"{e}); the file is truncated or corrupt") from e
        value = to_ours(jnp.asarray(host).astype(config.param_dtype), var.shape, kind)
        del host
        var.set_value(value)
  return nnx.merge(graphdef, state), config


# ------------------------------------------------------------------------------------------------
# Saving
# ------------------------------------------------------------------------------------------------


def _plan_shards(sizes: list[tuple[str, int]], max_bytes: int) -> list[list[str]]:
  shards: list[list[str]] = [[]]
  used = 0
  for name, nbytes in sizes:
    if shards[-1] and used + nbytes > max_bytes:
      shards.append([])
      used = 0
    shards[-1].append(name)
    used += nbytes
  return shards


def save_hf(model: Transformer, model_config: ModelConfig, path: str | os.PathLike, *,
            max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, layout: str = "both",
            generation: Mapping[str, Any] | None = None, dtype: Any = None) -> None:
  """Writes ``config.json``, ``generation_config.json`` and safetensors weights that
  ``transformers.AutoModelForCausalLM.from_pretrained`` loads as the same model.

  ``generation``: entries for ``generation_config.json`` over the config's token ids, e.g. the
  source checkpoint's sampling defaults and every stop id (``generation_defaults``).

  Weights are stored in ``dtype`` (e.g. "bfloat16"; None: ``model_config.param_dtype``), rounded
  to nearest even as torch's ``.to(dtype)`` does, and config.json's ``dtype`` / ``torch_dtype`` say
  so. ``checkpoint_dtype(source)`` gives the dtype a source checkpoint was stored in. More than
  ``max_shard_bytes`` of weights are split into ``model-0000i-of-0000n.safetensors`` shards with a
  ``model.safetensors.index.json``.
  """
  path = pathlib.Path(path)
  store_dtype = jnp.dtype(model_config.param_dtype if dtype is None else dtype)
  if not jnp.issubdtype(store_dtype, jnp.floating):
    raise ValueError(f"save_hf dtype={dtype!r} is not a floating-point dtype (use e.g. 'bfloat16')")
  path.mkdir(parents=True, exist_ok=True)
  hf_config = model_config.replace(param_dtype=store_dtype.name).to_hf_dict(layout)
  table = hf_name_table(model_config)
  state = nnx.state(model, nnx.Param)
  # Shapes the config implies, from an abstract model (no memory), to catch a config/model mismatch.
  expected_state = nnx.state(nnx.eval_shape(lambda: Transformer(model_config, rngs=nnx.Rngs(0))), nnx.Param)
  sizes = []
  for name, (our_path, kind, n_in) in table.items():
    try:
      var = _get(state, our_path)
    except KeyError as e:
      raise ValueError(f"model has no parameter {our_path} for HF tensor {name!r}; "
                       "does model_config match the model?") from e
    expected = tuple(_get(expected_state, our_path).shape)
    if tuple(var.shape) != expected:
      raise ValueError(f"parameter {our_path} has shape {tuple(var.shape)}; model_config implies {expected}")
    sizes.append((name, int(np.prod(var.shape)) * store_dtype.itemsize))

  for old in list(path.glob("model*.safetensors")) + [path / INDEX_FILE]:
    if old.is_file():  # stale shards of an earlier save would shadow the new weights
      old.unlink()
  shards = _plan_shards(sizes, max_shard_bytes)
  weight_map = {}
  for i, names in enumerate(shards):
    file = SINGLE_FILE if len(shards) == 1 else f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
    tensors = {}
    for name in names:
      our_path, kind, n_in = table[name]
      value = to_hf(_get(state, our_path)[...].astype(store_dtype), kind, n_in)
      tensors[name] = np.ascontiguousarray(jax.device_get(value))
      weight_map[name] = file
    save_file(tensors, str(path / file), metadata={"format": "pt"})
    del tensors
  if len(shards) > 1:
    index = {"metadata": {"total_size": sum(n for _, n in sizes)}, "weight_map": weight_map}
    (path / INDEX_FILE).write_text(json.dumps(index, indent=2))
  (path / CONFIG_FILE).write_text(json.dumps(hf_config, indent=2))
  written = {k: hf_config[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id")
             if hf_config.get(k) is not None}
  written.update(generation or {})
  (path / "generation_config.json").write_text(json.dumps(written, indent=2))


def generation_defaults(source: str | os.PathLike | None, eos_ids: Sequence[int]) -> dict[str, Any]:
  """What an export's ``generation_config.json`` should keep: the source checkpoint's own entries
  (sampling defaults such as temperature / top_p, when ``source`` has the file) and every stop id
  the run used (``eos_ids``: the tokenizer's, which include the source's extra ones) as
  ``eos_token_id``."""
  out: dict[str, Any] = {}
  file = pathlib.Path(source) / "generation_config.json" if source else None
  if file is not None and file.is_file():
    out = dict(read_json_file(file))
  stops = []
  for value in ([out.get("eos_token_id")] if isinstance(out.get("eos_token_id"), int)
                else list(out.get("eos_token_id") or [])) + [int(i) for i in eos_ids]:
    if value not in stops:
      stops.append(value)
  if stops:
    out["eos_token_id"] = stops[0] if len(stops) == 1 else stops
  return out


# safetensors header dtype -> numpy / jnp dtype name.
_SAFETENSORS_DTYPES = {"F64": "float64", "F32": "float32", "F16": "float16", "BF16": "bfloat16"}


def checkpoint_dtype(path: str | os.PathLike) -> str:
  """The floating dtype a HF checkpoint is stored in, e.g. "bfloat16" (the default export dtype
  of a run that started from it): config.json's ``dtype`` (v5) or ``torch_dtype`` (v4), else the
  dtype most of its safetensors tensors have. ValueError when neither says."""
  path = pathlib.Path(path)
  config = read_config(path)
  for key in ("dtype", "torch_dtype"):
    value = config.get(key)
    if isinstance(value, str) and value.removeprefix("torch.") in _SAFETENSORS_DTYPES.values():
      return value.removeprefix("torch.")
  counts: dict[str, int] = {}
  for file, names in checkpoint_files(path).items():
    with open_safetensors(path / file) as f:
      for name in names:
        stored = _SAFETENSORS_DTYPES.get(f.get_slice(name).get_dtype())
        if stored is not None:
          counts[stored] = counts.get(stored, 0) + 1
  if not counts:
    raise ValueError(f"{path}: neither config.json (dtype / torch_dtype) nor the safetensors files "
                     "name a floating-point dtype")
  return max(counts, key=counts.get)
