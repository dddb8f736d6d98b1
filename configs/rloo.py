r"""RLOO: REINFORCE with the leave-one-out baseline of the other k-1 samples of the same prompt,
whole-sequence log-probabilities, KL penalty folded into the reward, one update per rollout.

Paper: Ahmadian et al., "Back to Basics: Revisiting REINFORCE Style Optimization for Learning from
Human Feedback in LLMs", arXiv 2402.14740, sec. 3 (RLOO estimator, eq. 5); docs/papers.md 2.1.

Reproduction card
  paper:     RLHF of SFT models (Pythia 6.9B, Llama 7B) against a learned reward model on TL;DR
             summarisation and Anthropic-HH. Neither the reward models nor GPT-NeoX (Pythia) are
             available here, so this config applies the paper's estimator and update rule to a
             verifiable-reward stand-in: GSM8K with a math-verify reward.
  command:   python -m experiments.run --config configs/rloo.py --workdir /runs/rloo \
               --config.model.path=/models/Qwen2.5-1.5B-Instruct \
               --config.data.path=/data/gsm8k/train.jsonl --config.data.eval_path=/data/gsm8k/test.jsonl
             then: python -m experiments.eval --workdir /runs/rloo
             CPU smoke run: python -m experiments.run --config configs/rloo.py:cpu --workdir /tmp/rloo
  hardware:  paper: not re-checked offline. A 1.5B policy plus its reference copy fits one 80 GB
             GPU (untested); the :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 1, eval.batch_size 128, model.remat False fit 1 x H100-80GB [this
             config] (python -m experiments.memory --config configs/rloo.py).
  expected:  the paper reports reward-model win rates on TL;DR / HH (RLOO k=4 above PPO, DPO and
             RAFT), which do not transfer to this stand-in; on GSM8K no number is claimed until
             measured with rlvr_jax.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Tags: [paper] the estimator as printed; [openrlhf] OpenRLHF examples/scripts/train_rloo_llama.sh,
used where the paper's optimiser numbers were not re-checked offline; [not in paper] this config's
choice.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 500  # [not in paper: set from the compute budget]

  # --- policy and data (verifiable-reward stand-in, see the card) --------------------------------
  common.hf_checkpoint(c)
  # Memory plan (python -m experiments.memory): Qwen2.5-1.5B-Instruct shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_1p5b", device="H100-80GB", count=1, memory_gib=80.0))
  common.local_files(c, answer_format="gsm8k")
  c.data.template_options = ml_collections.ConfigDict(dict(
      suffix="\nPlease reason step by step, and put your final answer within \\boxed{}."))
  c.data.max_prompt_len = 1024  # [openrlhf prompt_max_len]

  # --- rollout -----------------------------------------------------------------------------------
  c.rollout.prompts_per_step = 32  # P [openrlhf rollout_batch_size]
  c.rollout.num_samples = 4  # k = 4 samples per prompt, the paper's RLOO k=4 [paper]
  c.rollout.max_new_tokens = 1024  # [openrlhf generate_max_len]
  c.rollout.temperature = 1.0  # sample from the policy itself (REINFORCE is on-policy)
  c.rollout.top_p = 1.0
  c.rollout.top_k = 0
  c.rollout.min_p = 0.0

  # --- reward ------------------------------------------------------------------------------------
  c.reward.terms = [dict(name="math_verify", weight=1.0, options=dict(correct=1.0, incorrect=0.0))]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0

  # --- objective ---------------------------------------------------------------------------------
  c.algo.advantage = "rloo"  # A_i = r_i - 1/(k-1) sum_{j != i} r_j [paper eq. 5]
  c.algo.advantage_options = ml_collections.ConfigDict()
  # One update on fresh samples: the ratio is exactly 1 and PPO's clip is inactive, so this is the
  # plain REINFORCE gradient the paper argues for (sec. 3); clip values only matter if mu > 1.
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.dual_clip = None
  c.algo.agg_mode = "seq-mean-token-sum"  # log pi(y|x) of whole sequences, mean over them [paper]
  c.algo.kl_coef = 0.01  # beta [openrlhf init_kl_coef]
  c.algo.kl_estimator = "k1"  # log pi - log pi_ref summed over the sequence [paper sec. 2]
  c.algo.kl_in_reward = True  # r(x, y) - beta * KL, as in RLHF [paper sec. 2]
  c.algo.entropy_coef = 0.0
  c.algo.epochs = 1  # one REINFORCE step per batch [paper]
  c.algo.num_minibatches = 1

  # --- optimizer ---------------------------------------------------------------------------------
  c.optim.name = "adamw"
  c.optim.lr = 5e-7  # [openrlhf actor_learning_rate]
  c.optim.warmup_steps = 0  # [not in paper]
  c.optim.schedule = "constant"  # [not in paper]
  c.optim.weight_decay = 0.0  # [not in paper]
  c.optim.grad_clip = 1.0  # [not in paper]

  # --- evaluation: GSM8K test ---------------------------------------------------------------------
  c.eval.size = 1319
  c.eval.num_samples = 4
  c.eval.temperature = 1.0
  c.checkpoint.every = 50

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's verifier (cpu_variant: exact match)
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
  elif arg:
    raise ValueError(f"configs/rloo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
