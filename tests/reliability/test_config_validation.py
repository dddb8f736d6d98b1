"""Config validation up front (rlvr_jax.training.validate): one case per range rule and per cross-key
rule, each error naming the full key, the value and the range; a bad config is refused before the
workdir is touched."""
from __future__ import annotations

import math

import ml_collections
import pytest

from configs import common
from rlvr_jax.training import validate

# A value outside the range, for every rule (the rule's own range text is checked in the message).
BAD = {
    "total_steps": -5, "seed": -1, "optim.lr": -1.0, "optim.warmup_steps": -1,
    "optim.min_lr_ratio": 1.5, "optim.weight_decay": -0.1, "optim.b1": 1.0, "optim.b2": -0.5,
    "optim.eps": 0.0, "optim.grad_clip": -1.0, "rollout.prompts_per_step": 0,
    "rollout.num_samples": 0, "rollout.max_new_tokens": 0, "rollout.temperature": 0.0,
    "rollout.temperature_end": -1.0, "rollout.top_p": 0.0, "rollout.top_k": -1,
    "rollout.min_p": 1.0, "rollout.max_rows_per_call": -16, "data.max_prompt_len": 0,
    "data.labelled_fraction": 1.5,
    "data.rl_size": 0, "reward.threshold": math.nan, "algo.epochs": 0, "algo.num_minibatches": 0,
    "algo.micro_batch_size": -2, "algo.clip_low": 1.2, "algo.clip_high": -0.1,
    "algo.dual_clip": 0.5, "algo.kl_coef": -0.01, "algo.entropy_coef": math.inf,
    "algo.norm_constant": 0.0, "batch.max_gen_batches": 0, "sft.steps": -1, "sft.batch_size": 0,
    "sft.micro_batch_size": -1, "sft.log_every": 0, "sft.optim.lr": 0.0, "eval.size": -1,
    "eval.num_samples": -1, "eval.temperature": -0.5, "eval.top_p": 1.5, "eval.batch_size": 0,
    "eval.every": -1, "eval.every_size": 0, "train.max_nonfinite_steps": -1,
    "checkpoint.every": -1, "checkpoint.max_to_keep": 0, "export.every": -1,
}


def _base() -> ml_collections.ConfigDict:
  cfg = common.base()
  common.cpu_variant(cfg)
  return cfg


def _set(cfg, key, value):
  *path, last = key.split(".")
  node = cfg
  for part in path:
    node = node[part]
  with node.ignore_type():
    node[last] = value


def test_every_rule_has_a_bad_case():
  assert set(BAD) == set(validate.RULES)


def test_the_base_and_cpu_configs_pass():
  validate.check_config(common.base())
  validate.check_config(_base())


@pytest.mark.parametrize("key", sorted(BAD))
def test_out_of_range_value_names_key_value_and_range(key):
  cfg = _base()
  _set(cfg, key, BAD[key])
  (text, _), optional = validate.RULES[key]
  with pytest.raises(validate.ConfigError) as e:
    validate.check_config(cfg)
  message = str(e.value)
  assert message.startswith(f"config.{key}={BAD[key]!r} is out of range"), message
  assert text in message and ("or None" in message) == optional


@pytest.mark.parametrize("key", ["total_steps", "optim.lr", "rollout.num_samples"])
def test_wrong_types_are_refused(key):
  cfg = _base()
  _set(cfg, key, "3")  # a string where a number belongs
  with pytest.raises(validate.ConfigError, match=f"config.{key}='3'"):
    validate.check_config(cfg)


def test_optional_keys_accept_none_and_max_to_keep_none_keeps_all():
  cfg = _base()
  cfg.checkpoint.max_to_keep = None
  cfg.data.rl_size = None
  validate.check_config(cfg)
  cfg.checkpoint.max_to_keep = 0
  with pytest.raises(validate.ConfigError, match="None keeps every checkpoint; 0 would delete"):
    validate.check_config(cfg)


