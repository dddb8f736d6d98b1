r"""GRPO on a real checkpoint from a local path: Qwen2.5-0.5B-Instruct on GSM8K, math-verify reward.

The smallest real-model run of the GRPO family: the checkpoint's own tokenizer and chat template,
GSM8K train / test JSONL files in the original {question, answer "... #### 42"} layout, and the
GRPO objective of configs/grpo.py at a size one accelerator handles.

Reproduction card
  paper:     GRPO (DeepSeekMath, arXiv 2402.03300, sec. 4.1-4.2) objective and constants; the model
             and dataset are this config's choice (GSM8K: Cobbe et al., arXiv 2110.14168).
  command:   python -m experiments.run --config configs/grpo_qwen2p5_0p5b_gsm8k.py --workdir /runs/q05 \
               --config.model.path=/models/Qwen2.5-0.5B-Instruct \
               --config.data.path=/data/gsm8k/train.jsonl --config.data.eval_path=/data/gsm8k/test.jsonl
             then: python -m experiments.eval --workdir /runs/q05     (or --checkpoint /runs/q05/export)
             CPU smoke run: python -m experiments.run --config configs/grpo_qwen2p5_0p5b_gsm8k.py:cpu \
               --workdir /tmp/q05
  hardware:  one 80 GB GPU should hold the 0.5B policy, its reference copy and the rollouts
             (untested). The :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 256,
             algo.micro_batch_size 8, eval.batch_size 256, model.remat False fit 1 x H100-80GB [this
             config] (python -m experiments.memory --config configs/grpo_qwen2p5_0p5b_gsm8k.py).
  expected:  Qwen reports about 50% GSM8K for Qwen2.5-0.5B-Instruct [recall, not re-checked]; what
             GRPO adds on top is not yet measured with rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Tags: [grpo] the DeepSeekMath constant as in configs/grpo.py; [this config] sized for 0.5B on one
accelerator, not from a paper.
"""
import ml_collections

from configs import common

BOXED_SUFFIX = "\nPlease reason step by step, and put your final answer within \\boxed{}."


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 200  # ~ one pass over GSM8K's 7,473 training questions at P=32 [this config]

  # --- policy and data: --config.model.path and --config.data.path -------------------------------
  common.hf_checkpoint(c)  # weights, tokenizer and chat template of Qwen2.5-0.5B-Instruct
  # Memory plan (python -m experiments.memory): Qwen2.5-0.5B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_0p5b", device="H100-80GB", count=1, memory_gib=80.0))
  common.local_files(c, answer_format="gsm8k")  # final answer after '####'
  c.data.template_options = ml_collections.ConfigDict(dict(suffix=BOXED_SUFFIX))
  c.data.max_prompt_len = 512  # [this config]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 32  # P [this config]
  c.rollout.num_samples = 8  # G [this config; 64 in the paper]
  c.rollout.max_new_tokens = 512  # GSM8K solutions are short [this config]
  c.rollout.temperature = 1.0
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward ------------------------------------------------------------------------------------
  c.reward.terms = [dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=0.0))]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0
  c.reward.answer_extractor = "auto"  # \boxed{} or the last number, for maj@k

  # --- objective ---------------------------------------------------------------------------------
  c.algo.advantage = "grpo"  # [grpo]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(scale_by_std=True, std_ddof=1))
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2  # eps [grpo]
  c.algo.clip_high = 0.2
  c.algo.dual_clip = None
  c.algo.agg_mode = "seq-mean-token-mean"  # [grpo]
  c.algo.kl_coef = 0.04  # beta [grpo]
  c.algo.kl_estimator = "k3"  # [grpo]
  c.algo.kl_in_reward = False
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1  # mu [grpo]
  c.algo.num_minibatches = 1
  c.algo.micro_batch_size = 64  # rows per gradient-accumulation step (memory only)

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [grpo]
  c.optim.warmup_steps = 5  # [this config]
  c.optim.schedule = "constant"
  c.optim.weight_decay = 0.0
  c.optim.grad_clip = 1.0

  # --- evaluation: GSM8K test (1,319 problems) ---------------------------------------------------
  c.eval.size = 1319
  c.eval.num_samples = 8
  c.eval.temperature = 1.0
  c.eval.batch_size = 256
  c.checkpoint.every = 25

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.algo.micro_batch_size = 0
  elif arg:
    raise ValueError(f"configs/grpo_qwen2p5_0p5b_gsm8k.py: unknown argument {arg!r}; use no "
                     "argument or 'cpu'")
  return c
