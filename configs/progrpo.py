r"""ProGRPO (ARM): GRPO whose positive advantages are spread across the correct responses by their
confidence, so the most likely correct path stops absorbing all the probability mass.

Paper: "Back to Basics: Revisiting Exploration in Reinforcement Learning for LLM Reasoning via
Generative Probabilities" (ProGRPO, Advantage Re-weighting Mechanism, ARM); seed abstract
(arXiv abstract page); docs/papers.md 1.2 ("ProGRPO / ARM").

Advantage `confidence_reweighted` (rlvr_jax/algorithms/advantages.py): A'_i = w_i A_i on the rows
with A_i > 0, w = n_+ softmax(-beta c) over them, c_i the mean log-prob of response i (answer
confidence). The paper also folds in the prompt's perplexity; prompt log-probs are not part of the
rollout rows here, so that term is left out. The form and beta = 1 are [inferred from abstract].

Reproduction card
  paper:     Qwen2.5 and DeepSeek models on math and code; on Qwen2.5-7B +5.7% pass@1 and +13.9%
             pass@32 over GRPO, with higher response entropy [abstract]. The rest of the settings
             are the GRPO config's (configs/grpo.py) [inferred from abstract: GRPO is the baseline].
  command:   python -m experiments.run --config configs/progrpo.py --workdir /runs/progrpo \
               --config.model.path=/models/Qwen2.5-7B \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/math500.jsonl
             CPU smoke run: python -m experiments.run --config configs/progrpo.py:cpu --workdir /tmp/pg
  hardware:  paper: not recalled. Here untested at that size; :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 4, tensor: 2}, rollout.max_rows_per_call 1024,
             algo.micro_batch_size 4, eval.batch_size 256, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/progrpo.py).
  expected:  pass@k at large k and entropy above GRPO's at similar pass@1.
  measured:  none yet (the :cpu variant is a 2-step smoke test).

Tags: [abstract] the seed abstract; [inferred from abstract]; [this config] chosen here.
"""
import ml_collections

from configs import grpo


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/progrpo.py: unknown argument {arg!r}; use no argument or 'cpu'")
  c = grpo.get_config(arg)  # [inferred from abstract: GRPO is the baseline it modifies]
  # Memory plan (python -m experiments.memory): Qwen2.5-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_7b", device="H100-80GB", count=8, memory_gib=80.0))
  c.algo.advantage = "confidence_reweighted"
  c.algo.advantage_options = ml_collections.ConfigDict(dict(beta=1.0))  # [inferred from abstract]
  return c
