r"""Quickstart: supervised warm start + GRPO on 2-digit addition/subtraction, offline on 2 CPU cores.

Reproduction card
  paper:     GRPO (DeepSeekMath, arXiv 2402.03300) on a procedurally generated task (reasoning-gym
             `chain_sum`), with a tiny character-level Qwen2-architecture model trained from scratch.
  command:   python -m experiments.run --config configs/quickstart.py --workdir /tmp/rlvr_quickstart
  hardware:  2 CPU cores (no accelerator), about 10 minutes end to end.
  expected:  held-out greedy accuracy after RL at least 10 points above before RL (500 problems).
  measured:  (filled in below once measured)
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  common.tiny_model(c, hidden=128, layers=4, heads=4, kv_heads=2, mlp=384)
  c.tokenizer.kind = "char"
  c.tokenizer.alphabet = common.ARITHMETIC_ALPHABET

  c.data.train = ml_collections.ConfigDict(dict(
      source="reasoning_gym", name="chain_sum", size=20000, seed=0,
      kwargs=dict(min_terms=2, max_terms=2, min_digits=2, max_digits=2)))
  c.data.template = "plain"
  c.data.template_options = ml_collections.ConfigDict(dict(
      format="{question}",
      strip_prefix=common.CHAIN_SUM_PREFIX))
  c.data.max_prompt_len = 32

  # Binary exact match of the whole completion (the model answers with the bare number). Not
  # reasoning-gym's chain_sum scorer: it gives partial credit (0.6-0.75) to any string containing
  # the answer ("-288" for -28), which the policy learns to exploit by not stopping.
  c.reward.terms = [dict(name="exact_match", weight=1.0, options=dict(extract="none"))]
  c.reward.correctness = "exact_match"
  c.reward.correctness_options = ml_collections.ConfigDict(dict(extract="none"))
  c.reward.answer_extractor = "none"

  c.sft.steps = 600
  c.sft.batch_size = 64
  c.sft.target = "{answer}"

  c.rollout.prompts_per_step = 32  # P
  c.rollout.num_samples = 8  # G
  c.rollout.temperature = 1.0
  c.rollout.max_new_tokens = 8

  c.algo.advantage = "grpo"
  c.algo.loss = "ppo_clip"
  c.algo.agg_mode = "seq-mean-token-mean"
  c.algo.epochs = 1

  c.optim.lr = 5e-5
  c.optim.warmup_steps = 5
  c.total_steps = 60

  c.eval.size = 500
  c.eval.num_samples = 8
  c.checkpoint.every = 20
  if arg == "cpu":
    common.cpu_variant(c)
  return c
