r"""GRPO: group-relative advantages, per-sequence token-mean clipped loss, k3 KL to the reference.

Paper: Shao et al., "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open Language
Models", arXiv 2402.03300, sec. 4.1 (method) and 4.2 (DeepSeekMath-RL); docs/papers.md 2.1.

Reproduction card
  paper:     DeepSeekMath-RL 7B = GRPO on DeepSeekMath-Instruct 7B with the chain-of-thought GSM8K and
             MATH training questions (~144K), outcome supervision, one policy update per rollout.
  command:   python -m experiments.run --config configs/grpo.py --workdir /runs/grpo \
               --config.model.path=/models/deepseek-math-7b-instruct \
               --config.data.path=/data/gsm8k_math_train.jsonl \
               --config.data.eval_path=/data/math_test.jsonl
             (GSM8K rows {question, answer "... #### 42"} and MATH rows {problem, solution} may be
             mixed in one file; answer_format="auto" reads both.)
             then: python -m experiments.eval --workdir /runs/grpo
             CPU smoke run: python -m experiments.run --config configs/grpo.py:cpu --workdir /tmp/grpo
  hardware:  paper: not stated. Here: a 7B policy plus a 7B reference copy needs about 8 x 80 GB
             accelerators with --config.mesh.fsdp=8 (untested). The :cpu variant takes ~1 minute on
             2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 2, tensor: 4}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 4, eval.batch_size 64, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/grpo.py).
  expected:  the paper's numbers for DeepSeekMath-RL 7B, greedy chain-of-thought: GSM8K 88.2%,
             MATH 51.7% (DeepSeekMath-Instruct 7B before RL: 82.9% / 46.8%). Not yet measured with
             rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Deviations from the paper (deliberate):
  * reward: the paper used a learned reward model; here math-verify checks the final answer
    (reward 1 / 0), the setting of the later R1-style GRPO recipes.
  * the paper's "training batch size 1024" is read as 1024 responses = 16 prompts x G=64.
  * DeepSeekMath-Instruct 7B is a Llama-architecture checkpoint whose loading is untested here; any
    supported Qwen2 / Qwen2.5 / Qwen3 / Llama 3 instruct checkpoint stands in.
Tags: [paper] printed in the source; [recall] from memory of the paper, not re-checked offline;
[not in paper] a choice of this config where the paper is silent.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 9000  # one pass over ~144K questions at P=16 [not in paper: no step count given]

  # --- policy and data ---------------------------------------------------------------------------
  common.hf_checkpoint(c)  # --config.model.path: DeepSeekMath-Instruct 7B in the paper
  # Memory plan (python -m experiments.memory): DeepSeekMath 7B shapes on the card's hardware.
  c.hardware.update(dict(model="deepseek_math_7b", device="H100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="auto")  # GSM8K + MATH CoT questions [paper sec. 4.2]
  c.data.max_prompt_len = 1024  # [not in paper]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 16  # P: batch 1024 responses / G [paper sec. 4.2, see deviations]
  c.rollout.num_samples = 64  # G = 64 outputs per question [paper sec. 4.2]
  c.rollout.max_new_tokens = 1024  # max length 1024 [paper sec. 4.2]
  c.rollout.temperature = 1.0  # [not in paper]
  c.rollout.top_p = 1.0  # [not in paper]
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward: final-answer check (the paper used a reward model, see deviations) ----------------
  c.reward.terms = [dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=0.0))]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective (paper eq. 3) -------------------------------------------------------------------
  c.algo.advantage = "grpo"  # A_i = (r_i - mean r) / std r, outcome supervision [paper sec. 4.1.2]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(scale_by_std=True, std_ddof=1))
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2  # eps [recall; docs/papers.md 2.1]
  c.algo.clip_high = 0.2  # eps (symmetric in GRPO)
  c.algo.dual_clip = None  # no dual clip in the paper
  c.algo.agg_mode = "seq-mean-token-mean"  # 1/G sum_i 1/|o_i| sum_t [paper eq. 3]
  c.algo.kl_coef = 0.04  # beta = 0.04 [paper sec. 4.2]
  c.algo.kl_estimator = "k3"  # unbiased estimator pi_ref/pi - log(pi_ref/pi) - 1 [paper eq. 4]
  c.algo.kl_in_reward = False  # KL added to the loss, not the reward [paper sec. 4.1.1]
  c.algo.entropy_coef = 0.0  # [not in paper]
  c.algo.epochs = 1  # mu = 1: "a single update following each exploration stage" [paper sec. 4.2]
  c.algo.num_minibatches = 1

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"  # [not in paper]
  c.optim.lr = 1e-6  # policy learning rate 1e-6 [paper sec. 4.2]
  c.optim.warmup_steps = 0  # [not in paper]
  c.optim.schedule = "constant"  # [not in paper]
  c.optim.weight_decay = 0.0  # [not in paper]
  c.optim.grad_clip = 1.0  # [not in paper]

  # --- evaluation: greedy chain-of-thought accuracy on the test set ------------------------------
  c.eval.size = 5000  # MATH test set (use 1319 with the GSM8K test file)
  c.eval.num_samples = 0  # the paper reports greedy (top-1) accuracy only
  c.eval.temperature = 1.0
  c.checkpoint.every = 100

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
  elif arg:
    raise ValueError(f"configs/grpo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
