r"""Intuitor: GRPO with the policy's own self-certainty as the only reward (no labels, no verifier).

Paper: Zhao et al., "Learning to Reason without External Rewards", arXiv 2505.19590;
docs/papers.md 2.2 ("Self-certainty (Intuitor)"). Per response token,
sc_t = logsumexp(z_t) - mean_v z_{t,v} - log |V| (the KL from the uniform distribution to the
policy's next-token distribution, at the sampling temperature); the response reward is the mean of
sc_t over its tokens (reward `self_certainty`, rlvr_jax/rewards/self_rewards.py). The token
statistics are computed on device from the policy's hidden states by
rlvr_jax.algorithms.token_stats, without an [N, V] logits tensor leaving the device. Siblings:
rewards `neg_entropy` and `mean_logp` (--config.reward.terms).

Reproduction card
  paper:     Intuitor on Qwen2.5-1.5B / 3B with MATH (train), evaluated on MATH-500, GSM8K and
             code / instruction benchmarks [recall]; hyperparameters below [recall, not verified
             offline: docs/papers.md 2.2 marks them unverified].
  command:   python -m experiments.run --config configs/intuitor.py --workdir /runs/intuitor \
               --config.model.path=/models/Qwen2.5-1.5B \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/math500.jsonl
             CPU smoke run: python -m experiments.run --config configs/intuitor.py:cpu --workdir /tmp/it
  hardware:  paper: a GPU node [recall]. Here untested at that size; :cpu runs in ~1 minute on 2 CPU
             cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 224,
             algo.micro_batch_size 2, eval.batch_size 256, model.remat False fit 1 x H100-80GB [this
             config] (python -m experiments.memory --config configs/intuitor.py).
  expected:  small accuracy gains early in training while entropy falls; the tiny-scale claim
             (docs/papers.md 4.4 #7) adds possible reward hacking (short or repetitive confident
             outputs).
  measured:  see the README ledger ("Claims reproduced", intuitor_self_certainty; tiny regime
             configs/intuitor.py:arith).

Tags: [paper] printed in the paper as recalled for docs/papers.md; [recall] recalled, not
re-checked offline; [this config] chosen here.
"""
import ml_collections

from configs import claims_arith, common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # the tiny regime of configs/claims_arith.py, the gold reward replaced
    c = claims_arith.get_config(None)  # warm start 1000 SFT steps: pass@1 22.9% [claims_arith]
    c.reward.terms = [dict(name="self_certainty", weight=1.0)]  # the only reward [paper]
    c.batch.builders = ()
    c.checkpoint.every = 0
    c.eval.num_samples = 16  # [this config]
    return c

  c = common.base()
  c.seed = 0
  c.total_steps = 200  # [this config]
  common.hf_checkpoint(c)  # --config.model.path: Qwen2.5-1.5B [paper]
  # Memory plan (python -m experiments.memory): Qwen2.5-1.5B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_1p5b", device="H100-80GB", count=1, memory_gib=80.0))
  common.local_files(c, answer_format="plain")  # MATH: answers for evaluation only
  c.data.max_prompt_len = 512  # [this config]
  c.rollout.prompts_per_step = 128  # [recall]
  c.rollout.num_samples = 7  # G [recall]
  c.rollout.max_new_tokens = 1024  # [recall]
  c.rollout.temperature = 0.9  # [recall]
  c.rollout.top_p = 1.0
  c.reward.terms = [dict(name="self_certainty", weight=1.0)]  # the only reward [paper]
  c.reward.correctness = "math_verify"  # logged and evaluated, never rewarded
  c.reward.threshold = 1.0
  c.algo.advantage = "grpo"  # [paper]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.agg_mode = "seq-mean-token-mean"  # GRPO's [recall]
  c.algo.kl_coef = 0.005  # [recall]
  c.algo.kl_estimator = "k3"
  c.algo.epochs = 1
  c.optim.name = "adamw"
  c.optim.lr = 3e-6  # [recall]
  c.optim.schedule = "cosine"  # [recall]
  c.optim.warmup_steps = 10  # [this config]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # MATH-500 [paper]
  c.eval.num_samples = 4  # [this config]
  c.eval.temperature = 1.0  # sampled pass@k; greedy accuracy is reported as well [this config]
  c.checkpoint.every = 25
  if arg == "cpu":
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.reward.terms = [dict(name="self_certainty", weight=1.0)]  # cpu_variant keeps it; be explicit
    c.optim.warmup_steps = 0
  elif arg:
    raise ValueError(f"configs/intuitor.py: unknown argument {arg!r}; use no argument, 'cpu' or "
                     "'arith'")
  return c
