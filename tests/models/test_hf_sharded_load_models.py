"""``load_hf(..., shardings=...)`` on 8 fake CPU devices: exact values, per-device shards, and reads
bounded by one shard; and on two processes of 4 devices, each reading only its own blocks.

On CPU ``device.memory_stats()`` is None, so memory is measured by instrumentation, in a subprocess
with ``--xla_force_host_platform_device_count=8``:

- host reads: ``safe_open`` is wrapped so that every ``get_slice(...)[...]`` and ``get_tensor`` call
  records the bytes it returned (the loader's only way to the file's data);
- device memory: at every such read, and once at the end, the distinct buffers of
  ``jax.live_arrays()`` are summed per device (minus what each device held before the load). The
  peak over those samples is the most any one device held while the model was being loaded.

The same instruments on the plain (unsharded) load are the control: there one device holds the whole
model and the largest read is the whole largest tensor, so the bounds below are tight enough to fail.
"""
import json
import os
import pathlib
import socket
import subprocess
import sys

import jax
import pytest
from flax import nnx

from rlvr_jax.models import ModelConfig, Transformer, save_hf

_SCRIPT = r'''
import collections, json, sys
import jax, numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec as P
from rlvr_jax import models
from rlvr_jax.models import hf
from rlvr_jax.parallel import mesh as mesh_lib

assert jax.device_count() == 8, jax.devices()
path = sys.argv[1]
if sys.argv[2]:  # share the compilation cache tests/conftest.py sets up
  jax.config.update("jax_compilation_cache_dir", sys.argv[2])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
reads = []  # (tensor name, bytes) per read of file data
samples = []  # per-device resident bytes at each read


def resident():
  # A global array's per-device buffers are live arrays too: count each buffer once.
  buffers = {}
  for x in jax.live_arrays():
    for shard in x.addressable_shards:
      buffers[shard.device.id, shard.data.unsafe_buffer_pointer()] = shard.data.nbytes
  out = collections.Counter()
  for (device, _), nbytes in buffers.items():
    out[device] += nbytes
  return out


class Slice:
  def __init__(self, inner, name):
    self.inner, self.name = inner, name

  def get_shape(self):
    return self.inner.get_shape()

  def get_dtype(self):
    return self.inner.get_dtype()

  def __getitem__(self, index):
    samples.append(resident())
    out = self.inner[index]
    reads.append((self.name, int(out.nbytes)))
    return out


class Handle:
  def __init__(self, inner):
    self.inner = inner

  def __enter__(self):
    self.f = self.inner.__enter__()
    return self

  def __exit__(self, *exc):
    return self.inner.__exit__(*exc)

  def keys(self):
    return self.f.keys()

  def get_slice(self, name):
    return Slice(self.f.get_slice(name), name)

  def get_tensor(self, name):
    samples.append(resident())
    out = self.f.get_tensor(name)
    reads.append((name, int(out.nbytes)))
    return out


real_open = hf.safe_open
hf.safe_open = lambda *a, **k: Handle(real_open(*a, **k))


def measured(load):
  """(model, stats of the load): reads and the per-device peak, over what was resident before."""
  reads.clear(); samples.clear()
  before = resident()
  model, config = load()
  samples.append(resident())
  peak = max(max((s[d] - before[d] for d in s), default=0) for s in samples)
  per_tensor = collections.Counter()
  for name, n in reads:
    per_tensor[name] += 1
  return model, dict(max_read=max(n for _, n in reads), total_read=sum(n for _, n in reads),
                     reads_per_tensor=dict(per_tensor), peak_device_bytes=int(peak))


config = models.ModelConfig.from_hf_dict(hf.read_config(path))
abstract = nnx.eval_shape(lambda: models.Transformer(config, rngs=nnx.Rngs(0)))
state = nnx.state(abstract, nnx.Param)
out = {"param_bytes": sum(int(np.prod(x.shape)) * 4 for x in jax.tree.leaves(state)),
       "largest_tensor_bytes": max(int(np.prod(x.shape)) * 4 for x in jax.tree.leaves(state))}

mesh = mesh_lib.make_mesh({"fsdp": 4, "tensor": 2})
shardings = mesh_lib.param_shardings(state, models.logical_axes(abstract), mesh)
sharded, out["sharded"] = measured(lambda: models.load_hf(path, shardings=shardings))
flat = jax.tree.leaves(nnx.state(sharded, nnx.Param))
out["largest_shard_bytes"] = max(s.data.nbytes for x in flat for s in x.addressable_shards)
out["shards_ok"] = all(
    x.sharding == s and len(x.addressable_shards) == 8
    and all(sh.data.shape == s.shard_shape(x.shape) for sh in x.addressable_shards)
    for x, s in zip(flat, jax.tree.leaves(shardings), strict=True))
out["specs"] = {"embed": str(sharded.embed[...].sharding.spec),
                "o": str(sharded.layers[0].attn.o[...].sharding.spec),
                "q_shard": list(sharded.layers[0].attn.q[...].addressable_shards[0].data.shape)}

plain, out["plain"] = measured(lambda: models.load_hf(path))
same = lambda a, b: all(jax.tree.leaves(jax.tree.map(
    lambda x, y: bool(np.array_equal(np.asarray(x), np.asarray(y))), nnx.state(a, nnx.Param),
    nnx.state(b, nnx.Param))))
out["equal"] = same(sharded, plain)

# Awkward shardings that split the inner axes of split HF axes too (head_dim, and both axes of
# o's [N, H]): the loader then reads a covering block and slices it; values must still be exact.
def awkward(x):
  spec, free = [], ["fsdp", "tensor"]
  for n in reversed(x.shape):
    size = mesh.shape[free[0]] if free else 0
    spec.append(free.pop(0) if free and n % size == 0 and n > size else None)
  return NamedSharding(mesh, P(*reversed(spec)))
odd = jax.tree.map(awkward, state, is_leaf=lambda x: isinstance(x, nnx.Variable))
out["awkward_equal"] = same(models.load_hf(path, shardings=odd)[0], plain)
out["awkward_specs"] = {k: str(hf._get(odd, ("layers", 0, "attn", k)).spec) for k in ("q", "o")}

# Casting on the host: a bf16 sharded load equals the plain bf16 load bit for bit.
b16, _ = models.load_hf(path, "bfloat16", shardings=shardings)
out["bf16_equal"] = same(b16, models.load_hf(path, "bfloat16")[0])
out["bf16_dtype"] = str(b16.layers[0].mlp.up[...].dtype)
# The trainer's sequence (training/loop.py): shardings from builders.abstract_model, then
# build_model straight into them, for a checkpoint and for a random init.
from rlvr_jax.training import builders
out["builders"] = {}
for section in ({"init": "hf", "path": path, "dtype": "bfloat16"},
                {"init": "preset", "preset": "tiny_qwen2"}):
  abstract_m, _ = builders.abstract_model(section, vocab_size=256)
  placed = mesh_lib.param_shardings(nnx.split(abstract_m)[1], models.logical_axes(abstract_m), mesh)
  built, mc = builders.build_model(section, vocab_size=256, seed=0, shardings=placed)
  unplaced, mc_ref = builders.build_model(section, vocab_size=256, seed=0)
  out["builders"][section["init"]] = same(built, unplaced) and mc == mc_ref and all(
      x.sharding == s for x, s in zip(jax.tree.leaves(nnx.state(built, nnx.Param)),
                                      jax.tree.leaves(placed), strict=True))
print(json.dumps(out))
'''


