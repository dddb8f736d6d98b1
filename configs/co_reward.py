r"""Co-Reward (Co-rewarding-I): label-free RL by cross-view voting between a question and a rephrasing.

Paper: "Co-Reward: Self-supervised Reinforcement Learning for Large Language Model Reasoning via
Contrastive Agreement", arXiv 2508.00410; code resistzzz/Co-Reward (co_reward.py,
ray_trainer.py::compute_advantage_contrastive); docs/papers.md 2.2.

Each question x has an answer-preserving rewrite x'. G rollouts are drawn for each; the pseudo-label
of x is the majority answer of the rollouts of x' and vice versa, r = 1[answer = pseudo-label];
GRPO advantages inside each view; both views enter the update (episode `cross_view`,
rlvr_jax/episodes/cross_view.py). No verifier and no gold answer feed the reward.

Reproduction card
  paper:     Co-rewarding-I on Qwen3 / Llama base models with MATH (train), questions rewritten
             offline by Qwen3-32B (rewrite_questions.py); evaluated on MATH-500, GSM8K, AMC
             [recall]. Settings of math_co_reward.sh [code, as read for docs/papers.md 2.2]: 128
             prompts x 8 rollouts per view, lr 3e-6 cosine with 10% warm-up, max response 3,072,
             KL loss 0.005 (k3), entropy coef 0, 3 epochs over the data.
  command:   python -m experiments.run --config configs/co_reward.py --workdir /runs/co_reward \
               --config.model.path=/models/Qwen3-1.7B-Base \
               --config.data.path=/data/math_train_rewritten.jsonl --config.data.eval_path=/data/math500.jsonl
             (each training row needs the rewritten question in the column `question_rewrite`;
             a row without it stops the run with the example named)
             CPU smoke run: python -m experiments.run --config configs/co_reward.py:cpu --workdir /tmp/cr
             tiny regime (claim runs): configs/co_reward.py:arith, see `python -m experiments.claims
               --claim co_reward_cross_view --seeds 3`
  hardware:  paper: 4 GPUs [code]. Here untested at that size; :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 2, tensor: 2}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 2, eval.batch_size 128, model.remat False fit 4 x H100-80GB
             [code: 4 GPUs; H100-80GB assumed, this config]
             (python -m experiments.memory --config configs/co_reward.py).
  expected:  docs/papers.md 4.4 #5 (tiny scale): pseudo-label and ground-truth accuracy stay
             higher, and collapse later, than single-view TTRL on the same task.
  measured:  tiny regime (:arith, 3 seeds; README ledger "Claims reproduced", co_reward_cross_view):
             held-out pass@1 fell less than single-view TTRL's in every seed (22.8 -> 21.3 vs
             17.0, 9.2 -> 8.0 vs 4.8, 37.5 -> 35.4 vs 8.6%); the declared metric (training accuracy
             over both views) was inconclusive. No gain over the warm start without labels.

The :cpu variant makes the second view procedurally (rephraser `commute`: a + b -> b + a,
a - b -> -b + a). Tags: [paper], [code] as read for docs/papers.md; [recall] not re-checked
offline; [this config] chosen here.
"""
import ml_collections

from configs import claims_arith, common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # the tiny regime of configs/claims_arith.py, labels replaced by the vote
    c = claims_arith.get_config(None)  # warm start 1000 SFT steps: pass@1 22.9% [claims_arith]
    c.episode.name = "cross_view"
    c.episode.options = ml_collections.ConfigDict(dict(rephraser="commute", extract="none"))
    c.reward.terms = []  # the episode rewards by cross-view vote
    c.reward.label_free_threshold = 0.5
    c.rollout.prompts_per_step = 32  # [this config]
    c.rollout.num_samples = 8  # per view: 16 rollouts per question, as the TTRL arm's 16 votes
    c.total_steps = 60  # [this config]
    c.eval.num_samples = 16  # [this config]
    c.checkpoint.every = 0
    return c

  c = common.base()
  c.seed = 0
  c.total_steps = 300  # ~3 epochs of MATH's 7,500 questions at 128 prompts per step [code: 3 epochs]
  common.hf_checkpoint(c)  # --config.model.path: a base model [paper]
  # Memory plan (python -m experiments.memory): Qwen3-1.7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen3_1p7b", device="H100-80GB", count=4, memory_gib=80.0))
  common.local_files(c, answer_format="plain")  # answers used only for diagnostics and evaluation
  c.data.max_prompt_len = 1024  # [this config]
  c.episode.name = "cross_view"
  c.episode.options = ml_collections.ConfigDict(dict(
      rephraser="field", rephraser_options=dict(field="question_rewrite"), extract="auto"))
  c.rollout.prompts_per_step = 128  # [code]
  c.rollout.num_samples = 8  # per view [code]
  c.rollout.max_new_tokens = 3072  # [code]
  c.rollout.temperature = 1.0  # [recall]
  c.reward.terms = []  # the episode rewards by cross-view vote; no reward term
  c.reward.correctness = "math_verify"  # diagnostics and evaluation only
  c.reward.threshold = 1.0
  c.algo.advantage = "grpo"  # inside each view [code]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.agg_mode = "token-mean"  # [recall: verl default]
  c.algo.kl_coef = 0.005  # KL loss, k3 [code]
  c.algo.kl_estimator = "k3"
  c.algo.entropy_coef = 0.0  # [code]
  c.algo.epochs = 1
  c.optim.name = "adamw"
  c.optim.lr = 3e-6  # [code]
  c.optim.schedule = "cosine"  # [code]
  c.optim.warmup_steps = 30  # 10% of the steps [code]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # MATH-500 [recall]
  c.eval.num_samples = 4  # [this config]
  c.checkpoint.every = 25
  if arg == "cpu":
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.reward.terms = []
    c.episode.options = ml_collections.ConfigDict(dict(rephraser="commute", extract="none"))
    c.optim.warmup_steps = 0
  elif arg:
    raise ValueError(f"configs/co_reward.py: unknown argument {arg!r}; use no argument, 'cpu' "
                     "or 'arith'")
  return c
