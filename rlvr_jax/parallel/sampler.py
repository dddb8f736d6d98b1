"""The rollout sampler under the mesh: `sampling.sample_padded` jitted with explicit shardings.

`MeshSampler.generate` has the signature and result of `rlvr_jax.sampling.generate` but runs as one
SPMD program over the run's mesh (and over all processes of a multi-host run):

- the prompt batch [P, Tp] is sharded over the mesh axes that the ``batch`` rule names (data
  parallel sampling; P is padded with dummy prompts to a multiple of that split), the G samples of a
  prompt stay on the device that prefilled it;
- params keep the shardings they were placed with (``param_shardings``; FSDP params are gathered
  per layer by GSPMD, tensor-parallel ones stay split);
- the KV cache [layer, batch, length, kv_heads, head_dim] is sharded by the model's own
  ``constraints.constrain`` calls (active because the call runs inside ``constraints.use_mesh``);
- outputs are sharded like the batch, then gathered so every process gets the same numpy result;
- with ``max_rows_per_call`` the prompts run in chunks of a fixed number of whole prompts (a
  multiple of the batch split), one compiled program for all of them (`sampling.chunk_prompts`).

Every process must call it with the same prompts (the RL loop gathers them first,
``multihost.gather_rows``). Rows draw from per-row keys (``sampling.row_keys``), so the padding, the
mesh and the number of processes never change the samples of the real rows.
"""
from __future__ import annotations

from typing import Any, Sequence

import jax
import numpy as np
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from rlvr_jax import sampling
from rlvr_jax.parallel import constraints
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.parallel import multihost


class MeshSampler:
  """``generate(model_or_params, prompts, **sampling options) -> sampling.SampleResult`` on a mesh.

  Args:
    mesh, rules: the run's mesh and logical axis rules.
    graphdef: ``nnx.split(model)[0]`` of the policy.
    param_shardings: the shardings the params were placed with (a tree shaped like the params).
    model_config: the policy's `ModelConfig` (vocabulary size and context length for validation).
  """

  def __init__(self, mesh: Mesh, rules: Any, graphdef: nnx.GraphDef, param_shardings: Any,
               model_config: Any):
    self.mesh = mesh
    self.model_config = model_config
    self.rules = rules
    self.graphdef = graphdef
    self.param_shardings = param_shardings
    self._jitted: dict[tuple[sampling.SamplerConfig, bool], Any] = {}

  def _compiled(self, config: sampling.SamplerConfig, chunked: bool = False):
    """The jitted sampler for ``config``; ``chunked`` adds the row offset of a chunk as the last
    argument (a separate program, so a rollout in one call runs the same program as before)."""
    if (config, chunked) not in self._jitted:
      graphdef = self.graphdef
      ead = config.temperature_schedule == "ead"

      def run(state, tokens, mask, seed, *extra):
        decay = extra[0] if ead else None
        offset = extra[-1] if chunked else None
        return sampling.sample_padded(graphdef, state, tokens, mask, jax.random.key(seed), config,
                                      decay, offset)

      rows2 = mesh_lib.batch_sharding(self.mesh, 2, self.rules)
      rows1 = mesh_lib.batch_sharding(self.mesh, 1, self.rules)
      replicated = NamedSharding(self.mesh, PartitionSpec())
      out = dict(tokens=rows2, lengths=rows1, logprobs=rows2, finish_reason=rows1,
                 num_steps=replicated)
      ins = (self.param_shardings, rows2, rows2, replicated)
      if ead:  # the run-time decay: one more (scalar) argument
        ins += (replicated,)
      if chunked:  # the chunk's first row
        ins += (replicated,)
      self._jitted[config, chunked] = jax.jit(run, in_shardings=ins, out_shardings=out)
    return self._jitted[config, chunked]

  def generate(self, model_or_params: Any, prompts: Sequence[Sequence[int]], *, max_new_tokens: int,
               num_samples: int = 1, temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
               min_p: float = 0.0, eos_ids: Sequence[int] = (), seed: int = 0, pad_id: int = 0,
               max_len: int | None = None, temperature_end: float | None = None,
               temperature_schedule: str = "constant", temperature_offset: int = 0,
               temperature_decay: float | None = None,
               max_rows_per_call: int | None = None) -> sampling.SampleResult:
    """Same arguments and result as `rlvr_jax.sampling.generate` (including the per-position
    ``temperature_schedule`` / ``temperature_end``); ``model_or_params`` is a `Transformer` or its
    params state (``nnx.split(model)[1]``). ``max_rows_per_call`` bounds the rows of one call
    (`sampling.chunk_prompts`: chunks of whole prompts, a multiple of the batch split each)."""
    if isinstance(model_or_params, nnx.Module):
      state = nnx.split(model_or_params)[1]
    else:
      state = model_or_params
    mc = self.model_config
    config = sampling.SamplerConfig(
        max_new_tokens=max_new_tokens, num_samples=num_samples, temperature=temperature,
        top_k=top_k, top_p=top_p, min_p=min_p, eos_ids=tuple(eos_ids), pad_id=pad_id,
        temperature_end=temperature_end, temperature_schedule=temperature_schedule,
        temperature_offset=temperature_offset)
    decay = sampling.schedule_decay(config, temperature_decay)
    for name, value in [("pad_id", pad_id)] + [(f"eos_ids[{i}]", e)
                                               for i, e in enumerate(config.eos_ids)]:
      if not 0 <= value < mc.vocab_size:
        raise ValueError(f"{name}={value} is outside the vocabulary [0, {mc.vocab_size})")
    max_len = mc.max_position_embeddings if max_len is None else int(max_len)
    rows = sampling.check_prompts(prompts, vocab_size=mc.vocab_size, max_new_tokens=max_new_tokens,
                                  max_len=max_len)
    split = mesh_lib.batch_divisor(self.mesh, self.rules)
    length = sampling.bucket_prompt_length(max(r.size for r in rows))
    per_call = sampling.chunk_prompts(len(rows), num_samples, max_rows_per_call, split)
    if per_call is not None:
      rows2 = mesh_lib.batch_sharding(self.mesh, 2, self.rules, per_call)
      program = self._compiled(config, chunked=True)

      def call(tokens, mask, offset):
        with constraints.use_mesh(self.mesh, self.rules):
          args = (state, multihost.global_array(tokens, rows2), multihost.global_array(mask, rows2),
                  np.uint32(seed)) + (() if decay is None else (decay,)) + (offset,)
          return program(*args)

      return sampling.sample_in_chunks(call, multihost.to_host, rows, num_samples=num_samples,
                                       per_call=per_call, num_rows=per_call, length=length,
                                       pad_id=pad_id)
    num_rows = -(-sampling.bucket_batch_size(len(rows)) // split) * split
    tokens, mask = sampling.pack_prompts(rows, num_rows=num_rows, length=length, pad_id=pad_id)
    rows2 = mesh_lib.batch_sharding(self.mesh, 2, self.rules, num_rows)
    with constraints.use_mesh(self.mesh, self.rules):
      args = (state, multihost.global_array(tokens, rows2), multihost.global_array(mask, rows2),
              np.uint32(seed)) + (() if decay is None else (decay,))
      out = self._compiled(config)(*args)
    out = multihost.to_host(out)
    keep = len(rows) * num_samples  # dummy prompts come last: their samples are the trailing rows
    return sampling.SampleResult(tokens=out["tokens"][:keep], lengths=out["lengths"][:keep],
                                 logprobs=out["logprobs"][:keep],
                                 finish_reason=out["finish_reason"][:keep], num_samples=num_samples)

  __call__ = generate
