r"""REINFORCE++: critic-free PPO-style updates whose advantage is the reward normalised over the
whole batch (no per-prompt group baseline), with a KL penalty in the reward.

Paper: Hu et al., "REINFORCE++: An Efficient RLHF Algorithm with Robustness to Both Prompt and
Reward Models", arXiv 2501.03262 (eq. 6-8); implementation: OpenRLHF
examples/scripts/train_reinforce_llama_ray.sh (the paper's reference code).

Reproduction card
  paper:     RLHF of Llama-3-8B-SFT against a learned reward model on OpenRLHF's prompt collection,
             and long chain-of-thought math with rule-based rewards. The reward models are not
             available here, so this config runs the paper's estimator on GSM8K with a math-verify
             reward.
  command:   python -m experiments.run --config configs/reinforce_pp.py --workdir /runs/rpp \
               --config.model.path=/models/Qwen2.5-1.5B-Instruct \
               --config.data.path=/data/gsm8k/train.jsonl --config.data.eval_path=/data/gsm8k/test.jsonl
             The group-baseline variant of the paper's v3: --config.algo.advantage=reinforce_pp_baseline
             --config.rollout.num_samples=8.
             then: python -m experiments.eval --workdir /runs/rpp
             CPU smoke run: python -m experiments.run --config configs/reinforce_pp.py:cpu --workdir /tmp/rpp
  hardware:  paper: not re-checked offline. The :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 1, eval.batch_size 128, model.remat False fit 1 x H100-80GB [this
             config] (python -m experiments.memory --config configs/reinforce_pp.py).
  expected:  the paper reports reward / win-rate curves (more stable than GRPO, cheaper than PPO)
             that do not transfer to this stand-in; no number is claimed until measured here.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

The advantage is the paper's token-level form (``reinforce_pp_token``): the score on the last
token, -beta * KL_t on every token, returns-to-go (gamma = 1), whitened over all valid tokens of the
batch. (An earlier version of this card claimed that whitening sequence rewards minus the summed KL
is identical to this; it is not: the return at token t only pays the KL of tokens s >= t, and token
whitening weights long responses more. The sequence form remains available as
--config.algo.advantage=reinforce_pp.)
Tags: [openrlhf] the reference script; [paper] as printed; [not in paper] this config's choice.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 100  # one pass over 100K prompts at P=1024 [openrlhf max_samples / rollout batch]

  # --- policy and data (verifiable-reward stand-in, see the card) --------------------------------
  common.hf_checkpoint(c)
  # Memory plan (python -m experiments.memory): Qwen2.5-1.5B-Instruct shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_1p5b", device="H100-80GB", count=1, memory_gib=80.0))
  common.local_files(c, answer_format="gsm8k")
  c.data.template_options = ml_collections.ConfigDict(dict(
      suffix="\nPlease reason step by step, and put your final answer within \\boxed{}."))
  c.data.max_prompt_len = 1024  # [openrlhf prompt_max_len]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 1024  # P [openrlhf rollout_batch_size]
  c.rollout.num_samples = 1  # G = 1: no group needed, the baseline is the batch [openrlhf]
  c.rollout.max_new_tokens = 1024  # [openrlhf generate_max_len]
  c.rollout.temperature = 1.0  # [openrlhf default]
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward ------------------------------------------------------------------------------------
  c.reward.terms = [dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=0.0))]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective ---------------------------------------------------------------------------------
  # r_t = 1[t = last] score - beta KL_t, A_t = whiten(sum_{s >= t} r_s) over the batch [paper eq. 6-8]
  c.algo.advantage = "reinforce_pp_token"
  c.algo.advantage_options = ml_collections.ConfigDict()
  c.algo.loss = "ppo_clip"  # PPO's clipped surrogate without a critic [paper sec. 3]
  c.algo.clip_low = 0.2  # eps [openrlhf eps_clip default]
  c.algo.clip_high = 0.2
  c.algo.dual_clip = None
  c.algo.agg_mode = "token-mean"  # [openrlhf default]
  c.algo.kl_coef = 0.01  # beta [openrlhf init_kl_coef]
  c.algo.kl_estimator = "k1"  # per-token log(pi / pi_ref) [paper eq. 6]
  c.algo.kl_in_reward = True  # r - beta * KL [paper eq. 6]
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1  # [openrlhf max_epochs]
  c.algo.num_minibatches = 8  # 1024 samples / train batch 128 [openrlhf train_batch_size]

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"
  c.optim.lr = 5e-7  # [openrlhf actor_learning_rate]
  c.optim.warmup_steps = 0  # [not in paper]
  c.optim.schedule = "constant"  # [not in paper]
  c.optim.weight_decay = 0.0  # [not in paper]
  c.optim.grad_clip = 1.0  # [openrlhf max_norm default]

  # --- evaluation: GSM8K test ---------------------------------------------------------------------
  c.eval.size = 1319
  c.eval.num_samples = 4
  c.eval.temperature = 1.0
  c.checkpoint.every = 10

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.algo.num_minibatches = 2  # still off-policy after the first mini-batch
  elif arg:
    raise ValueError(f"configs/reinforce_pp.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
