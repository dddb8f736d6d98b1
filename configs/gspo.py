r"""GSPO: one length-normalised importance ratio per sequence, clipped at the sequence level with a
very narrow range (3e-4 / 4e-4), group-normalised advantages, no KL.

Paper: Zheng et al., "Group Sequence Policy Optimization", arXiv 2507.18071, sec. 4 (objective,
eq. 5-7) and sec. 5 (experiments); loss in rlvr_jax.algorithms.losses.gspo.

Reproduction card
  paper:     GSPO vs GRPO from a cold-start fine-tune of Qwen3-30B-A3B-Base (an MoE model) on math
             and code RL data that is not public.
  command:   python -m experiments.run --config configs/gspo.py --workdir /runs/gspo \
               --config.model.path=/models/Qwen3-8B-Base \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl
             (rlvr_jax has no MoE layers yet: a dense Qwen3 checkpoint stands in for
             Qwen3-30B-A3B, and any {question, answer} math set for the private data.)
             then: python -m experiments.eval --workdir /runs/gspo
             CPU smoke run: python -m experiments.run --config configs/gspo.py:cpu --workdir /tmp/gspo
  hardware:  paper: not stated. The :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 8}, rollout.max_rows_per_call 32,
             algo.micro_batch_size 1, eval.batch_size 32, model.remat True fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/gspo.py).
  expected:  the paper shows training curves, not tables: GSPO's AIME'24 (avg@32), LiveCodeBench
             and CodeForces scores rise faster and more stably than GRPO's at equal compute, while
             clipping about two orders of magnitude more tokens. Not yet measured with rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Tags: [paper] as printed in the paper; [not in paper] this config's choice where the paper is
silent (G, P, learning rate and lengths are not given there).
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 500  # [not in paper]

  # --- policy and data ---------------------------------------------------------------------------
  common.hf_checkpoint(c)  # Qwen3-30B-A3B-Base cold-start model in the paper; see the card
  # Memory plan (python -m experiments.memory): the Qwen3-8B stand-in on the card's hardware.
  c.hardware.update(dict(model="qwen3_8b", device="H100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.max_prompt_len = 1024  # [not in paper]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 128  # P [not in paper]
  c.rollout.num_samples = 16  # G [not in paper]
  c.rollout.max_new_tokens = 16384  # [not in paper]
  c.rollout.temperature = 1.0  # [not in paper]
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward ------------------------------------------------------------------------------------
  c.reward.terms = [dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=0.0))]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective (paper eq. 5) -------------------------------------------------------------------
  c.algo.advantage = "grpo"  # A_i = (r_i - mean r) / std r [paper eq. 6]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(scale_by_std=True, std_ddof=1))
  c.algo.loss = "gspo"  # s_i = (pi(y_i) / pi_old(y_i)) ** (1 / |y_i|) [paper eq. 7]
  c.algo.clip_low = 3e-4  # left clip range [paper sec. 5.1]
  c.algo.clip_high = 4e-4  # right clip range [paper sec. 5.1]
  c.algo.dual_clip = None
  c.algo.agg_mode = "seq-mean-token-mean"  # 1/G sum_i over sequences: exact sequence-level GSPO
  c.algo.kl_coef = 0.0  # the objective has no KL term [paper eq. 5]
  c.algo.kl_estimator = "k3"
  c.algo.kl_in_reward = False
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1
  c.algo.num_minibatches = 4  # each rollout batch split into 4 mini-batches [paper sec. 5.1]

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [not in paper]
  c.optim.warmup_steps = 0
  c.optim.schedule = "constant"
  c.optim.weight_decay = 0.0
  c.optim.grad_clip = 1.0

  # --- evaluation: AIME 2024 avg@32 ---------------------------------------------------------------
  c.eval.size = 30
  c.eval.num_samples = 32  # avg@32 [paper sec. 5.1]
  c.eval.temperature = 1.0
  c.checkpoint.every = 50

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
  elif arg:
    raise ValueError(f"configs/gspo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
