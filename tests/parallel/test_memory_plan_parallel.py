"""The memory plan (rlvr_jax/parallel/memory.py, python -m experiments.memory).

- every config's reproduction card states the plan that fits its hardware, and the plan agrees
  (shapes only: a 32B model plans in seconds here);
- the exact terms match real arrays: params and optimizer state placed on 8 fake devices under
  four meshes, the KV cache the sampler actually builds;
- the activation estimate is within a stated factor of XLA's compiled memory analysis;
- a command that does not fit is reported with its numbers and a non-zero exit status.
"""
import functools
import importlib
import json
import re
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rlvr_jax import models, sampling
from rlvr_jax.parallel import memory
from rlvr_jax.training import step as step_lib
from tests.parallel import parallel_compare as pc
from tests.training import rl_loop_helpers as helpers

NAMES = helpers.config_names()
CARD = re.compile(
    r"Memory plan: mesh \{(?P<mesh>[^}]*)\}, rollout\.max_rows_per_call (?P<rows>\d+), "
    r"algo\.micro_batch_size (?P<micro>\d+), eval\.batch_size (?P<eval>\d+), "
    r"model\.remat (?P<remat>True|False) fit (?P<count>\d+) x (?P<device>\S+) \[[^\]]*\] "
    r"\(python -m experiments\.memory --config configs/(?P<name>\w+)\.py\)")
OPTIM = {"name": "adamw", "lr": 1e-6, "grad_clip": 1.0}
TINY = models.ModelConfig.tiny_qwen2(vocab_size=64, hidden_size=32, num_layers=2, num_heads=4,
                                     num_kv_heads=2, head_dim=8, intermediate_size=64)
# How far the no-remat activation estimate may sit from XLA's compiled temp memory (CPU).
ACTIVATION_FACTOR = 1.5


def card_text(name: str) -> str:
  return " ".join(importlib.import_module(f"configs.{name}").__doc__.split())


def card_plan(name: str) -> tuple[memory.Settings, str, int]:
  doc = card_text(name)
  m = CARD.search(doc)
  assert m, f"configs/{name}.py: the card has no parsable 'Memory plan:' line"
  assert m["name"] == name, "the card's plan command must name its own config"
  mesh = tuple((k.strip(), int(v)) for k, v in (p.split(":") for p in m["mesh"].split(",")))
  settings = memory.Settings(mesh=mesh, rows_per_call=int(m["rows"]), micro_batch=int(m["micro"]),
                             eval_batch=int(m["eval"]), remat=m["remat"] == "True")
  return settings, m["device"], int(m["count"])


@pytest.mark.parametrize("name", NAMES)
def test_card_states_the_plan_that_fits(name):
  card, device, count = card_plan(name)
  cfg = helpers.get_config(name, None)  # the paper-scale command
  result = memory.plan(cfg)
  hw = result["hardware"]
  assert hw is not None and (hw.device, hw.count) == (device, count), (name, hw)
  assert result["suggested"] == card, (name, result["suggested"], card)  # what the plan prints
  checked = memory.plan(cfg, settings=card, suggest=False)
  assert checked["fits"], (name, checked["estimate"]["peak"] / memory.GIB)
  assert checked["estimate"]["peak"] <= checked["budget"]
  needed, available = result["context"]
  if needed > available:  # the card must say the run cannot start as configured
    assert "positions" in card_text(name), name


