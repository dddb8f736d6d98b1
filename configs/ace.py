r"""ACE: sharper penalties on confident errors; the advantage of an incorrect rollout grows with
its log-ratio to the reference policy.

Paper: "ACE" (arXiv 2602.21420); docs/papers.md 2.3 ("ACE", from a summary of the paper).

Loss `ace` (rlvr_jax/algorithms/losses.py): PPO-clip with A_i <- A_i (1 + alpha softplus(c_i)) for
A_i < 0, c_i = log pi_old(y_i|x) - log pi_ref(y_i|x) summed over the response; positive advantages
unchanged. A selective reverse-KL pressure on over-confident mistakes that keeps the policy from
collapsing onto them, so pass@k at large k stays up. The trainer keeps the reference policy (the
initial checkpoint) for the loss.

Reproduction card
  paper:     Qwen2.5-Math-7B, Qwen3-8B-Base and Llama-3.1-8B-Instruct on DAPO-Math-17K, with GRPO
             and DAPO in verl [summary]; alpha not retrieved (1.0 here [this config]). The rest is
             the DAPO recipe (configs/dapo.py) [summary: ACE is applied on top of it].
  command:   python -m experiments.run --config configs/ace.py --workdir /runs/ace \
               --config.model.path=/models/Qwen2.5-Math-7B \
               --config.data.path=/data/dapo_math_17k.jsonl --config.data.eval_path=/data/aime24.jsonl
             CPU smoke run: python -m experiments.run --config configs/ace.py:cpu --workdir /tmp/ace
  hardware:  paper: not recalled. Here untested at that size; :cpu runs in ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 2, tensor: 4}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 2, eval.batch_size 128, model.remat True fit 8 x H200-141GB [this
             config: no H100-80GB count up to 128 fits its 22,528-token rows]
             (python -m experiments.memory --config configs/ace.py). The run cannot start as
             configured, though: 2,048 + 20,480 tokens exceed Qwen2.5-Math-7B's 4,096 positions, so
             the sampler refuses every prompt (shorten rollout.max_new_tokens).
  expected:  pass@k at large k closer to the base than DAPO's at equal pass@1
             (docs/papers.md 4.4 #9).
  measured:  tiny regime only: an arm of the claim diversity_preserving_losses (configs/claims_arith.py,
             3 seeds; README ledger "Claims reproduced"); the :cpu variant is a 2-step smoke test.

Tags: [summary] docs/papers.md 2.3's summary of the paper; [this config] chosen here.
"""
import ml_collections

from configs import dapo


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  if arg not in (None, "cpu"):
    raise ValueError(f"configs/ace.py: unknown argument {arg!r}; use no argument or 'cpu'")
  c = dapo.get_config(arg)  # [summary: ACE on top of DAPO]
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-7B shapes on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_7b", device="H200-141GB", count=8, memory_gib=141.0))
  c.algo.loss = "ace"
  c.algo.loss_options = ml_collections.ConfigDict(dict(alpha=1.0))  # [this config]
  return c
