r"""RAPO: a forward KL to a reward-reweighted reference replaces GRPO's reverse KL, so that the
regulariser covers the reference's modes (exploration outside the policy's current support)
and pulls hardest toward the responses that were rewarded (exploration inside it).

Paper: "Unlocking Reasoning Capabilities in LLMs via Reinforcement Learning Exploration" (RAPO,
Rewards-Aware Policy Optimization), Oct 2025; only the abstract was available offline (the seed
abstracts; docs/papers.md catalog row RAPO). It says: (i) "the forward KL penalty replaces the
reverse KL penalty for out-of-distribution exploration"; (ii) the reference policy is
"reweighted to facilitate adaptive in-distribution exploration" [abstract]. The formulas below are
this config's reading of those two sentences [inferred from abstract].

Objective (per prompt x, G responses y_i sampled from pi_old, advantages A_i):
    loss = PPO-clip(A) + beta * D(pi_ref' || pi_theta),      config.algo.kl_coef = 0
    pi_ref'(y | x) = pi_ref(y | x) g(y) / Z(x),   g = max(0, 1 + lambda A)        [inferred]
The tilt g is written in the advantages because they are what the loss sees; with a group-centred
estimator (GRPO's advantages sum to 0 in each group) the group mean of g is 1, so Z = 1 on the
group's own samples (a self-normalised weight) until a weight is clipped at 0. Correct responses
of a mixed group get more reference mass, wrong ones less (none when A < -1 / lambda); a group
with equal rewards keeps g = 1, the plain forward KL, which keeps the reference's whole support
alive on prompts that are never (or always) solved [inferred]. The divergence is estimated on the
policy's own samples per token with the stop-gradient weight a = g min(pi_ref / pi_old, C) and
rho = pi_theta / pi_old: f = a log a - a log rho - a + rho, whose expectation is the forward KL
and whose gradient is (rho - a) grad log pi_theta, the forward-KL gradient in expectation
(derivation and the hand-worked check: rlvr_jax/algorithms/kl.py ``rapo_forward_kl``,
tests/algorithms/test_rapo_handworked.py). Aux loss ``rapo_forward_kl``; weight beta.
Deviations [this config]: per-token importance weights stand in for the sequence weight (each
token carries its response's tilt); the weight is truncated at C for stability (biases the
gradient down where pi_ref / pi_old > C); Z is estimated on pi_old's samples, not pi_ref's.
Note: on-policy, untilted and untruncated, this gradient equals that of GRPO's k3 KL in the loss
(k3's gradient is the forward-KL one), so the reverse-KL baseline of the claim uses k2, whose
gradient is the reverse-KL gradient.

Reproduction card
  paper:     Qwen2.5-3B and Qwen2.5-7B base models, RL from the base (no SFT) on the 8K
             SimpleRL-Zero math set, evaluated on AIME 2024 / 2025 pass@k; claims to exceed the
             base model's pass@k ceiling and solve problems the base never does [abstract].
             beta, lambda, C and the rest of the recipe are not in the abstract: beta = 1e-3
             [recall: verl's default KL-loss coefficient, unchecked], lambda = 1, C = 10 [this
             config]; G = 8, 128 prompts per step, temperature 1, 8K tokens, lr 1e-6 [recall:
             the SimpleRL-Zero recipe, unchecked]; the rest is configs/grpo.py [inferred].
  command:   python -m experiments.run --config configs/rapo.py --workdir /runs/rapo \
               --config.model.path=/models/Qwen2.5-7B \
               --config.data.path=/data/simplerl_zero_8k.jsonl \
               --config.data.eval_path=/data/aime24.jsonl
             CPU smoke run: python -m experiments.run --config configs/rapo.py:cpu --workdir /tmp/rapo
             tiny regime (claim runs): configs/rapo.py:arith, see `python -m experiments.claims
               --claim rapo_forward_kl_passk --seeds 3`
  hardware:  paper: GPUs [abstract, sizes not given]; a 7B policy plus a reference copy needs
             about 8 x 80 GB accelerators (untested). The :cpu variant runs in about a minute on
             2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 4, tensor: 2}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 4, eval.batch_size 128, model.remat True fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/rapo.py).
  expected:  higher pass@k at large k than GRPO with a reverse KL, at a pass@1 that is not worse
             [abstract, read as the claim rapo_forward_kl_passk].
  measured:  tiny regime, 3 seeds, 100 steps, beta = 0.1 (2026-11-28, 2-core x86_64): held-out
             pass@64 92.0 / 89.7 / 95.7% with RAPO vs 92.3 / 89.3 / 95.7% with a reverse KL (k2)
             and 90.3 / 90.0 / 95.7% without KL; pass@1 29.0 / 12.1 / 44.5 vs 29.0 / 12.0 / 44.4
             vs 29.9 / 12.2 / 44.8%: inconclusive (paired difference 0.0 +- 0.2 points; at this
             beta neither divergence changes training; README ledger, "Claims reproduced",
             rapo_forward_kl_passk). The paper's setting is not run.

Tiny regime (:arith, configs/claims_arith.py): beta = 0.1 [this config, fixed before the runs:
larger than 1e-3 so that either divergence has a chance to matter within 100 steps], lambda = 1,
C = 10, aggregated like the policy loss.
Tags: [abstract] the seed abstract; [inferred] a reading of the abstract; [recall] from memory,
not re-checked offline; [this config] chosen here.
"""
import ml_collections

from configs import claims_arith, grpo

BETA = 1e-3  # beta, forward-KL coefficient [recall, unchecked]
TILT = 1.0  # lambda, reward tilt of the reference [this config]
CAP = 10.0  # C, truncation of pi_ref / pi_old [this config]


def rapo(c: ml_collections.ConfigDict, *, beta: float) -> None:
  """Swaps the reverse KL of a GRPO-style config for RAPO's forward KL to the tilted reference."""
  c.algo.kl_coef = 0.0  # no reverse KL [abstract: the forward KL replaces it]
  c.algo.aux_losses = [dict(name="rapo_forward_kl", weight=beta,
                            options=dict(tilt=TILT, cap=CAP, agg_mode=c.algo.agg_mode))]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg == "arith":  # the tiny regime of configs/claims_arith.py with RAPO's regulariser
    c = claims_arith.get_config(None)
    rapo(c, beta=0.1)  # [this config, see the docstring]
    c.checkpoint.every = 0
    return c
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/rapo.py: unknown argument {arg!r}; use no argument, 'cpu' or 'arith'")
  c = grpo.get_config(arg)  # the GRPO recipe [inferred]; "cpu": its CPU variant
  # Memory plan (python -m experiments.memory): Qwen2.5-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_7b", device="H100-80GB", count=8, memory_gib=80.0))
  if arg is None:
    c.total_steps = 500  # [this config: about 8 epochs of 8K prompts at 128 per step]
    c.rollout.prompts_per_step = 128  # [recall, unchecked]
    c.rollout.num_samples = 8  # G [recall, unchecked]
    c.rollout.max_new_tokens = 8192  # [recall, unchecked]
    c.reward.terms = [dict(name="math_verify", weight=1.0,
                           options=dict(correct=1.0, incorrect=0.0))]
    c.eval.num_samples = 32  # pass@k up to 32 on AIME [this config]
  rapo(c, beta=BETA)
  return c