def test_more_minibatches_than_rows():
  cfg = _base()  # 4 prompts x 4 samples = 16 rows
  cfg.algo.num_minibatches = 17
  with pytest.raises(validate.ConfigError, match=r"config.algo.num_minibatches=17 is more than the "
                     r"16 rows of a step \(rollout.prompts_per_step=4 x rollout.num_samples=4\)"):
    validate.check_config(cfg)


def test_micro_batch_larger_than_a_minibatch():
  cfg = _base()
  cfg.algo.num_minibatches = 4  # 16 rows -> 4 per mini-batch
  cfg.algo.micro_batch_size = 8
  with pytest.raises(validate.ConfigError, match=r"micro_batch_size=8 is larger than a mini-batch "
                     r"\(16 rows / algo.num_minibatches=4 = 4\)"):
    validate.check_config(cfg)


def test_sft_micro_batch_must_divide_the_batch():
  cfg = _base()
  cfg.sft.steps, cfg.sft.batch_size, cfg.sft.micro_batch_size = 2, 8, 3
  with pytest.raises(validate.ConfigError, match="sft.micro_batch_size=3 does not divide "
                     "config.sft.batch_size=8"):
    validate.check_config(cfg)


def test_greedy_eval_with_several_samples():
  cfg = _base()
  cfg.eval.temperature, cfg.eval.num_samples = 0.0, 8
  with pytest.raises(validate.ConfigError, match="eval.temperature=0 makes the 8 samples"):
    validate.check_config(cfg)


def test_rows_per_call_must_hold_whole_prompts():
  cfg = _base()  # G = 4
  cfg.rollout.max_rows_per_call = 10
  with pytest.raises(validate.ConfigError, match=r"config.rollout.max_rows_per_call=10 is not a "
                     r"multiple of config.rollout.num_samples=4: .* \(e.g. 8\)"):
    validate.check_config(cfg)
  cfg.rollout.max_rows_per_call = 8
  validate.check_config(cfg)


def test_prompt_plus_new_tokens_beyond_the_models_context():
  cfg = _base()
  cfg.model.overrides.max_position_embeddings = 32
  cfg.data.max_prompt_len, cfg.rollout.max_new_tokens = 32, 8
  with pytest.raises(validate.ConfigError, match=r"max_prompt_len=32 \+ config.rollout."
                     r"max_new_tokens=8 = 40 tokens exceed the model's context of 32 "
                     r"\(max_position_embeddings of preset 'tiny_qwen2'\)"):
    validate.check_config(cfg)


def test_context_of_a_local_hf_checkpoint_is_read_from_its_config(tmp_path):
  (tmp_path / "config.json").write_text('{"max_position_embeddings": 64}')
  cfg = _base()
  cfg.model.init, cfg.model.path = "hf", str(tmp_path)
  cfg.data.max_prompt_len, cfg.rollout.max_new_tokens = 60, 8
  with pytest.raises(validate.ConfigError, match=f"context of 64 .*{tmp_path}/config.json"):
    validate.check_config(cfg)


def test_loop_refuses_before_touching_the_workdir(tmp_path):
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  cfg = _base()
  cfg.optim.lr = -1.0
  workdir = tmp_path / "run"
  with pytest.raises(validate.ConfigError, match="config.optim.lr=-1.0"):
    loop.run(cfg, str(workdir))
  assert not workdir.exists()


def test_ead_schedule_options_are_checked_up_front():
  cfg = _base()
  cfg.rollout.temperature, cfg.rollout.temperature_end = 1.2, 0.8
  cfg.rollout.temperature_schedule = "ead"
  with pytest.raises(validate.ConfigError, match="schedule_options for temperature_schedule='ead' "
                     "needs decay0"):
    validate.check_config(cfg)
  cfg.rollout.schedule_options = {"decay0": 4.0}
  validate.check_config(cfg)


def test_export_dtype_is_checked():
  cfg = common.base()
  cfg.export.dtype = "bf16"
  validate.check_config(cfg)  # an alias of bfloat16
  cfg.export.dtype = "int8"
  with pytest.raises(validate.ConfigError, match=r"config.export.dtype: .*'int8'"):
    validate.check_config(cfg)
