"""Every configs/*.py builds in both variants, is locked against typos, and carries its card."""
from __future__ import annotations

import importlib

import pytest
from absl import flags
from ml_collections import config_flags

from rlvr_jax.training import loop
from tests.training import rl_loop_helpers as helpers

NAMES = helpers.config_names()
# The GRPO-family paper configs: their full variant targets a real checkpoint from a local path.
PAPER = ("grpo", "dr_grpo", "dapo", "rloo", "reinforce_pp", "gspo", "cispo",
         "grpo_qwen2p5_0p5b_gsm8k")


def parse(argv: list[str]):
  """The config as experiments.run loads it (config_flags, lock_config=True)."""
  argv = ["prog"] + argv
  values = flags.FlagValues()
  config_flags.DEFINE_config_file("config", None, "", flag_values=values, lock_config=True,
                                  sys_argv=argv)
  values(argv)
  return values.config


def test_paper_configs_are_present():
  assert set(PAPER) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_config_builds_locked_and_rejects_typos(name):
  for arg in (None, "cpu"):
    cfg = helpers.get_config(name, arg)
    cfg.lock()
    with pytest.raises(AttributeError):
      cfg.algo.clip_hihg = 0.3  # a typo cannot add a key
    cfg.to_json_best_effort()  # config.json of the run must serialise
  path = f"--config=configs/{name}.py:cpu"
  assert parse([path, "--config.algo.clip_high=0.31"]).algo.clip_high == pytest.approx(0.31)
  with pytest.raises(AttributeError, match="clip_hgh"):
    parse([path, "--config.algo.clip_hgh=0.3"])
  with pytest.raises((AttributeError, KeyError), match="no_such_section"):
    parse([path, "--config.no_such_section.x=1"])
  # A value of the wrong type names the flag and the bad value.
  with pytest.raises(flags.IllegalFlagValueError, match="total_steps=abc"):
    parse([path, "--config.total_steps=abc"])


@pytest.mark.parametrize("name", NAMES)
def test_config_has_reproduction_card(name):
  doc = importlib.import_module(f"configs.{name}").__doc__ or ""
  assert "Reproduction card" in doc, name
  for field in ("paper:", "command:", "hardware:", "expected:"):
    assert field in doc, (name, field)
  assert f"configs/{name}.py" in doc, "the card's command must name its own config"


@pytest.mark.parametrize("name", PAPER)
def test_paper_config_full_variant_needs_local_paths(name):
  cfg = parse([f"--config=configs/{name}.py"])
  assert cfg.model.init == "hf" and cfg.model.path is None
  assert cfg.tokenizer.kind == "pretrained" and cfg.data.template == "chat"
  with pytest.raises(ValueError, match="--config.model.path"):
    loop.check_required(cfg)
  cfg = parse([f"--config=configs/{name}.py", "--config.model.path=/models/x"])
  with pytest.raises(ValueError, match="--config.data.path"):
    loop.check_required(cfg)
  cfg = parse([f"--config=configs/{name}.py", "--config.model.path=/models/x",
               "--config.data.path=/data/train.jsonl"])
  assert cfg.data.train.path == "/data/train.jsonl"  # the short flag reaches the source config
  if int(cfg.eval.size) > 0:
    with pytest.raises(ValueError, match="--config.data.eval_path"):
      loop.check_required(cfg)
  cfg = parse([f"--config=configs/{name}.py", "--config.model.path=/models/x",
               "--config.data.path=/data/train.jsonl", "--config.data.eval_path=/data/test.jsonl"])
  assert cfg.data.eval.path == "/data/test.jsonl"
  loop.check_required(cfg)
  with pytest.raises(ValueError, match="unknown argument"):
    helpers.get_config(name, "gpu")


@pytest.mark.parametrize("name", PAPER)
def test_cpu_variant_keeps_the_method_and_shrinks_the_rest(name):
  full, cpu = helpers.get_config(name, None), helpers.get_config(name, "cpu")
  for key in ("advantage", "loss", "agg_mode", "kl_coef", "kl_estimator", "kl_in_reward",
              "clip_low", "clip_high", "dual_clip", "loss_options"):
    assert cpu.algo[key] == full.algo[key], (name, key)
  assert cpu.batch.builders == full.batch.builders and cpu.episode == full.episode, name
  assert cpu.model.init == "preset" and cpu.tokenizer.kind == "char"
  assert cpu.data.train.source == "reasoning_gym" and cpu.data.eval is None
  assert cpu.rollout.prompts_per_step * cpu.rollout.num_samples <= 16
  assert cpu.total_steps == 2


@pytest.mark.parametrize("spec", ["entropy_mechanism:clip_cov", "entropy_mechanism:clip_cov_cpu",
                                  "ttrl:arith", "co_reward:arith", "trapo:arith", "intuitor:arith",
                                  "forking_tokens:arith"])
def test_extra_variants_build_locked(spec):
  name, arg = spec.split(":")
  cfg = helpers.get_config(name, arg)
  cfg.lock()
  cfg.to_json_best_effort()
  assert parse([f"--config=configs/{name}.py:{arg}"]).total_steps == cfg.total_steps
