r"""ETTRL: test-time RL (TTRL) with entropy-based advantage reshaping (EAR).

Paper: Liu et al., "ETTRL: Balancing Exploration and Exploitation in LLM Test-Time Reinforcement
Learning Via Entropy Mechanism", arXiv 2508.11356; seed abstract (arXiv abstract page);
docs/papers.md 1.1 ("ETTRL").

TTRL's setting (configs/ttrl.py: majority vote over N samples, train on n, on the test questions
with the labels removed) with the advantage reshaped by each response's relative entropy
(advantage `entropy_reshaped`, rlvr_jax/algorithms/advantages.py): A'_i = w_i A_i with
w_i = clip((h_i / mean_group h)^alpha, 0.5, 2), h_i the mean surprisal of the sampled tokens.
The paper's EAR equation was not available offline: this form is [inferred from abstract] ("an
entropy-based advantage reshaping" against the over-confidence of early pseudo-labels), and so are
alpha and the clip range.

Left out: ETMR, the entropy-fork tree rollouts (branching at high-entropy tokens to save rollout
tokens); samples here are independent chains, as in TTRL.

Reproduction card
  paper:     Llama-3.1-8B (and Qwen2.5-Math) trained at test time on AIME 2024 without labels;
             pass@1 +68% relative to TTRL with 60% of the rollout tokens [abstract]. The rest of
             the settings are TTRL's [recall: docs/papers.md 2.2].
  command:   python -m experiments.run --config configs/ettrl.py --workdir /runs/ettrl \
               --config.model.path=/models/Llama-3.1-8B-Instruct \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/aime24.jsonl
             CPU smoke run: python -m experiments.run --config configs/ettrl.py:cpu --workdir /tmp/et
  hardware:  paper: a GPU node [recall]. Here untested at that size; :cpu runs in ~1 minute on
             2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 8}, rollout.max_rows_per_call 256,
             algo.micro_batch_size 1, eval.batch_size 128, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/ettrl.py).
  expected:  higher pass@1 than TTRL at equal steps, with entropy falling more slowly.
  measured:  none yet (the :cpu variant is a 2-step smoke test).

Tags: [abstract] the seed abstract; [recall] not re-checked offline; [inferred from abstract];
[this config] chosen here.
"""
import ml_collections

from configs import ttrl


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/ettrl.py: unknown argument {arg!r}; use no argument or 'cpu'")
  c = ttrl.get_config(arg)  # TTRL's data, vote and optimiser settings [recall: docs/papers.md 2.2]
  # Memory plan (python -m experiments.memory): Llama-3.1-8B shapes on the card's hardware.
  c.hardware.update(dict(model="llama3p1_8b", device="H100-80GB", count=8, memory_gib=80.0))
  c.algo.advantage = "entropy_reshaped"  # EAR [inferred from abstract]
  c.algo.advantage_options = ml_collections.ConfigDict(dict(
      alpha=1.0, w_min=0.5, w_max=2.0))  # [inferred from abstract]
  return c
