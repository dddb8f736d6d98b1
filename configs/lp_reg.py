r"""Lp-Reg: keep the low-probability "reasoning sparks" of negative samples alive by a KL to a
min-p-filtered proxy of the old policy.

Paper: "Lp-Reg" (arXiv 2510.03222); code CarlanLark/Lp-Reg-dev (core_algos.py::
compute_policy_loss_lp_reg, dp_actor.py::apply_min_p, recipe/lp_reg/
Qwen3_14b_lp_reg_onpolicy_64gpu.sh); docs/papers.md 2.4 ("Lp-Reg").

Loss `lp_reg` (rlvr_jax/algorithms/losses.py): among the tokens of negative-advantage responses,
the lowest-probability 1% of the mini-batch are candidates; a candidate that a min-p filter of
the old policy keeps (p >= kappa max p, kappa = 0.02) and whose probability is below the filtered,
renormalised proxy's gets -A rho + beta KL_k3(pi_theta || pi_proxy) instead of the clipped loss.
The proxy needs the old policy's largest probability and the mass the filter keeps at every
position: both come from tiled passes over the vocabulary next to the log-prob kernel
(algorithms.max_logprob_from_logp, minp_logmass_from_logp), never an [N, V] array.

Reproduction card
  paper:     Qwen3-14B-Base and Qwen2.5-32B on DAPO-Math-17K: 60.17% average over five math
             benchmarks (+2.66 over the best baseline), stable for ~1,000 on-policy steps [paper,
             as summarised in docs/papers.md 2.4]. Settings [code]: 256 prompts x 8, one mini-batch
             (strictly on-policy), lr 1e-6, max response 8,192, temperature 1.0, no reference KL,
             no overlong buffer, token-mean; kappa 0.02, 1% of negative tokens, beta 1.
  command:   python -m experiments.run --config configs/lp_reg.py --workdir /runs/lp_reg \
               --config.model.path=/models/Qwen3-14B-Base \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl
             CPU smoke run: python -m experiments.run --config configs/lp_reg.py:cpu --workdir /tmp/lp
  hardware:  paper: 64 GPUs [code: recipe name]. Here untested at that size; :cpu runs in ~1 minute
             on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 32, tensor: 2}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 32, eval.batch_size 256, model.remat True fit 64 x H100-80GB
             [code: 64 GPUs; H100-80GB assumed, this config]
             (python -m experiments.memory --config configs/lp_reg.py).
  expected:  entropy and pass@k at large k stay closer to the base than under GRPO / DAPO at equal
             pass@1 (docs/papers.md 4.4 #9).
  measured:  tiny regime only: an arm of the claim diversity_preserving_losses (configs/claims_arith.py,
             3 seeds; README ledger "Claims reproduced"); the :cpu variant is a 2-step smoke test.

Tags: [paper] as summarised in docs/papers.md; [code] the repository as read for
docs/papers.md 2.4; [this config] chosen here.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.seed = 0
  c.total_steps = 1000  # ~1,000 on-policy steps [paper]
  common.hf_checkpoint(c)  # --config.model.path: Qwen3-14B-Base [code]
  # Memory plan (python -m experiments.memory): Qwen3-14B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen3_14b", device="H100-80GB", count=64, memory_gib=80.0))
  common.local_files(c, answer_format="plain")
  c.data.max_prompt_len = 2048  # [this config]
  c.rollout.prompts_per_step = 256  # [code]
  c.rollout.num_samples = 8  # [code]
  c.rollout.max_new_tokens = 8192  # [code]
  c.rollout.temperature = 1.0  # [code]
  c.reward.terms = [dict(name="math_verify", weight=1.0)]
  c.reward.correctness = "math_verify"
  c.reward.threshold = 1.0
  c.algo.advantage = "grpo"  # [code: verl GRPO]
  c.algo.loss = "lp_reg"
  c.algo.loss_options = ml_collections.ConfigDict(dict(
      kappa=0.02, neg_frac=0.01, pos_frac=0.0, beta=1.0))  # [code]
  c.algo.clip_low = 0.2  # [code: verl defaults]
  c.algo.clip_high = 0.28  # [recall: DAPO-style clip-higher in the recipe]
  c.algo.agg_mode = "token-mean"  # [code]
  c.algo.kl_coef = 0.0  # [code]
  c.algo.num_minibatches = 1  # strictly on-policy [code]
  c.optim.name = "adamw"
  c.optim.lr = 1e-6  # [code]
  c.optim.grad_clip = 1.0
  c.eval.size = 500  # [this config]
  c.eval.num_samples = 8  # [this config]
  c.checkpoint.every = 50
  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.algo.loss_options.neg_frac = 0.25  # 1% of at most 16 x 8 tokens selects at most one
  elif arg:
    raise ValueError(f"configs/lp_reg.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
