"""A checkpoint saved under one mesh restores onto another (issue 7 item 1): params and AdamW state
saved under data=8 (replicated) come back under fsdp=4 x tensor=2 split by the rules, and a split
checkpoint (fsdp=4 x tensor=2) comes back under data=2 x fsdp=4, with the same values."""
import json
import subprocess
import sys

from tests.parallel import parallel_compare as pc

_SCRIPT = r'''
import json, sys
import jax, jax.numpy as jnp, numpy as np
from flax import nnx
from rlvr_jax import models
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.training import builders, checkpoint, step as step_lib

assert jax.device_count() == 8
mc = models.ModelConfig.tiny_qwen2(vocab_size=64, hidden_size=64, num_layers=1, num_heads=4,
                                   num_kv_heads=2, head_dim=16, intermediate_size=128)
model = models.Transformer(mc, rngs=nnx.Rngs(0))
graphdef, params = nnx.split(model)
axes = models.logical_axes(model)
tx = builders.build_optimizer({"name": "adamw", "lr": 1e-2, "grad_clip": 1.0}, 10)

def placed(mesh_axes):
  mesh = mesh_lib.make_mesh(mesh_axes)
  shardings = mesh_lib.param_shardings(params, axes, mesh)
  opt_shardings = step_lib.state_shardings(params, shardings, tx, mesh_lib.replicated(mesh))
  p = jax.device_put(params, shardings)
  o = jax.jit(tx.init, out_shardings=opt_shardings)(p)
  return p, o

@jax.jit
def step(p, o):
  grads = jax.tree.map(lambda x: jnp.sin(x * 7.0), p)
  updates, o = tx.update(grads, o, p)
  return jax.tree.map(lambda a, b: a + b, p, updates), o

def flat(tree):
  return {jax.tree_util.keystr(k): np.asarray(v) for k, v in jax.tree_util.tree_flatten_with_path(tree)[0]}

def spec(tree, key):
  return [s if s is None or isinstance(s, str) else list(s) for s in
          dict((jax.tree_util.keystr(k), v) for k, v in
               jax.tree_util.tree_flatten_with_path(tree)[0])[key].sharding.spec]

result = {}
for name, save_axes, load_axes in [("data8_to_ft", {"data": 8}, {"fsdp": 4, "tensor": 2}),
                                   ("ft_to_df", {"fsdp": 4, "tensor": 2}, {"data": 2, "fsdp": 4})]:
  p, o = placed(save_axes)
  # One AdamW step so mu / nu / count hold non-trivial values.
  p, o = step(p, o)
  ckpt = checkpoint.Checkpointer(sys.argv[1] + "/" + name)
  rng = jax.random.key(3)
  ckpt.save(1, params=p, opt_state=o, data_state={"next_index": 5}, rng=rng, config_json="{}")
  ckpt.wait()
  tp, to = placed(load_axes)  # templates on the new mesh: orbax reshards on read
  r = checkpoint.Checkpointer(sys.argv[1] + "/" + name).restore(None, params=tp, opt_state=to)
  same = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(flat(p)), jax.tree.leaves(flat(r["params"]))))
  same_opt = all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(flat(o)), jax.tree.leaves(flat(r["opt_state"]))))
  devices = len(jax.tree.leaves(r["params"])[0].sharding.device_set)
  result[name] = dict(
      same=same, same_opt=same_opt, step=r["step"], data=r["data_state"],
      rng=bool(np.array_equal(jax.random.key_data(r["rng"]), jax.random.key_data(rng))),
      saved_spec=spec(p, "['layers'][0]['mlp']['gate'].value"),
      spec=spec(r["params"], "['layers'][0]['mlp']['gate'].value"),
      mu_spec=spec(r["opt_state"][1][0].mu, "['layers'][0]['mlp']['gate'].value"),
      mesh=dict(jax.tree.leaves(r["params"])[0].sharding.mesh.shape), devices=devices)
print(json.dumps(result))
'''


def test_checkpoint_restores_onto_a_different_mesh(tmp_path):
  proc = subprocess.run([sys.executable, "-c", _SCRIPT, str(tmp_path)], cwd=pc.ROOT, env=pc.env(8),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  res = json.loads(proc.stdout.strip().splitlines()[-1])
  a, b = res["data8_to_ft"], res["ft_to_df"]
  for r in (a, b):
    assert r["same"] and r["same_opt"] and r["rng"], r
    assert r["step"] == 1 and r["data"] == {"next_index": 5}
    assert r["devices"] == 8
  assert a["saved_spec"] == [None, None]  # data-only mesh: params replicated
  assert a["spec"] == a["mu_spec"] == ["fsdp", "tensor"]
  assert a["mesh"] == {"data": 1, "fsdp": 4, "tensor": 2} or a["mesh"] == {"fsdp": 4, "tensor": 2}
  assert b["saved_spec"] == ["fsdp", "tensor"]
  assert b["spec"] == ["fsdp", None]  # no tensor axis on the new mesh
