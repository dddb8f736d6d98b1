r"""Clip-Cov and KL-Cov: curb the high-covariance tokens that drive policy entropy down.

Paper: Cui et al., "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
Models", arXiv 2505.22617 (the regulariser SPEAR uses); code: verl's
``compute_policy_loss_clip_cov`` / ``compute_policy_loss_kl_cov`` and verl-recipe
entropy/7b_kl_cov.sh, 7b_clip_cov.sh; docs/papers.md 2.1 ("Clip-Cov / KL-Cov").

Entropy falls when log-probability and advantage covary: cov_t = (A_t - mean A)(log pi_t -
mean log pi). KL-Cov (the default here) adds cov_coef * |log pi - log pi_old| to the unclipped
policy gradient on the top `ratio` of tokens by covariance (loss `kl_cov`); Clip-Cov
(config argument `clip_cov`) detaches the gradient of a random `ratio` of the tokens whose
covariance lies in (cov_low, cov_high) (loss `clip_cov`). Both take their means and their selection
over the whole mini-batch (rlvr_jax/algorithms/losses.py).

Reproduction card
  paper:     Qwen2.5-7B / 32B on math RL; KL-Cov and Clip-Cov keep entropy from collapsing and
             raise accuracy over GRPO, most at 32B; the fitted law R = -a exp(H) + b [paper, as
             summarised in docs/papers.md 2.1]. Recipe values [code]: KL-Cov ratio 2e-3,
             coefficient 1 (7B); Clip-Cov ratio 2e-4, band (1, 5). Other settings below
             [recall] / [this config].
  command:   python -m experiments.run --config configs/entropy_mechanism.py --workdir /runs/klcov \
               --config.model.path=/models/Qwen2.5-7B \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/math500.jsonl
             Clip-Cov: --config configs/entropy_mechanism.py:clip_cov
             CPU smoke runs: python -m experiments.run --config configs/entropy_mechanism.py:cpu --workdir /tmp/kc
               (and :clip_cov_cpu)
  hardware:  paper: a GPU cluster [recall]. Here untested at that size; :cpu runs in ~1 minute on 2
             CPU cores.
             Memory plan: mesh {data: 1, fsdp: 4, tensor: 2}, rollout.max_rows_per_call 256,
             algo.micro_batch_size 4, eval.batch_size 128, model.remat True fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/entropy_mechanism.py).
  expected:  entropy stays higher than under GRPO / PPO-clip at equal steps, and accuracy (pass@k at
             large k especially) ends higher.
  measured:  none yet (the :cpu variants are 2-step smoke tests).

Deviation: Clip-Cov's draw is a fixed pseudo-random order over the tokens (so micro-batches agree)
rather than torch.randperm per micro-batch.
Tags: [paper] as summarised in docs/papers.md; [code] verl / verl-recipe as read for
docs/papers.md 2.1; [recall] not re-checked offline; [this config] chosen here.
"""
import ml_collections

from configs import common

ARGS = (None, "cpu", "clip_cov", "clip_cov_cpu")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in ARGS:
    raise ValueError(f"configs/entropy_mechanism.py: unknown argument {arg!r}; use one of {ARGS}")
  c = common.base()
  c.seed = 0
  c.total_steps = 500  # [this config]
  common.hf_checkpoint(c)  # --config.model.path: Qwen2.5-7B [paper]
  # Memory plan (python -m experiments.memory): Qwen2.5-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_7b", device="H100-80GB", count=8, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.max_prompt_len = 1024  # [this config]
  c.rollout.prompts_per_step = 256  # [recall]
  c.rollout.num_samples = 8  # [recall]
  c.rollout.max_new_tokens = 8192  # [recall]
  c.rollout.temperature = 1.0  # [recall]
  c.reward.terms = [dict(name="math_verify", weight=1.0)]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0
  c.algo.advantage = "grpo"  # [recall]
  c.algo.agg_mode = "token-mean"  # verl's default [recall]
  c.algo.kl_coef = 0.0  # no reference KL [recall]
  c.algo.num_minibatches = 8  # off-policy mini-batches: the penalty acts on pi / pi_old [recall]
  if arg in ("clip_cov", "clip_cov_cpu"):
    c.algo.loss = "clip_cov"
    c.algo.clip_low = 0.2  # [recall]
    c.algo.clip_high = 0.2
    c.algo.loss_options = ml_collections.ConfigDict(dict(
        ratio=2e-4, cov_low=1.0, cov_high=5.0))  # [code]
  else:
    c.algo.loss = "kl_cov"
    c.algo.loss_options = ml_collections.ConfigDict(dict(ratio=2e-3, cov_coef=1.0))  # 7B [code]
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [recall]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # [this config]
  c.eval.num_samples = 8  # [this config]
  c.checkpoint.every = 50
  if arg in ("cpu", "clip_cov_cpu"):
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.algo.num_minibatches = 2
    # At 16 rollouts x 8 tokens the paper's ratios select one token (the floor of one): keep that.
  return c