_REAL_ARRAYS = r'''
import json
import jax
from flax import nnx
from rlvr_jax import models
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.training import builders, step as step_lib

assert jax.device_count() == 8
mc = models.ModelConfig.tiny_qwen2(**json.loads(MODEL))
tx = builders.build_optimizer(json.loads(OPTIM), 1000)
out = {}
for axes in json.loads(MESHES):
  mesh = mesh_lib.make_mesh(axes)
  model = models.Transformer(mc, rngs=nnx.Rngs(0))
  _, params = nnx.split(model)
  shardings = mesh_lib.param_shardings(params, models.logical_axes(model), mesh)
  params = jax.device_put(params, shardings)
  opt_shardings = step_lib.state_shardings(params, shardings, tx, mesh_lib.replicated(mesh))
  opt = jax.jit(tx.init, out_shardings=opt_shardings)(params)

  def most(tree):  # the largest number of bytes any one device holds
    per = {}
    for leaf in jax.tree.leaves(tree):
      for shard in leaf.addressable_shards:
        per[shard.device.id] = per.get(shard.device.id, 0) + shard.data.nbytes
    return max(per.values())

  out[json.dumps(axes)] = [most(params), most(opt)]
print(json.dumps(out))
'''

MESHES = [{"data": 8, "fsdp": 1, "tensor": 1}, {"data": 2, "fsdp": 2, "tensor": 2},
          {"data": 1, "fsdp": 8, "tensor": 1}, {"data": 1, "fsdp": 2, "tensor": 4}]


def _run() -> memory.Run:
  return memory.Run(prompts=4, samples=2, prompt_len=6, new_tokens=40, minibatches=1,
                    needs_ref=False, top_p=1.0, evaluates=False, eval_top_p=1.0)


def test_params_and_optimizer_bytes_match_real_arrays_on_8_devices():
  fields = {k: getattr(TINY, k) for k in ("vocab_size", "hidden_size", "num_layers", "num_heads",
                                          "num_kv_heads", "head_dim", "intermediate_size")}
  script = (_REAL_ARRAYS
            .replace("json.loads(MODEL)", f"json.loads({json.dumps(json.dumps(fields))})")
            .replace("json.loads(OPTIM)", f"json.loads({json.dumps(json.dumps(OPTIM))})")
            .replace("json.loads(MESHES)", f"json.loads({json.dumps(json.dumps(MESHES))})"))
  proc = subprocess.run([sys.executable, "-c", script], cwd=pc.ROOT, env=pc.env(8),
                        capture_output=True, text=True, timeout=600)
  assert proc.returncode == 0, proc.stderr[-4000:]
  real = json.loads(proc.stdout.strip().splitlines()[-1])
  for axes in MESHES:
    settings = memory.Settings(mesh=tuple(axes.items()), rows_per_call=8, micro_batch=8,
                               eval_batch=8, remat=False)
    est = memory.estimate(TINY, _run(), settings, optim=json.dumps(OPTIM))
    assert [est["params"], est["optimizer"]] == real[json.dumps(axes)], axes
  # 2 kv heads do not divide by tensor=4: those weights stay whole, as the real placement does.
  assert real[json.dumps(MESHES[3])][0] > real[json.dumps(MESHES[2])][0]


def _while_carries(jaxpr) -> list[list]:
  """The carried values of every while loop in a jaxpr (nested ones too), in program order."""
  out = []
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "while":
      out.append([v.aval for v in eqn.outvars])
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        sub = getattr(sub, "jaxpr", sub)  # ClosedJaxpr -> Jaxpr
        if hasattr(sub, "eqns"):
          out += _while_carries(sub)
  return out