# Two processes with 4 devices each: process i reads only the blocks its devices hold.
_TWO_PROCESS_SCRIPT = r'''
import json, sys
import jax, numpy as np
from flax import nnx
from rlvr_jax import models
from rlvr_jax.models import hf
from rlvr_jax.parallel import mesh as mesh_lib

path, address, pid = sys.argv[1], sys.argv[2], int(sys.argv[3])
jax.distributed.initialize(coordinator_address=address, num_processes=2, process_id=pid)
assert jax.device_count() == 8 and jax.local_device_count() == 4
read = []


class Slice:
  def __init__(self, inner):
    self.inner = inner

  def get_shape(self):
    return self.inner.get_shape()

  def __getitem__(self, index):
    out = self.inner[index]
    read.append(int(out.nbytes))
    return out


class Handle:
  def __init__(self, inner):
    self.inner = inner

  def __enter__(self):
    self.f = self.inner.__enter__()
    return self

  def __exit__(self, *exc):
    return self.inner.__exit__(*exc)

  def keys(self):
    return self.f.keys()

  def get_slice(self, name):
    return Slice(self.f.get_slice(name))

  def get_tensor(self, name):
    raise AssertionError("a sharded load must not read whole tensors")


config = models.ModelConfig.from_hf_dict(hf.read_config(path))
abstract = nnx.eval_shape(lambda: models.Transformer(config, rngs=nnx.Rngs(0)))
state = nnx.state(abstract, nnx.Param)
mesh = mesh_lib.make_mesh({"fsdp": 4, "tensor": 2})
shardings = mesh_lib.param_shardings(state, models.logical_axes(abstract), mesh)
real_open = hf.safe_open
hf.safe_open = lambda *a, **k: Handle(real_open(*a, **k))
model, _ = models.load_hf(path, shardings=shardings)
hf.safe_open = real_open
plain, _ = models.load_hf(path)  # whole tensors on this process's first device, the reference
local = 0  # bytes of the distinct blocks this process's devices hold
exact = True
for x, s, ref in zip(jax.tree.leaves(nnx.state(model, nnx.Param)), jax.tree.leaves(shardings),
                     jax.tree.leaves(nnx.state(plain, nnx.Param)), strict=True):
  blocks = {tuple(i.indices(n) for i, n in zip(index, x.shape))
            for index in s.addressable_devices_indices_map(x.shape).values()}
  local += len(blocks) * int(np.prod(s.shard_shape(x.shape))) * 4
  ref = np.asarray(ref)
  exact &= all(np.array_equal(np.asarray(sh.data), ref[sh.index]) for sh in x.addressable_shards)
print(json.dumps(dict(read=sum(read), local=local, exact=bool(exact),
                      total=sum(int(np.prod(v.shape)) * 4 for v in jax.tree.leaves(state)))))
'''


