r"""DPH-RL: keep what the initial policy already solves with a mass-covering divergence to it,
estimated on samples drawn from it, and explore freely elsewhere.

Paper: "DPH-RL" (arXiv 2509.07430); docs/papers.md 2.4 ("DPH-RL", from a summary of the paper).

Episode `rehearsal` (rlvr_jax/episodes/rehearsal.py): on its first visit every prompt is answered
by the initial policy pi_0 (the frozen reference) and its pass rate and samples are stored. Prompts
pi_0 solves perfectly (D_pef) are trained only through the auxiliary loss `forward_kl` on those
stored samples (divergence "k1": forward KL, whose gradient is the likelihood of pi_0's samples;
"js": Jensen-Shannon); the others (D_exp) get GRPO with no KL. No online reference model is needed
after a prompt's first visit.

Reproduction card
  paper:     math and SQL tasks with Llama / Qwen models; better pass@1 and pass@k than GRPO with a
             reverse KL [summary]; model sizes, data and coefficients not retrieved: the settings
             below are the GRPO config's with the KL removed [this config].
  command:   python -m experiments.run --config configs/dph_rl.py --workdir /runs/dph \
               --config.model.path=/models/Qwen2.5-Math-7B \
               --config.data.path=/data/math_train.jsonl --config.data.eval_path=/data/math500.jsonl
             JS instead of forward KL: --config.algo.aux_losses='[{"name": "forward_kl", "weight":
               1.0, "options": {"divergence": "js", "roles": [1]}}]'
             CPU smoke run: python -m experiments.run --config configs/dph_rl.py:cpu --workdir /tmp/dph
  hardware:  paper: not recalled. Here untested at that size (the first epoch also samples pi_0);
             :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 4, tensor: 2}, rollout.max_rows_per_call 1024,
             algo.micro_batch_size 4, eval.batch_size 256, model.remat False fit 8 x H100-80GB [this
             config] (python -m experiments.memory --config configs/dph_rl.py).
  expected:  pass@k at large k kept near the base while pass@1 improves (docs/papers.md 4.4 #9).
  measured:  tiny regime only: an arm of the claim diversity_preserving_losses (configs/claims_arith.py,
             3 seeds; README ledger "Claims reproduced"); the :cpu variant is a 2-step smoke test.

Tags: [summary] docs/papers.md 2.4's summary of the paper; [this config] chosen here.
"""
import ml_collections

from configs import grpo


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/dph_rl.py: unknown argument {arg!r}; use no argument or 'cpu'")
  c = grpo.get_config(arg)
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_7b", device="H100-80GB", count=8, memory_gib=80.0))
  c.episode.name = "rehearsal"
  c.episode.options = ml_collections.ConfigDict(dict(
      rehearsal_samples=8, perfect_threshold=1.0))  # D_pef: solved every time [summary]
  c.algo.kl_coef = 0.0  # no reverse KL on D_exp [summary]
  c.algo.aux_losses = [dict(name="forward_kl", weight=1.0,
                            options=dict(divergence="k1", roles=[1]))]  # [summary; weight: this config]
  if arg == "cpu":
    c.episode.options = ml_collections.ConfigDict(dict(rehearsal_samples=4, perfect_threshold=0.25))
  return c
