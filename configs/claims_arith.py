r"""The base-model regime for claim runs: a tiny char-level model warm-started on 2-digit addition /
subtraction by a careless teacher and stopped early, so that it is diverse but imperfect (pass@1
well below pass@64), then GRPO. The claims in rlvr_jax/claims/declared.py run their arms on it.

Paper: none of its own; the regime of docs/papers.md 4.4 ("make a base model that is diverse but
imperfect ... so that pass@1 is 20-60% and pass@64 is much higher; most RLVR phenomena only exist
in that regime").

Reproduction card
  paper:     docs/papers.md 4.4 (the tiny-scale claims setting); GRPO as in configs/quickstart.py.
  command:   python -m experiments.run --config configs/claims_arith.py --workdir /tmp/claims_arith
             claims: python -m experiments.claims --claim dapo_clip_higher --seeds 3
             CPU smoke run: python -m experiments.run --config configs/claims_arith.py:cpu \
               --workdir /tmp/claims_arith_cpu
  hardware:  2 CPU cores: warm start ~1 minute, 100 GRPO steps ~4 minutes, evaluation (300
             problems x 64 samples) ~1 minute.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 512, eval.batch_size 256, model.remat False fit 1 x CPU [this
             config: 8 GiB of RAM assumed]
             (python -m experiments.memory --config configs/claims_arith.py).
  expected:  the warm start's held-out pass@1 in 20-60% and pass@64 at least 25 points higher.
  measured:  see MEASURED below (filled from the runs of 2026-11-27 on a 2-core Intel Xeon).

MEASURED (warm start only, 300 held-out problems, 64 samples each, T = 1):
  SFT steps   pass@1   pass@2   pass@4   pass@8   pass@16  pass@32  pass@64  greedy  maj@64
     400       5.8%    11.1%    20.5%    35.4%    54.9%    73.8%    85.7%    8.0%   7.3%
     700       8.7%    16.1%    28.2%    45.3%    64.5%    79.9%    88.7%   10.0%  12.3%
    1000      22.9%    36.0%    50.3%    63.4%    74.4%    83.3%    90.0%   32.0%  33.3%   <- used
    2000      73.0%    85.5%    92.9%    96.6%      -        -        -     79.0%    -     (quickstart, n=8)
  At 1000 steps pass@1 is 22.9% and pass@64 90.0% (+67 points): inside the regime. The same
  teacher on 3-digit problems (1000 steps) stayed at pass@1 0.6%, pass@64 28.7%: too hard.

Tags: [this config] chosen here; [quickstart] as configs/quickstart.py (measured there).
"""
import ml_collections

from configs import common, quickstart

SFT_STEPS = 1000  # early stop of the careless warm start [this config, from the sweep above]


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = quickstart.get_config(None)  # model, tokenizer, task, reward, careless teacher [quickstart]
  c.sft.steps = SFT_STEPS
  c.total_steps = 100  # [this config]
  c.rollout.prompts_per_step = 64  # [quickstart]
  c.rollout.num_samples = 8  # [quickstart]
  c.rollout.temperature = 1.0
  c.batch.builders = ()  # plain GRPO: dynamic sampling is an arm of its own claims [this config]
  c.algo.clip_low = 0.2
  c.algo.clip_high = 0.2
  c.optim.lr = 5e-5  # [quickstart]
  c.eval.size = 300  # held-out problems [this config]
  c.eval.num_samples = 64  # n for unbiased pass@k up to k = 64 [this config]
  c.eval.every = 0
  c.checkpoint.every = 50
  c.export_hf = False
  if arg == "cpu":
    common.cpu_variant(c)
    c.eval.size = 16
    c.eval.num_samples = 4
  elif arg:
    raise ValueError(f"configs/claims_arith.py: unknown argument {arg!r}; use no argument or 'cpu'")
  return c
