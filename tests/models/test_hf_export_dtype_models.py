"""``save_hf(..., dtype=...)`` stores weights in the chosen dtype; ``checkpoint_dtype`` reads a
checkpoint's stored dtype (so a run can export in its source's dtype).

Tolerance: a float32 model exported in bfloat16 and run by transformers in float32 differs from the
float32 oracle only by the weight rounding: measured max |diff| 0.03-0.05 and mean ~0.007 on logits
of max |x| ~4-5 (qwen2, qwen3); the test asserts the bf16 bounds of test_hf_parity_models.py, max
< 0.25 and mean < 0.03 (there the matmul inputs are rounded too).
The exported tensors must equal torch's own ``.to(torch.bfloat16)`` of the weights bit for bit
(both round to nearest even), so transformers' logits on them match to float32 precision.
"""
import copy
import json
import shutil

import jax
import numpy as np
import pytest
import torch
import transformers
from flax import nnx
from safetensors import safe_open

from rlvr_jax.models import checkpoint_dtype, load_hf, save_hf
from tests.models.hf_oracle import VOCAB, hf_logits, make_hf_model


def _dtypes(path):
  with safe_open(str(path / "model.safetensors"), framework="numpy") as f:
    return {f.get_slice(name).get_dtype() for name in f.keys()}


@pytest.fixture(scope="module", params=["qwen2", "qwen3"])
def exported(request, tmp_path_factory):
  """(HF float32 model, its directory, our bf16 export of it)."""
  hf = make_hf_model(request.param, seed=7)
  root = tmp_path_factory.mktemp(f"export_{request.param}")
  hf.save_pretrained(root / "src")
  model, config = load_hf(root / "src")
  assert config.param_dtype == "float32"
  save_hf(model, config, root / "bf16", dtype="bfloat16")
  return hf, root / "src", root / "bf16"


def test_bf16_export_stores_bf16_and_says_so(exported):
  _, src, out = exported
  assert _dtypes(out) == {"BF16"}
  saved = json.loads((out / "config.json").read_text())
  assert saved["dtype"] == saved["torch_dtype"] == "bfloat16"
  assert checkpoint_dtype(out) == "bfloat16" and checkpoint_dtype(src) == "float32"
  auto = transformers.AutoModelForCausalLM.from_pretrained(out, dtype="auto")
  assert {p.dtype for p in auto.parameters()} == {torch.bfloat16}


def test_bf16_export_is_torchs_rounding_and_keeps_the_logits(exported):
  hf, _, out = exported
  rounded = {k: v.to(torch.bfloat16).float().numpy() for k, v in hf.state_dict().items()}
  with safe_open(str(out / "model.safetensors"), framework="numpy") as f:
    for name in f.keys():
      np.testing.assert_array_equal(f.get_tensor(name).astype(np.float32), rounded[name],
                                    err_msg=name)
  tokens = np.random.RandomState(8).randint(0, VOCAB, (2, 32))
  reloaded = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
  ours = hf_logits(reloaded, tokens)
  ref = hf_logits(hf, tokens)
  err = np.abs(ours - ref)
  assert np.abs(ref).max() > 1.0
  assert 0 < err.max() < 0.25 and err.mean() < 0.03, (err.max(), err.mean())
  same_weights = copy.deepcopy(hf)  # round the weights only (.to() would round RoPE's buffers too)
  with torch.no_grad():
    for p in same_weights.parameters():
      p.copy_(p.to(torch.bfloat16).float())
  np.testing.assert_allclose(ours, hf_logits(same_weights, tokens), atol=1e-5, rtol=0)


def test_checkpoint_dtype_falls_back_to_the_tensors(exported, tmp_path):
  _, _, out = exported
  bare = tmp_path / "bare"
  shutil.copytree(out, bare)
  cfg = json.loads((bare / "config.json").read_text())
  del cfg["dtype"], cfg["torch_dtype"]
  (bare / "config.json").write_text(json.dumps(cfg))
  assert checkpoint_dtype(bare) == "bfloat16"
  cfg["torch_dtype"] = "torch.float16"  # some exporters write the torch repr
  (bare / "config.json").write_text(json.dumps(cfg))
  assert checkpoint_dtype(bare) == "float16"


def test_default_and_explicit_float32_export(exported, tmp_path):
  _, _, out = exported
  model16, config16 = load_hf(out, dtype="bfloat16")
  save_hf(model16, config16, tmp_path / "default")  # None: the model's param dtype
  assert _dtypes(tmp_path / "default") == {"BF16"}
  save_hf(model16, config16, tmp_path / "f32", dtype="float32")
  assert _dtypes(tmp_path / "f32") == {"F32"}
  assert json.loads((tmp_path / "f32" / "config.json").read_text())["dtype"] == "float32"
  back, config = load_hf(tmp_path / "f32", dtype="bfloat16")  # bf16 -> f32 -> bf16 is exact
  assert config == config16
  for a, b in zip(jax.tree.leaves(nnx.state(back, nnx.Param)),
                  jax.tree.leaves(nnx.state(model16, nnx.Param)), strict=True):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  with pytest.raises(ValueError, match="not a floating-point dtype"):
    save_hf(model16, config16, tmp_path / "bad", dtype="int8")
