"""python -m experiments.export: any checkpoint of a run as an HF checkpoint, in a chosen dtype,
with the same params as the checkpoint (cast) and the run's tokenizer."""
from __future__ import annotations

import json
import os

import jax
import numpy as np
import pytest
from flax import nnx
from safetensors import safe_open

from experiments import export as export_cli
from rlvr_jax import models
from rlvr_jax.training import builders, checkpoint, loop
from tests.training import rl_loop_helpers as helpers


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
  helpers.register_test_rewards()
  cfg = helpers.get_config("dapo", "cpu")
  cfg.total_steps = 2
  cfg.reward.terms = list(cfg.reward.terms) + [dict(name=helpers.DIGITS_REWARD, weight=1.0)]
  cfg.batch.builder_options.dynamic_sampling.metric = "reward"
  cfg.checkpoint.every, cfg.checkpoint.max_to_keep = 1, None
  cfg.eval.size, cfg.export_hf = 0, False
  workdir = str(tmp_path_factory.mktemp("run"))
  loop.run(cfg, workdir)
  return workdir, cfg


def _checkpoint_params(workdir, cfg, step):
  vocab = models.Tokenizer.from_pretrained(os.path.join(workdir, "tokenizer")).vocab_size
  abstract, _ = builders.abstract_model(cfg.model, vocab_size=vocab)
  sharding = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  target = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding),
                        nnx.split(abstract)[1])
  ckpt = checkpoint.Checkpointer(os.path.join(workdir, "checkpoints"))
  params, _ = ckpt.restore_params(step, params=target)
  ckpt.close()
  return params


def test_export_a_middle_step_in_bf16(run_dir):
  workdir, cfg = run_dir
  out = export_cli.export(workdir, step=1, dtype="bf16")
  assert out["out"] == os.path.join(workdir, "exports", "step_1") and out["dtype"] == "bfloat16"
  files = set(os.listdir(out["out"]))
  assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
          "tokenizer_config.json"} <= files
  with safe_open(os.path.join(out["out"], "model.safetensors"), "np") as f:
    name = "model.embed_tokens.weight"
    assert str(f.get_slice(name).get_dtype()) == "BF16"
  hf_config = json.loads(open(os.path.join(out["out"], "config.json")).read())
  assert hf_config.get("torch_dtype") == "bfloat16" or hf_config.get("dtype") == "bfloat16"
  # The exported weights are step 1's params, cast (not step 2's, not the initial ones).
  loaded, _ = models.load_hf(out["out"], dtype="float32")
  got = jax.tree.leaves(nnx.state(loaded, nnx.Param))
  step1 = jax.tree.leaves(_checkpoint_params(workdir, cfg, 1))
  step2 = jax.tree.leaves(_checkpoint_params(workdir, cfg, 2))
  assert len(got) == len(step1)
  cast = lambda x: np.asarray(jax.numpy.asarray(x).astype("bfloat16").astype("float32"))  # noqa: E731
  for a, b in zip(got, step1):
    np.testing.assert_array_equal(np.asarray(a), cast(b))
  assert any(not np.array_equal(cast(a), cast(b)) for a, b in zip(step1, step2))


def test_default_dtype_and_latest_step(run_dir, tmp_path):
  workdir, _ = run_dir
  out = export_cli.export(workdir, out=str(tmp_path / "latest"))
  assert out["step"] == 2 and out["dtype"] == "float32"  # a preset model: its param dtype
  with safe_open(os.path.join(out["out"], "model.safetensors"), "np") as f:
    assert str(f.get_slice("model.embed_tokens.weight").get_dtype()) == "F32"


def test_bad_input(run_dir, tmp_path):
  workdir, _ = run_dir
  with pytest.raises(ValueError, match="int8"):
    export_cli.export(workdir, dtype="int8")
  with pytest.raises(FileNotFoundError, match="no run config"):
    export_cli.export(str(tmp_path))


def test_command_line(run_dir, tmp_path):
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  workdir, _ = run_dir
  out = tmp_path / "cli"
  done = subprocess.run([sys.executable, "-m", "experiments.export", f"--workdir={workdir}",
                         "--step=2", "--dtype=float16", f"--out={out}"], cwd=helpers.REPO,
                        capture_output=True, text=True, timeout=300,
                        env=dict(os.environ, PYTHONPATH=str(helpers.REPO), JAX_PLATFORMS="cpu"))
  assert done.returncode == 0, done.stderr[-3000:]
  assert "float16 weights" in done.stdout
  with safe_open(os.path.join(out, "model.safetensors"), "np") as f:
    assert str(f.get_slice("model.embed_tokens.weight").get_dtype()) == "F16"


def test_resume_with_another_vocabulary_is_refused(run_dir, tmp_path):
  """Same config, but the workdir's cached tokenizer replaced by one with a larger alphabet: the
  resume stops naming both vocabulary sizes instead of failing inside orbax."""
  import shutil  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import workdir as workdir_lib  # pylint: disable=import-outside-toplevel
  workdir, cfg = run_dir
  copy = tmp_path / "copy"
  shutil.copytree(workdir, copy)
  old = models.Tokenizer.from_pretrained(os.path.join(workdir, "tokenizer"))
  shutil.rmtree(copy / "tokenizer")
  bigger = models.char_level(cfg.tokenizer.alphabet + "#@$%&")
  bigger.save(str(copy / "tokenizer"))
  cfg = cfg.copy_and_resolve_references()
  cfg.total_steps = 3
  with pytest.raises(workdir_lib.ConfigChangeError,
                     match=rf"vocabulary of {bigger.vocab_size} tokens.*trained with {old.vocab_size}"):
    loop.run(cfg, str(copy))
