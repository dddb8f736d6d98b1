r"""DISPO: REINFORCE-style updates with four importance-weight bounds (correct / incorrect x low /
high); tokens outside their bounds get no gradient.

Paper: Karaman et al., "DISPO: Enhancing Training Efficiency and Stability in Reinforcement
Learning for Large Language Model Mathematical Reasoning", arXiv 2602.00983 (AISTATS 2026);
docs/papers.md 2.4 ("DISPO").

Loss `dispo` (rlvr_jax/algorithms/losses.py): l_t = -sg(rho_t) A_t log pi_t on tokens with
1 - eps_lo^s <= rho_t <= 1 + eps_hi^s, s the sign of A (correct / incorrect), else 0. Masked, not
kept: decided from the abstract, which contrasts DISPO with CISPO's "non-zero gradients outside the
trust-region" [inferred from abstract]. The abstract's regimes: on correct responses room for
w > 1 raises entropy (exploration), w < 1 lowers it (distillation); on incorrect responses too
tight bounds collapse into repetition (w > 1) or vanishing lengths (w < 1).

Reproduction card
  paper:     61.04% on AIME'24 vs 55.42% for CISPO and 50.21% for DAPO, with similar gains on other
             benchmarks and models [abstract]. The four bounds' values were not available offline:
             DAPO's 0.2 / 0.28 on both signs here [this config]; the rest is the DAPO recipe
             (configs/dapo.py) [inferred from abstract: the baselines it is compared against].
  command:   python -m experiments.run --config configs/dispo.py --workdir /runs/dispo \
               --config.model.path=/models/Qwen2.5-Math-7B \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl \
               --config.algo.loss_options.pos_high=0.5
             CPU smoke run: python -m experiments.run --config configs/dispo.py:cpu --workdir /tmp/dispo
  hardware:  paper: not recalled. Here untested at that size; :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 2, tensor: 4}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 2, eval.batch_size 128, model.remat True fit 8 x H200-141GB [this
             config: no H100-80GB count up to 128 fits its 22,528-token rows]
             (python -m experiments.memory --config configs/dispo.py). The run cannot start as
             configured, though: 2,048 + 20,480 tokens exceed Qwen2.5-Math-7B's 4,096 positions, so
             the sampler refuses every prompt (shorten rollout.max_new_tokens).
  expected:  higher AIME accuracy than CISPO and DAPO; entropy moving with pos_high / pos_low as the
             abstract states (docs/papers.md 4.4 #9 tests the direction at tiny scale).
  measured:  tiny regime only (configs/claims_arith.py, 3 seeds; README ledger "Claims reproduced"):
             an arm of diversity_preserving_losses, and the knob directions (dispo_entropy_knobs,
             2026-11-28): with weights on correct responses kept in [1, 2] entropy fell by
             0.072 / 0.045 / 0.060 nats over training, in [0.5, 1] by 0.085 / 0.105 / 0.065; the
             abstract's direction in every seed but inconclusive (1.5 s.e. paired). The :cpu
             variant is a 2-step smoke test.

Tags: [abstract] the paper's abstract; [inferred from abstract]; [this config] chosen here.
"""
import ml_collections

from configs import dapo


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/dispo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  c = dapo.get_config(arg)  # the DAPO recipe around the loss [inferred from abstract]
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_7b", device="H200-141GB", count=8, memory_gib=141.0))
  c.algo.loss = "dispo"
  c.algo.dual_clip = None
  c.algo.loss_options = ml_collections.ConfigDict(dict(
      pos_low=0.2, pos_high=0.28, neg_low=0.2, neg_high=0.28))  # [this config]
  return c
