"""Logical-name rules, activation constraints (no-ops without a mesh), the mesh sampler, the
multi-host row helpers in one process, and the sharding-memory benchmark's arithmetic."""
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import PartitionSpec as P

from rlvr_jax.parallel import constraints, multihost, rules
from tests.parallel import parallel_compare as pc


class _FakeMesh:
  def __init__(self, **shape):
    self.shape = shape


def test_logical_to_spec_keeps_the_longest_dividing_prefix():
  mesh = _FakeMesh(data=2, fsdp=4, tensor=2)
  r = rules.DEFAULT_RULES
  assert rules.logical_to_spec(("batch", "length", "embed"), (16, 8, 64), r, mesh) == P(("data", "fsdp"), None, None)
  # batch 2 splits over data only, and embed then takes the free fsdp axis
  assert rules.logical_to_spec(("batch", "length", "embed"), (2, 8, 64), r, mesh) == P("data", None, "fsdp")
  # 3 kv heads do not divide by tensor=2: replicated
  assert rules.logical_to_spec(("embed", "kv_heads", "head_dim"), (64, 3, 16), r, mesh) == P("fsdp", None, None)
  assert rules.logical_to_spec(("layer", "batch", "length", "kv_heads", "head_dim"), (2, 8, 4, 2, 16), r,
                               mesh) == P(None, ("data", "fsdp"), None, "tensor", None)


def test_constrain_is_identity_without_a_mesh():
  x = jnp.ones((2, 3, 4))
  assert constraints.current() is None
  assert constraints.constrain(x, ("batch", "length", "embed")) is x
  with pytest.raises(ValueError, match="3 axis names"):
    mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    with constraints.use_mesh(mesh):
      constraints.constrain(jnp.ones((2, 3)), ("batch", "length", "embed"))
  assert constraints.current() is None


def test_row_helpers_in_one_process():
  assert multihost.interleave([[0, 2, 4], [1, 3, 5]]) == [0, 1, 2, 3, 4, 5]
  with pytest.raises(ValueError, match="different numbers of rows"):
    multihost.interleave([[0], [1, 2]])
  assert multihost.gather_rows([[1, 2], [3]]) == [[1, 2], [3]]
  assert multihost.allgather_object({"a": 1}) == [{"a": 1}]
  assert multihost.own_rows(3).tolist() == [0, 1, 2]
  x = np.arange(12.0).reshape(4, 3)
  mesh = jax.make_mesh((1,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
  arr = multihost.global_array(x, jax.sharding.NamedSharding(mesh, P("data")))
  np.testing.assert_array_equal(multihost.to_host({"x": arr})["x"], x)


_SCRIPT = r'''
import json
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from rlvr_jax import models, sampling
from rlvr_jax.parallel import constraints, mesh as mesh_lib
from rlvr_jax.parallel.sampler import MeshSampler
from experiments import bench_sharding

assert jax.device_count() == 8
mc = models.ModelConfig.tiny_qwen2(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4,
                                   num_kv_heads=2, head_dim=8, intermediate_size=64, init_std=0.2)
model = models.Transformer(mc, rngs=nnx.Rngs(0))
graphdef, params = nnx.split(model)
mesh = mesh_lib.make_mesh({"data": 2, "fsdp": 2, "tensor": 2})
shardings = mesh_lib.param_shardings(params, models.logical_axes(model), mesh)
placed = jax.device_put(params, shardings)
out = {}

# KV cache and residual stream get their logical shardings inside use_mesh (and none outside).
with constraints.use_mesh(mesh):
  cache = jax.jit(lambda: nnx.merge(graphdef, placed).init_cache(8, 16))()
  tokens = jnp.tile(jnp.arange(6, dtype=jnp.int32)[None], (8, 1))
  hidden = jax.jit(lambda p, t: nnx.merge(graphdef, p).hidden_states(t))(placed, tokens)
ref_hidden = model.hidden_states(tokens)
def spec(x):  # the PartitionSpec as lists, padded to one entry per dimension
  s = list(x.sharding.spec) + [None] * (x.ndim - len(x.sharding.spec))
  return [a if a is None or isinstance(a, str) else list(a) for a in s]
out["cache_spec"] = spec(cache["k"])
out["hidden_spec"] = spec(hidden)
out["hidden_diff"] = float(jnp.max(jnp.abs(hidden - ref_hidden)))

# MeshSampler on the 8-device mesh (3 prompts: padded to the batch split) = sampling.generate.
prompts = [[1, 2, 3], [4, 5], [6, 7, 8, 9, 10]]
kw = dict(max_new_tokens=6, num_samples=2, temperature=1.0, eos_ids=(3,), seed=5, pad_id=0)
ref = sampling.generate(model, prompts, **kw)
got = MeshSampler(mesh, None, graphdef, shardings, mc).generate(placed, prompts, **kw)
out["tokens_equal"] = bool(np.array_equal(ref.tokens, got.tokens))
out["lengths_equal"] = bool(np.array_equal(ref.lengths, got.lengths))
out["logp_diff"] = float(np.max(np.abs(ref.logprobs - got.logprobs)))
out["shape"] = list(got.tokens.shape)

# The benchmark's per-device bytes: FSDP over 8 divides everything but the norm scales.
big = models.ModelConfig.tiny_qwen2(vocab_size=256, hidden_size=64, num_layers=1, num_heads=8,
                                    num_kv_heads=8, head_dim=8, intermediate_size=128)
out["bench"] = {name: bench_sharding.measure(big, axes) for name, axes in bench_sharding.MESHES[:3]}
print(json.dumps(out))
'''


def test_activation_shardings_sampler_and_bench_on_8_devices():
  proc = subprocess.run([sys.executable, "-c", _SCRIPT], cwd=pc.ROOT, env=pc.env(8),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  res = json.loads(proc.stdout.strip().splitlines()[-1])
  assert res["cache_spec"] == [None, ["data", "fsdp"], "tensor", None, None]
  assert res["hidden_spec"] == [["data", "fsdp"], None, None]
  assert res["hidden_diff"] < 1e-5
  assert res["tokens_equal"] and res["lengths_equal"], res
  assert res["logp_diff"] < 1e-5
  assert res["shape"] == [6, 6]
  data, fsdp, ft = (res["bench"][name] for name in ("data=8 (replicated)", "fsdp=8", "fsdp=4 x tensor=2"))
  num = data["num_params"]
  assert data["params"] == 4 * num and data["opt_state"] >= 2 * 4 * num  # f32 params, AdamW mu + nu
  for r in (fsdp, ft):
    assert r["total"] < data["total"] / 8 * 1.05, (r, data)
