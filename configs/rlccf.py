r"""RLCCF: label-free RL by a collective vote weighted by each member's self-consistency.

Paper: "Wisdom of the Crowd: Reinforcement Learning from Coevolutionary Collective Feedback"
(RLCCF), Aug 2025; seed abstract (arXiv abstract page, summarised in docs/papers.md 1.1);
docs/papers.md 2.2 ("RLCCF").

Each question is answered by every member of a collective; model k's vote weighs its
self-consistency SC_k = max_a freq_k(a), the pseudo-label is y* = argmax_a sum_k SC_k freq_k(a),
and each sample's reward is 1[ans = y*] (episode `collective_vote`,
rlvr_jax/episodes/collective.py). The formula is read from the abstract ("each model's vote is
weighted by its Self-Consistency score") [inferred from abstract].

What is reproduced and what is not: the paper trains four different LLMs jointly, each rewarded
by the collective. This single-policy trainer builds a collective of two: the trained policy and
a frozen peer, the reference policy (the initial checkpoint); only the policy learns. A researcher
comparing against RLCCF should say so. Several distinct co-trained models are left out.

Reproduction card
  paper:     four open LLMs (e.g. Qwen2.5-7B, Llama-3.1-8B [recall]) trained jointly on math
             questions without labels; +16.72% average relative accuracy over four math
             benchmarks and +4.51% collective majority-vote accuracy [abstract]. Hyperparameters
             below are TTRL's (the family's baseline) [recall], not the paper's.
  command:   python -m experiments.run --config configs/rlccf.py --workdir /runs/rlccf \
               --config.model.path=/models/Qwen2.5-Math-1.5B \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/math500.jsonl
             CPU smoke run: python -m experiments.run --config configs/rlccf.py:cpu --workdir /tmp/rc
  hardware:  paper: not recalled. Here untested at that size (the frozen peer doubles the sampling
             and keeps a second copy of the weights); :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 64,
             algo.micro_batch_size 4, eval.batch_size 64, model.remat True fit 1 x H100-80GB [this
             config] (python -m experiments.memory --config configs/rlccf.py).
  expected:  accuracy rises without labels; the weighted collective label is more often right than
             the policy's own majority when the peer is the more self-consistent member.
  measured:  none yet (the :cpu variant is a 2-step smoke test).

Tags: [abstract] the seed abstract; [recall] not re-checked offline; [this config] chosen here.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 200  # [this config]
  common.hf_checkpoint(c)  # --config.model.path: a base model [abstract: open LLMs]
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-1.5B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_1p5b", device="H100-80GB", count=1, memory_gib=80.0))
  common.local_files(c, answer_format="plain")  # answers for diagnostics and evaluation only
  c.data.max_prompt_len = 1024  # [this config]
  c.episode.name = "collective_vote"
  c.episode.options = ml_collections.ConfigDict(dict(peer_samples=8, extract="auto"))
  c.reward.terms = []  # the episode rewards by the collective vote
  c.reward.correctness = "math_verify"  # diagnostics and evaluation
  c.reward.threshold = 1.0
  c.rollout.prompts_per_step = 32  # [this config]
  c.rollout.num_samples = 8  # [this config]
  c.rollout.max_new_tokens = 3072  # [recall: TTRL]
  c.rollout.temperature = 1.0  # [recall: TTRL]
  c.algo.advantage = "grpo"  # [recall]
  c.algo.loss = "ppo_clip"
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.algo.agg_mode = "token-mean"  # [recall: verl default]
  c.algo.kl_coef = 0.0  # [recall: TTRL]
  c.optim.name = "adamw"
  c.optim.lr = 5e-7  # [recall: TTRL]
  c.optim.schedule = "cosine"
  c.optim.warmup_steps = 6  # ~3% [recall: TTRL]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # [this config]
  c.eval.num_samples = 4  # [this config]
  c.checkpoint.every = 50
  if arg == "cpu":
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.reward.terms = []
    c.episode.options = ml_collections.ConfigDict(dict(peer_samples=4, extract="none"))
    c.optim.warmup_steps = 0
  elif arg:
    raise ValueError(f"configs/rlccf.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
