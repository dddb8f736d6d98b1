"""sample_padded under a (data, model) mesh of 8 fake CPU devices gives the single-device samples."""
import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np

_SCRIPT = r'''
import json, sys
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from rlvr_jax.models import ModelConfig, Transformer
from rlvr_jax.sampling import SamplerConfig, sample_padded

assert jax.device_count() == 8, jax.devices()
if sys.argv[1]:  # share the compilation cache tests/conftest.py sets up
  jax.config.update("jax_compilation_cache_dir", sys.argv[1])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
model = Transformer(ModelConfig.tiny_qwen2(init_std=0.1), rngs=nnx.Rngs(0))
graphdef, state = nnx.split(model)
config = SamplerConfig(max_new_tokens=6, num_samples=2, temperature=1.0, eos_ids=(7,))
rng = np.random.RandomState(0)
lengths = rng.randint(1, 9, 8)
mask = np.arange(8)[None, :] >= (8 - lengths)[:, None]
tokens = np.where(mask, rng.randint(0, 256, (8, 8)), 0).astype(np.int32)
run = jax.jit(sample_padded, static_argnames=("graphdef", "config"))
ref = run(graphdef, state, jnp.asarray(tokens), jnp.asarray(mask), jax.random.key(1), config)

mesh = jax.make_mesh((4, 2), ("data", "model"), axis_types=(AxisType.Auto,) * 2)
rules = [("embed", None), ("mlp", "model"), ("q_heads", "model"), ("kv_heads", "model"), ("vocab", None),
         ("head_dim", None), ("norm", None)]
with nnx.logical_axis_rules(rules):
  specs = nnx.get_partition_spec(state)
state = jax.tree.map(lambda x, s: jax.device_put(x, NamedSharding(mesh, s)), state, specs)
batch = NamedSharding(mesh, P("data"))
out = run(graphdef, state, jax.device_put(tokens, batch), jax.device_put(mask, batch), jax.random.key(1), config)
print(json.dumps({k: np.asarray(v).tolist() for k, v in dict(ref=ref["tokens"], out=out["tokens"],
      ref_lp=ref["logprobs"], out_lp=out["logprobs"], shards=[len(out["tokens"].sharding.device_set)]).items()}))
'''


def test_sharded_batch_and_params_match_single_device():
  root = pathlib.Path(__file__).resolve().parents[2]
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=8", JAX_PLATFORMS="cpu")
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, jax.config.jax_compilation_cache_dir or ""], cwd=root, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  res = json.loads(proc.stdout.strip().splitlines()[-1])
  np.testing.assert_array_equal(res["out"], res["ref"])
  np.testing.assert_allclose(res["out_lp"], res["ref_lp"], atol=1e-5, rtol=0)
  assert np.asarray(res["ref"]).shape == (16, 6)
  assert res["shards"] == [8]  # the output really was spread over the mesh
