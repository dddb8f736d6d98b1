r"""CISPO: REINFORCE with a clipped, stop-gradient importance-sampling weight per token, so tokens
outside the trust region keep their gradient; token-mean aggregation, no KL.

Paper: MiniMax, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention",
arXiv 2506.13585, sec. 3.1 (CISPO objective) and its zero-RL comparison with DAPO and GRPO;
docs/papers.md 2.1; loss in rlvr_jax.algorithms.losses.cispo.

Reproduction card
  paper:     the controlled comparison: CISPO vs DAPO vs GRPO, zero-RL from Qwen2.5-32B-Base on
             math questions, AIME 2024 (MiniMax-M1 itself, a 456B hybrid-attention MoE, is out of
             reach here).
  command:   python -m experiments.run --config configs/cispo.py --workdir /runs/cispo \
               --config.model.path=/models/Qwen2.5-32B \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl \
               --config.mesh.fsdp=8
             then: python -m experiments.eval --workdir /runs/cispo
             CPU smoke run: python -m experiments.run --config configs/cispo.py:cpu --workdir /tmp/cispo
  hardware:  paper: not re-checked offline. The :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 4, tensor: 8}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 4, eval.batch_size 128, model.remat True fit 32 x H200-141GB
             [this config: no H100-80GB count up to 128 fits its 22,528-token rows]
             (python -m experiments.memory --config configs/cispo.py).
  expected:  the paper's claim: CISPO matches DAPO's AIME 2024 accuracy in about half the training
             steps and beats GRPO. Not yet measured with rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

The paper tunes eps_IS_high without printing the value and removes the lower bound; everything
the paper takes from DAPO (dynamic sampling, length penalty, no KL, batch sizes) follows
configs/dapo.py. Tags: [paper] as printed; [recall] from the paper, not re-checked offline;
[dapo] the DAPO setting (configs/dapo.py); [not in paper] this config's choice.
"""
import ml_collections

from configs import common

L_MAX = 20480  # [dapo]
L_BUF = 4096  # [dapo]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 1000  # [not in paper]

  # --- policy and data ---------------------------------------------------------------------------
  common.hf_checkpoint(c)  # Qwen2.5-32B base for the comparison [paper]
  # Memory plan (python -m experiments.memory): Qwen2.5-32B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_32b", device="H200-141GB", count=32, memory_gib=141.0))
  common.local_files(c, answer_format="plain")  # DAPO-Math-17K style {question, answer} rows [dapo]
  c.data.max_prompt_len = 2048  # [dapo]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 512  # P [dapo]
  c.rollout.num_samples = 16  # G [dapo]
  c.rollout.max_new_tokens = L_MAX
  c.rollout.temperature = 1.0  # [dapo]
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward: +1 / -1 correctness plus the length penalty taken from DAPO [recall] --------------
  c.reward.terms = [
      dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=-1.0)),
      dict(name="overlong", weight=1.0, options=dict(buffer_len=L_BUF, penalty_factor=1.0)),
  ]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective (paper eq. 4) -------------------------------------------------------------------
  c.algo.advantage = "grpo"  # group-relative advantage [paper eq. 2]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(scale_by_std=True, std_ddof=1))
  c.algo.loss = "cispo"  # -sg(clip(rho, 1 - eps_lo, 1 + eps_hi)) * A * log pi [paper eq. 4]
  c.algo.clip_low = 1.0  # eps_IS_low: no lower bound in practice (weight floor 0) [paper]
  c.algo.clip_high = 0.28  # eps_IS_high: tuned, value not printed; DAPO's 0.28 [not in paper]
  c.algo.dual_clip = None  # meaningless for CISPO (the weight is already bounded)
  c.algo.agg_mode = "token-mean"  # 1 / sum_i |o_i| [paper eq. 4]
  c.algo.kl_coef = 0.0  # no KL penalty [recall]
  c.algo.kl_estimator = "k3"
  c.algo.kl_in_reward = False
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1
  c.algo.num_minibatches = 16  # [dapo]
  common.dynamic_sampling(c, metric="accuracy", max_gen_batches=10)  # [recall: taken from DAPO]

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [dapo]
  c.optim.warmup_steps = 20 * 16  # [dapo]
  c.optim.schedule = "constant"
  c.optim.weight_decay = 0.1  # [dapo]
  c.optim.grad_clip = 1.0  # [dapo]

  # --- evaluation: AIME 2024 ---------------------------------------------------------------------
  c.eval.size = 30
  c.eval.num_samples = 32  # avg@32 [dapo]
  c.eval.temperature = 1.0
  c.eval.top_p = 0.7  # [dapo]
  c.checkpoint.every = 20

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"  # (advantages are invariant to the map to +1 / -1)
    common.cpu_variant(c)
    # The same soft overlong shaping at CPU scale: the buffer keeps the ratio L_buf / L_max = 0.2.
    c.reward.terms = list(c.reward.terms) + [dict(
        name="overlong", weight=1.0,
        options=dict(buffer_len=max(1, c.rollout.max_new_tokens * L_BUF // L_MAX),
                     penalty_factor=1.0))]
    c.algo.num_minibatches = 2  # off-policy after the first mini-batch, where CISPO differs from PG
    c.optim.warmup_steps = 0
  elif arg:
    raise ValueError(f"configs/cispo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
