r"""TTRL: test-time reinforcement learning with a majority-vote reward and no labels.

Paper: Zuo et al., "TTRL: Test-Time Reinforcement Learning", arXiv 2504.16084, sec. 3; code
PRIME-RL/TTRL (verl/verl/trainer/ppo/ttrl_utils.py); docs/papers.md 2.2 ("TTRL majority vote").

For every prompt, N samples vote: the most common parsed answer is the pseudo-label, each sample's
reward is 1 if its answer equals it, and training uses n of the N samples (GRPO advantages inside
the group). The gold answer is never read by the reward (except by the logged diagnostics
majority_vote/label_accuracy and reward_accuracy, the collapse detectors the paper plots).

Reproduction card
  paper:     TTRL on Qwen2.5-Math-7B, trained and evaluated on the test questions of AIME 2024
             (30), AMC (83) and MATH-500 [recall]; reported AIME 2024 pass@1 rising from ~17% to
             ~44% [recall, not re-checked offline].
  command:   python -m experiments.run --config configs/ttrl.py --workdir /runs/ttrl \
               --config.model.path=/models/Qwen2.5-Math-7B \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/aime24.jsonl
             CPU smoke run: python -m experiments.run --config configs/ttrl.py:cpu --workdir /tmp/ttrl
             tiny regime (claim runs): configs/ttrl.py:arith, see `python -m experiments.claims
               --claim ttrl_majority_vote --seeds 3`
  hardware:  paper: 8 x A100 80GB [recall]. Here untested at that size; :cpu runs in ~1 minute on
             2 CPU cores, :arith ~3-6 minutes per run.
             Memory plan: mesh {data: 1, fsdp: 8, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 16, eval.batch_size 256, model.remat True fit 8 x A100-80GB
             [recall] (python -m experiments.memory --config configs/ttrl.py).
  expected:  accuracy rises without labels when the initial majority answer is usually right; the
             tiny-scale claim (docs/papers.md 4.4 #4) adds that on a harder tier, where the
             majority is mostly wrong, label accuracy and entropy collapse.
  measured:  see the README ledger ("Claims reproduced", ttrl_majority_vote).

Test-time RL: the full variant sets config.data.test_time, so RL trains on the evaluation
questions (--config.data.eval_path, e.g. AIME 2024) with answers and metadata removed before any
reward or trainer code sees them, and evaluation scores the same questions against their labels.
--config.data.path is still read (the tokenizer corpus and any warm start use it) and must not
contain the evaluation questions (the held-out builder removes overlaps). The episode and the
rewards see no label in that mode; after the rewards are fixed the trainer looks the rows up in
the labelled evaluation set and logs audit/label_accuracy, audit/reward_accuracy and
audit/accuracy every step (rlvr_jax/training/collect.py::audit_test_time). The :arith claim
regime trains on the training split instead (its claim compares difficulty tiers).

Answers vote by math equivalence in the full variant (majority_vote equivalence="math":
math-verify in the shared process pool); the tiny regimes compare bare integers as strings.

Tags: [paper] printed in the paper as recalled for docs/papers.md; [recall] recalled, not
re-checked offline; [this config] chosen here.
"""
import ml_collections

from configs import claims_arith, common

VOTES = 64  # N samples that vote [recall: docs/papers.md 2.2]
TRAIN_SAMPLES = 32  # n of them used for training [recall: docs/papers.md 2.2]


def ttrl_reward(c: ml_collections.ConfigDict, *, votes: int, train_samples: int,
                extract: str, equivalence: str = "string") -> None:
  """Majority vote over ``votes`` samples, training on ``train_samples`` of them."""
  c.rollout.num_samples = votes
  c.reward.terms = [dict(name="majority_vote", weight=1.0,
                         options=dict(extract=extract, equivalence=equivalence))]
  c.reward.label_free_threshold = 0.5  # reward_accuracy: a vote reward of 1 counts as "rewarded"
  c.batch.builders = ("vote_subsample",)
  c.batch.builder_options = ml_collections.ConfigDict(dict(
      vote_subsample=dict(n=train_samples, mode="first")))  # the first n [recall: TTRL code]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # the tiny regime of configs/claims_arith.py, labels replaced by the vote
    c = claims_arith.get_config(None)
    c.sft.steps = 2000  # the "easy" tier (pass@1 73%); the claim's arms change it [claims_arith]
    c.rollout.prompts_per_step = 32  # [this config]
    ttrl_reward(c, votes=16, train_samples=8, extract="none")  # bare-number answers [this config]
    c.total_steps = 60  # [this config]
    c.eval.num_samples = 16  # [this config]
    c.checkpoint.every = 0
    return c

  c = common.base()
  c.seed = 0
  c.total_steps = 80  # "episodes" on AIME 2024 [recall]
  common.hf_checkpoint(c)  # --config.model.path: Qwen2.5-Math-7B [paper]
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_7b", device="A100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.test_time = True  # train on the test questions, labels removed [paper: test-time RL]
  c.data.max_prompt_len = 1024  # [this config]
  c.rollout.prompts_per_step = 32  # [this config]
  c.rollout.max_new_tokens = 3072  # [recall]
  c.rollout.temperature = 1.0  # [recall]
  c.rollout.top_p = 1.0
  # Answers vote together when math-verify finds them equal [paper: TTRL votes with its grader].
  ttrl_reward(c, votes=VOTES, train_samples=TRAIN_SAMPLES, extract="auto", equivalence="math")
  c.reward.correctness = "math_verify"  # diagnostics only: label / reward accuracy, eval
  c.reward.threshold = 1.0
  c.algo.advantage = "grpo"  # [paper]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.agg_mode = "token-mean"  # [recall: verl default in the TTRL scripts]
  c.algo.kl_coef = 0.0  # [recall]
  c.algo.epochs = 1
  c.optim.name = "adamw"
  c.optim.lr = 5e-7  # [recall]
  c.optim.schedule = "cosine"  # [recall]
  c.optim.warmup_steps = 3  # ~3% of the steps [recall: warm-up ratio 0.03]
  c.optim.weight_decay = 0.01
  c.optim.grad_clip = 1.0
  c.eval.size = 30  # AIME 2024 [paper]
  c.eval.num_samples = 16  # [this config]
  c.eval.temperature = 0.6  # [recall]
  c.checkpoint.every = 20
  if arg == "cpu":
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)  # tiny model, chain_sum, 4 prompts x 4 samples
    c.data.test_time = False  # cpu_variant evaluates nothing; tests switch it on with eval.size
    ttrl_reward(c, votes=c.rollout.num_samples, train_samples=2, extract="none")
    c.optim.warmup_steps = 0
  elif arg:
    raise ValueError(f"configs/ttrl.py: unknown argument {arg!r}; use no argument, 'cpu' or "
                     "'arith'")
  return c
