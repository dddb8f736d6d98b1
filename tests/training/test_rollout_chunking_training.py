"""``config.rollout.max_rows_per_call``: a rollout run as chunks of whole prompts gives the tokens,
log-probs and finish reasons of one sampler call, and a short training run the same metrics.

Every row draws from the keys of its global row number (``sampling.row_keys`` with the chunk's
``row_offset``), so chunking cannot change a draw; what it changes is the shape of each call.
XLA:CPU compiles a reduction (RMSNorm, softmax, log-sum-exp) differently once the array holds
4096 elements or more, so a row's logits are bit-identical across batch sizes only while the calls
fall on the same side of that size: for the width-64 test model, 64 rows or more per call. The
exact tests use such chunks; `test_small_chunks_differ_only_in_the_last_bits` pins what happens
below it.
"""
from __future__ import annotations

import jax
import numpy as np
import pytest
from flax import nnx

from configs import common
from rlvr_jax import sampling
from rlvr_jax.episodes import context as context_lib
from rlvr_jax.parallel import mesh as mesh_lib
from rlvr_jax.parallel import sampler as parallel_sampler
from rlvr_jax.training import loop, validate
from tests.sampling.sampling_helpers import tiny_model
from tests.training import rl_loop_helpers as helpers

FIELDS = ("tokens", "lengths", "logprobs", "finish_reason")
EOS = (3, 5, 7, 9, 11, 13, 17, 19)  # several stop ids: rows end at different steps


def _prompts(num: int, seed: int = 0) -> list[list[int]]:
  rng = np.random.default_rng(seed)
  return [rng.integers(20, 256, size=int(rng.integers(2, 14))).tolist() for _ in range(num)]


def _options(**kw) -> dict:
  return dict(dict(max_new_tokens=24, num_samples=8, temperature=1.0, top_p=0.9, eos_ids=EOS,
                   seed=3), **kw)


@pytest.fixture(scope="module")
def model():
  return tiny_model()


@pytest.fixture(scope="module")
def mesh_sampler(model):
  graphdef, state = nnx.split(model)
  mesh = mesh_lib.make_mesh(dict(data=1, fsdp=1, tensor=1))
  shardings = jax.tree.map(lambda _: mesh_lib.replicated(mesh), state)
  return parallel_sampler.MeshSampler(mesh, None, graphdef, shardings, model.config), state


def _assert_same(want, got):
  for f in FIELDS:
    np.testing.assert_array_equal(getattr(got, f), getattr(want, f), err_msg=f)


# 32 prompts x 8 samples = 256 rows; 192 rows per call leaves a ragged last chunk (8 of 24
# prompts, padded to 24).
@pytest.mark.parametrize("rows", [64, 128, 192])
def test_chunked_rollout_is_the_one_call_rollout(model, rows):
  prompts = _prompts(32)
  whole = sampling.generate(model, prompts, **_options())
  before = sampling.TRACE_COUNTS.copy()
  chunked = sampling.generate(model, prompts, max_rows_per_call=rows, **_options())
  _assert_same(whole, chunked)
  assert len(set(whole.finish_reason.tolist())) == 2  # some rows stopped, some ran out
  assert chunked.num_steps == whole.num_steps
  # One program for every chunk, the padded last one included.
  assert sum((sampling.TRACE_COUNTS - before).values()) <= 1


def test_mesh_sampler_chunks_match_with_a_schedule(mesh_sampler):
  """The trainer's sampler (`MeshSampler`), here with a per-position temperature schedule."""
  sampler, state = mesh_sampler
  prompts = _prompts(20, seed=1)
  opts = _options(temperature_schedule="linear", temperature_end=0.5)
  whole = sampler.generate(state, prompts, **opts)
  for rows in (64, 96):
    _assert_same(whole, sampler.generate(state, prompts, max_rows_per_call=rows, **opts))


def test_small_chunks_differ_only_in_the_last_bits(model):
  """Below 64 rows per call XLA:CPU's reductions round differently from the one 256-row call:
  for this seed the tokens and finish reasons still agree and the log-probs within 1e-5."""
  prompts = _prompts(32)
  whole = sampling.generate(model, prompts, **_options())
  for rows in (8, 24):
    out = sampling.generate(model, prompts, max_rows_per_call=rows, **_options())
    np.testing.assert_array_equal(out.tokens, whole.tokens)
    np.testing.assert_array_equal(out.finish_reason, whole.finish_reason)
    np.testing.assert_allclose(out.logprobs, whole.logprobs, atol=1e-5)


