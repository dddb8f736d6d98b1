r"""DAPO: clip-higher (eps_lo 0.2 / eps_hi 0.28), token-mean loss, no KL, dynamic sampling and soft
overlong reward shaping on top of GRPO advantages.

Paper: Yu et al., "DAPO: An Open-Source LLM Reinforcement Learning System at Scale", arXiv
2503.14476, sec. 3.1-3.4; recipe: verl-recipe dapo/run_dapo_qwen2.5_32b.sh; docs/papers.md 2.1.

Reproduction card
  paper:     DAPO on the base model Qwen2.5-32B with DAPO-Math-17K, evaluated on AIME 2024.
  command:   python -m experiments.run --config configs/dapo.py --workdir /runs/dapo \
               --config.model.path=/models/Qwen2.5-32B \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl \
               --config.mesh.fsdp=8
             (DAPO-Math-17k ships as parquet with the question in prompt[0].content and the answer in
             reward_model.ground_truth: flatten it to {question, answer} rows first; the answer
             instruction is part of each question.)
             then: python -m experiments.eval --workdir /runs/dapo
             CPU smoke run: python -m experiments.run --config configs/dapo.py:cpu --workdir /tmp/dapo
  hardware:  paper: a GPU cluster (size not re-checked offline). Here untested at that size; the
             :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 4, tensor: 8}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 4, eval.batch_size 128, model.remat True fit 32 x H200-141GB
             [this config: no H100-80GB count up to 128 fits its 22,528-token rows]
             (python -m experiments.memory --config configs/dapo.py).
  expected:  the paper's AIME 2024 avg@32 of 50% (52% in the verl reproduction), with entropy that
             does not collapse thanks to clip-higher. Not yet measured with rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Deviations: dynamic sampling draws generation batches of P prompts (the recipe draws 3 x P at once)
until P groups with reward spread are kept, at most 10 batches; short of that, zero-variance groups
fill the batch with zero weight. Tags: [paper] printed in the paper; [recipe] the verl-recipe
script as read for docs/papers.md 2.1; [not in paper] this config's choice.
"""
import ml_collections

from configs import common

L_MAX = 20480  # maximum response length L_max [paper sec. 3.4]
L_BUF = 4096  # overlong buffer L_cache [paper sec. 3.4]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 1000  # [not in paper: set from the compute budget]

  # --- policy and data ---------------------------------------------------------------------------
  common.hf_checkpoint(c)  # --config.model.path: Qwen2.5-32B base [paper]
  # Memory plan (python -m experiments.memory): Qwen2.5-32B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_32b", device="H200-141GB", count=32, memory_gib=141.0))
  common.local_files(c, answer_format="plain")  # DAPO-Math-17K, integer answers [paper]
  c.data.max_prompt_len = 2048  # [recipe]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 512  # P = 512 prompts per step [paper sec. 4.1]
  c.rollout.num_samples = 16  # G = 16 responses per prompt [paper sec. 4.1]
  c.rollout.max_new_tokens = L_MAX
  c.rollout.temperature = 1.0  # [recipe]
  c.rollout.top_p = 1.0  # [recipe]
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward: +1 / -1 correctness plus the soft overlong penalty --------------------------------
  c.reward.terms = [
      dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=-1.0)),  # [recipe]
      # r += min(-(L - (L_max - L_buf)) / L_buf * f, 0), f = 1 [paper eq. 13]
      dict(name="overlong", weight=1.0, options=dict(buffer_len=L_BUF, penalty_factor=1.0)),
  ]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective (paper eq. 8) -------------------------------------------------------------------
  c.algo.advantage = "grpo"  # group mean / std [paper eq. 9]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(scale_by_std=True, std_ddof=1))
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2  # eps_low [paper sec. 3.1]
  c.algo.clip_high = 0.28  # eps_high, clip-higher [paper sec. 3.1]
  c.algo.dual_clip = 10.0  # c = 10 for A < 0 [recipe clip_ratio_c]
  c.algo.agg_mode = "token-mean"  # 1 / sum_i |o_i| over the batch [paper sec. 3.3]
  c.algo.kl_coef = 0.0  # no KL term, no reference model [paper sec. 2.3]
  c.algo.kl_estimator = "k3"
  c.algo.kl_in_reward = False
  c.algo.entropy_coef = 0.0  # [recipe]
  c.algo.epochs = 1  # [recipe]
  c.algo.num_minibatches = 16  # mini-batch of 32 prompts: 16 updates per rollout [paper sec. 4.1]
  # Dynamic sampling: drop groups whose accuracy is all 0 or all 1 and refill [paper sec. 3.2],
  # at most 10 generation batches per step [recipe max_num_gen_batches].
  common.dynamic_sampling(c, metric="accuracy", max_gen_batches=10)

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"  # [paper sec. 4.1]
  c.optim.lr = 1e-6  # [paper sec. 4.1]
  # Linear warm-up over 20 rollout steps = 320 optimizer steps [recall of paper sec. 4.1; the verl
  # recipe sets lr_warmup_steps=10 optimizer steps instead].
  c.optim.warmup_steps = 20 * 16
  c.optim.schedule = "constant"  # [recipe]
  c.optim.weight_decay = 0.1  # [recipe]
  c.optim.grad_clip = 1.0  # [recipe]

  # --- evaluation: AIME 2024, avg@32 at temperature 1.0, top-p 0.7 -------------------------------
  c.eval.size = 30
  c.eval.num_samples = 32  # avg@32 = mean_accuracy of evaluate() [paper sec. 4.1]
  c.eval.temperature = 1.0  # [paper sec. 4.1]
  c.eval.top_p = 0.7  # [paper sec. 4.1]
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
    c.algo.num_minibatches = 2  # still off-policy after the first mini-batch, as in the paper
    c.optim.warmup_steps = 0
  elif arg:
    raise ValueError(f"configs/dapo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