@pytest.mark.parametrize("new_tokens", [8, 100])  # one decode phase; three
def test_kv_estimate_matches_the_samplers_cache(new_tokens):
  run = memory.Run(prompts=3, samples=2, prompt_len=6, new_tokens=new_tokens, minibatches=1,
                   needs_ref=False, top_p=1.0, evaluates=False, eval_top_p=1.0)
  model = models.Transformer(TINY, rngs=nnx.Rngs(0))
  graphdef, state = nnx.split(model)
  # What MeshSampler hands sample_padded: prompts bucketed to a power of two and the prompt
  # length bucket of data.max_prompt_len.
  p, tp = sampling.bucket_batch_size(run.prompts), sampling.bucket_prompt_length(run.prompt_len)
  config = sampling.SamplerConfig(max_new_tokens=new_tokens, num_samples=run.samples)
  fn = functools.partial(sampling.sample_padded, graphdef, config=config)
  jaxpr = jax.make_jaxpr(fn)(state, jnp.ones((p, tp), jnp.int32), jnp.ones((p, tp), bool),
                             jax.random.key(0))
  caches = [sum(int(np.prod(a.shape)) * a.dtype.itemsize for a in avals if len(a.shape) == 5)
            for avals in _while_carries(jaxpr.jaxpr)]
  caches = [c for c in caches if c]
  settings = memory.Settings(mesh=(("data", 1),), rows_per_call=run.prompts * run.samples,
                             micro_batch=1, eval_batch=1, remat=False)
  est = memory.estimate(TINY, run, settings, optim=json.dumps(OPTIM))
  assert est["kv_final"] == caches[-1]  # the last decode phase's cache, k and v
  previous = caches[-2] if len(caches) > 1 else 2 * 4 * TINY.num_layers * p * run.samples * (
      TINY.num_kv_heads * (tp - 1) * TINY.head_dim)  # one phase: grown from the prompt cache
  assert est["kv_cache"] == caches[-1] + previous  # the copy at the last phase change


@pytest.mark.parametrize("rows,prompt,response,dtype", [(4, 32, 96, "float32"),
                                                        (8, 64, 192, "float32"),
                                                        (16, 16, 48, "float32"),
                                                        (8, 64, 192, "bfloat16")])
def test_activation_estimate_is_near_the_compiled_memory(rows, prompt, response, dtype):
  mc = TINY.replace(hidden_size=64, num_heads=4, head_dim=16, intermediate_size=256,
                    num_layers=4, vocab_size=256, dtype=dtype)
  graphdef, params = nnx.split(models.Transformer(mc, rngs=nnx.Rngs(0)))
  t = prompt + response

  def loss(params, tokens, response_tokens):
    model = nnx.merge(graphdef, params)
    positions = jnp.broadcast_to(jnp.arange(t), (rows, t))
    logp, ent = step_lib.response_logprobs(model, tokens, positions, jnp.ones((rows, t), bool),
                                           response_tokens, temperature=1.0, impl="xla")
    return logp.sum() + ent.sum()

  compiled = jax.jit(jax.grad(loss)).lower(
      params, jax.ShapeDtypeStruct((rows, t), jnp.int32),
      jax.ShapeDtypeStruct((rows, response), jnp.int32)).compile()
  temp = compiled.memory_analysis().temp_size_in_bytes
  est = memory.activation_bytes(mc, rows, t, remat=False)
  assert 1 / ACTIVATION_FACTOR <= est / temp <= ACTIVATION_FACTOR, (est, temp)
  # Remat keeps a layer's input instead of its whole set: the estimate must say it saves.
  assert memory.activation_bytes(mc.replace(num_layers=8), rows, t, remat=True) < est


def _cli(*args: str) -> subprocess.CompletedProcess:
  return subprocess.run([sys.executable, "-m", "experiments.memory", *args], cwd=pc.ROOT,
                        env=pc.env(1), capture_output=True, text=True, timeout=600)


def test_a_plan_that_does_not_fit_prints_the_numbers_and_fails():
  proc = _cli("--config", "configs/dapo.py")
  assert proc.returncode == 1, proc.stderr[-2000:]
  out = proc.stdout
  assert "rollout KV cache (peak)" in out and "update activations, no remat" in out
  assert "| fits 126.9 GiB? | NO | yes |" in out
  assert "verdict: does not fit 32 x H200-141GB as configured" in out
  assert "--config.mesh.tensor=8" in out and "--config.rollout.max_rows_per_call=128" in out
  # A config that fits exits 0; one with no hardware named has no verdict; an unknown model errs.
  assert _cli("--config", "configs/quickstart.py").returncode == 0
  proc = _cli("--config", "configs/gspo.py", "--config.hardware.model=qwen9_400b")
  assert proc.returncode == 2 and "qwen9_400b" in proc.stderr