def test_context_sample_chunks_ragged_counts(mesh_sampler):
  """``EpisodeContext.sample`` passes the config's bound; per-prompt counts (copies of a prompt,
  `unit` samples each) split across chunks still give the one-call rows."""
  sampler, state = mesh_sampler
  cfg = common.base()
  prompts = _prompts(24, seed=2)
  counts = [8, 16, 4, 8, 8, 12] * 4  # copies of 8 samples; 4 and 12 drop the extra samples

  def sample(bound):
    cfg.rollout.max_rows_per_call = bound
    cfg.rollout.max_new_tokens = 16
    ctx = context_lib.EpisodeContext(
        config=cfg, tokenizer=_Tokenizer(), prompt_fn=None, params=state, ref_params=None,
        generate=sampler.generate, rows_fn=None, logprob_fn=None, token_stats_fn=None,
        rng=np.random.default_rng(0), state={}, step=0)
    return ctx.sample(prompts, counts=counts, unit=8)

  whole = sample(None)
  for bound in (64, 136):
    got = sample(bound)
    for f in ("tokens", "lengths", "logprobs", "finish", "prompt_index"):
      np.testing.assert_array_equal(getattr(got, f), getattr(whole, f), err_msg=f)


class _Tokenizer:
  eos_ids = EOS
  pad_id = 0


def test_chunk_plan():
  assert sampling.chunk_prompts(32, 8, None) is None
  assert sampling.chunk_prompts(32, 8, 0) is None
  assert sampling.chunk_prompts(32, 8, 256) is None  # one call fits
  assert sampling.chunk_prompts(30, 8, 248) == 31  # 30 prompts bucket to 32: chunked
  assert sampling.chunk_prompts(32, 8, 200) == 25  # rows rounded down to whole prompts
  assert sampling.chunk_prompts(32, 8, 200, split=4) == 24  # and to the batch split
  with pytest.raises(ValueError, match=r"max_rows_per_call=12 cannot hold the 16 samples of one "
                     r"prompt .* multiple of 16"):
    sampling.chunk_prompts(32, 16, 12)
  with pytest.raises(ValueError, match=r"max_rows_per_call=48 holds 3 prompts of 16 samples, "
                     r"fewer than the 4-way data-parallel split .* 16 x 4 = 64"):
    sampling.chunk_prompts(32, 16, 48, split=4)


def test_bad_chunk_size_is_a_config_error_naming_the_numbers(tmp_path):
  cfg = helpers.get_config("dapo", "cpu")  # G = 4
  cfg.rollout.max_rows_per_call = 6
  with pytest.raises(validate.ConfigError, match=r"config.rollout.max_rows_per_call=6 is not a "
                     r"multiple of config.rollout.num_samples=4"):
    loop.run(cfg, str(tmp_path / "run"))
  assert not (tmp_path / "run").exists()  # refused before the workdir is touched
  cfg.rollout.max_rows_per_call = 8  # 2 prompts per call, but the batch is split 4 ways
  cfg.mesh.data, cfg.mesh.fsdp = 2, 2
  with pytest.raises(validate.ConfigError, match=r"max_rows_per_call=8 holds 2 prompts of "
                     r"config.rollout.num_samples=4, not a multiple of the 4-way data-parallel split "
                     r"of the sampler's batch \(mesh.data=2 x mesh.fsdp=2\): use a multiple of "
                     r"4 x 4 = 16"):
    validate.check_config(cfg)
  cfg.mesh.data = -1  # sized at run time: left to the sampler
  validate.check_config(cfg)


def test_episode_sampling_more_per_prompt_than_a_call_holds(mesh_sampler):
  """An episode asking for more samples of one prompt than a call holds fails at once, naming the
  numbers (not an out-of-memory error deep in a run)."""
  sampler, state = mesh_sampler
  cfg = common.base()
  cfg.rollout.max_rows_per_call = 16
  ctx = context_lib.EpisodeContext(
      config=cfg, tokenizer=_Tokenizer(), prompt_fn=None, params=state, ref_params=None,
      generate=sampler.generate, rows_fn=None, logprob_fn=None, token_stats_fn=None,
      rng=np.random.default_rng(0), state={}, step=0)
  with pytest.raises(ValueError, match="max_rows_per_call=16 cannot hold the 32 samples of one "
                     "prompt"):
    ctx.sample(_prompts(2), num_samples=32)


def _run(tmp_path, name, bound):
  cfg = helpers.pinned_config("dapo")
  cfg.rollout.prompts_per_step, cfg.rollout.num_samples = 16, 8  # 128 rows a batch
  cfg.rollout.max_rows_per_call = bound
  cfg.lock()
  loop.run(cfg, str(tmp_path / name))
  return [helpers.deterministic(r) for r in helpers.read_metrics(tmp_path / name)]


def test_training_run_metrics_do_not_depend_on_chunking(tmp_path):
  """configs/dapo.py:cpu (dynamic sampling: several generation batches a step; the overlong
  penalty) for two steps: 96 rows per call (chunks of 12 and 4 + 8 padding prompts) gives the
  metrics of one 128-row call, exactly."""
  whole = _run(tmp_path, "whole", None)
  chunked = _run(tmp_path, "chunked", 96)
  assert [r["step"] for r in whole] == [1, 2]
  assert chunked == whole