def _save_small(path):
  # Every dimension the mesh splits divides by 8; untied so lm_head is its own (largest) tensor.
  config = ModelConfig.tiny_qwen2(num_layers=2, hidden_size=64, num_heads=8, num_kv_heads=4,
                                  head_dim=8, intermediate_size=128, vocab_size=256)
  save_hf(Transformer(config, rngs=nnx.Rngs(0)), config, path)


def _env(devices):
  root = pathlib.Path(__file__).resolve().parents[2]
  return root, dict(os.environ, XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}",
                    JAX_PLATFORMS="cpu", PYTHONPATH=str(root))


@pytest.fixture(scope="module")
def result(tmp_path_factory):
  path = tmp_path_factory.mktemp("sharded_load")
  _save_small(path)
  root, env = _env(8)
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(path),
                         jax.config.jax_compilation_cache_dir or ""], cwd=root, env=env,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-4000:]
  return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sharded_load_equals_the_plain_load_exactly(result):
  assert result["equal"]
  assert result["awkward_equal"], result["awkward_specs"]
  # head_dim split: q [D, N, H] and o [N, H, D] need covering reads of their split HF axis.
  assert result["awkward_specs"] == {"q": "P(None, 'tensor', 'fsdp')",
                                     "o": "P(None, 'tensor', 'fsdp')"}
  assert result["bf16_equal"] and result["bf16_dtype"] == "bfloat16"


def test_each_device_holds_only_its_shard(result):
  assert result["shards_ok"]
  assert result["specs"]["embed"] == "P('tensor', 'fsdp')"
  assert result["specs"]["o"] == "P('tensor', None, 'fsdp')"
  assert result["specs"]["q_shard"] == [16, 4, 8]  # q [D=64, N=8, H=8] over fsdp=4 x tensor=2


def test_device_peak_is_about_params_over_devices(result):
  sharded, plain, total = result["sharded"], result["plain"], result["param_bytes"]
  # Norm scales and nothing else are replicated: a little over 1/8 of the model per device.
  assert sharded["peak_device_bytes"] <= 1.1 * total / 8, (sharded, total)
  assert plain["peak_device_bytes"] == total  # the control: one device held the whole model


def test_reads_are_one_shard_at_most_and_the_checkpoint_once(result):
  sharded, plain = result["sharded"], result["plain"]
  largest_tensor = result["largest_tensor_bytes"]
  assert sharded["max_read"] == result["largest_shard_bytes"] == largest_tensor // 8
  assert plain["max_read"] == largest_tensor  # the control reads whole tensors
  # Each distinct block is read once: replicas (norms on all 8 devices, fsdp blocks on both
  # tensor ranks) share one read, so the process reads the checkpoint once, not 8 times.
  assert sharded["total_read"] == plain["total_read"] == result["param_bytes"]
  assert sharded["reads_per_tensor"]["model.norm.weight"] == 1
  assert sharded["reads_per_tensor"]["model.embed_tokens.weight"] == 8
  # k bias [4 heads, 8] over tensor=2: 2 distinct blocks on 8 devices, 2 reads.
  assert sharded["reads_per_tensor"]["model.layers.0.self_attn.k_proj.bias"] == 2


def test_builders_build_the_model_into_the_trainers_shardings(result):
  assert result["builders"] == {"hf": True, "preset": True}


def test_each_of_two_processes_reads_only_its_own_blocks(tmp_path):
  """The fsdp axis spans the two processes, so each reads about half of the fsdp-split tensors;
  the bytes read equal those of the distinct blocks its 4 devices hold, and those match the plain
  load exactly."""
  _save_small(tmp_path)
  with socket.socket() as sock:
    sock.bind(("127.0.0.1", 0))
    address = f"127.0.0.1:{sock.getsockname()[1]}"
  root, env = _env(4)
  procs = [subprocess.Popen([sys.executable, "-c", _TWO_PROCESS_SCRIPT, str(tmp_path), address,
                             str(i)], cwd=root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True) for i in range(2)]
  try:
    outs = [p.communicate(timeout=300) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  assert [p.returncode for p in procs] == [0, 0], "\n".join(err[-3000:] for _, err in outs)
  for stdout, _ in outs:
    res = json.loads(stdout.strip().splitlines()[-1])
    assert res["exact"]
    assert res["read"] == res["local"]
    assert res["read"] < 0.55 * res["total"], res  # fsdp-split weights: half; norms etc.: whole
