"""With a per-position temperature schedule the learner's log-probs equal the sampler's: the
trainer's recomputed old log-probs then match the behaviour log-probs (ratio 1 on-policy)."""
from __future__ import annotations

import numpy as np
import pytest
from flax import nnx

from configs import common
from rlvr_jax import sampling
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import builders
from rlvr_jax.training import step as step_lib


@pytest.mark.parametrize("schedule", ["linear", "cosine"])
def test_learner_logprobs_follow_the_sampler_schedule(schedule):
  cfg = common.base()
  common.cpu_variant(cfg)
  model = builders.init_model(builders.model_config(cfg.model, 64), seed=0)
  prompts = [[3, 4, 5], [6, 7]]
  n, g = 6, 3
  out = sampling.generate(model, prompts, max_new_tokens=n, num_samples=g, temperature=1.6,
                          temperature_end=0.4, temperature_schedule=schedule, seed=1)
  rows = batch_lib.rollout_batch(prompts, g, out.tokens, out.lengths, pad_id=0, prompt_len=8,
                                 response_len=n)
  graphdef, params = nnx.split(model)
  logp, _ = step_lib.batch_logprobs(params, rows, graphdef=graphdef,
                                    temperature=(1.6, 0.4, schedule, n), impl=None, num_micro=1)
  mask = rows["mask"] > 0
  np.testing.assert_allclose(np.asarray(logp)[mask], out.logprobs[mask], atol=2e-5)
  # The constant temperature T0 does not reproduce them (the check can fail).
  flat, _ = step_lib.batch_logprobs(params, rows, graphdef=graphdef, temperature=1.6, impl=None,
                                    num_micro=1)
  assert np.abs(np.asarray(flat)[mask] - out.logprobs[mask]).max() > 1e-2
