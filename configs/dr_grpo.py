r"""Dr. GRPO ("GRPO done right"): no std division in the advantage, no per-response length
normalisation in the loss (one constant instead), no KL.

Paper: Liu et al., "Understanding R1-Zero-Like Training: A Critical Perspective", arXiv 2503.20783,
sec. 3 (the two biases of GRPO) and the minimalist Oat-Zero recipe; docs/papers.md 2.1.

Reproduction card
  paper:     Oat-Zero-7B = Dr. GRPO on the base model Qwen2.5-Math-7B, MATH levels 3-5 questions,
             Qwen-Math prompt (system "Please reason step by step, and put your final answer within
             \boxed{}."), R1-Zero style (no SFT).
  command:   python -m experiments.run --config configs/dr_grpo.py --workdir /runs/dr_grpo \
               --config.model.path=/models/Qwen2.5-Math-7B \
               --config.data.path=/data/math_level3to5_train.jsonl \
               --config.data.eval_path=/data/aime24.jsonl
             (MATH rows {problem, solution-with-\boxed{}}; AIME rows {problem, answer}.)
             then: python -m experiments.eval --workdir /runs/dr_grpo
             CPU smoke run: python -m experiments.run --config configs/dr_grpo.py:cpu --workdir /tmp/drg
  hardware:  paper: 8 x A100 for 27 hours. Here untested at that size; the :cpu variant takes ~1
             minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 8, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 16, eval.batch_size 256, model.remat True fit 8 x A100-80GB
             [paper: 8 x A100; 80 GB assumed, this config]
             (python -m experiments.memory --config configs/dr_grpo.py).
  expected:  the paper's Oat-Zero-7B: 43.3% on AIME 2024 (greedy, max 3,000 tokens), and response
             lengths of incorrect answers that do not keep growing (unlike GRPO). Not yet measured
             with rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Deviations: the PPO clip range and the optimizer details other than the learning rate are the Oat
defaults as recalled, not re-checked. Tags: [paper] printed in the source; [recall]
docs/papers.md's recollection of the paper, not re-checked offline; [not in paper] this config's
choice.
"""
import ml_collections

from configs import common

QWEN_MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 400  # [not in paper: set from the compute budget]

  # --- policy and data ---------------------------------------------------------------------------
  common.hf_checkpoint(c)  # --config.model.path: Qwen2.5-Math-7B (base) [paper]
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_7b", device="A100-80GB", count=8, memory_gib=80.0))
  # The Qwen-Math prompt: this system turn in the checkpoint's chat template [paper].
  c.data.template_options = ml_collections.ConfigDict(dict(system=QWEN_MATH_SYSTEM))
  common.local_files(c, answer_format="math")  # MATH levels 3-5 [paper]
  c.data.max_prompt_len = 1024  # [not in paper]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 128  # P = 128 prompts per step [recall; docs/papers.md 2.1]
  c.rollout.num_samples = 8  # G = 8 samples per prompt [recall; docs/papers.md 2.1]
  c.rollout.max_new_tokens = 3000  # max 3,000 generated tokens [recall; docs/papers.md 2.1]
  c.rollout.temperature = 1.0  # [recall; docs/papers.md 2.1]
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward: final-answer check ----------------------------------------------------------------
  c.reward.terms = [dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=0.0))]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective ---------------------------------------------------------------------------------
  c.algo.advantage = "dr_grpo"  # A_i = r_i - mean_j r_j, no std division [paper sec. 3.2]
  c.algo.advantage_options = ml_collections.ConfigDict()
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2  # eps [recall: Oat default]
  c.algo.clip_high = 0.2
  c.algo.dual_clip = None
  c.algo.agg_mode = "seq-mean-token-sum-norm"  # sum_t / L_const instead of 1/|o_i| [paper sec. 3.2]
  c.algo.norm_constant = 3000.0  # L_const = the generation budget [paper sec. 3.2]
  c.algo.kl_coef = 0.0  # beta = 0 [recall; docs/papers.md 2.1]
  c.algo.kl_estimator = "k3"
  c.algo.kl_in_reward = False
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1  # mu = 1 [recall]
  c.algo.num_minibatches = 1

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [recall; docs/papers.md 2.1]
  c.optim.warmup_steps = 0  # [not in paper]
  c.optim.schedule = "constant"  # [not in paper]
  c.optim.weight_decay = 0.0  # [not in paper]
  c.optim.grad_clip = 1.0  # [not in paper]

  # --- evaluation: greedy accuracy, AIME 2024 ----------------------------------------------------
  c.eval.size = 30  # AIME 2024 has 30 problems
  c.eval.num_samples = 8  # pass@k / maj@k on top of the paper's greedy metric
  c.eval.temperature = 1.0
  c.checkpoint.every = 50

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.algo.norm_constant = float(c.rollout.max_new_tokens)  # L_const = the CPU generation budget
  elif arg:
    raise ValueError(f"configs/dr_grpo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
