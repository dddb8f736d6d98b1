r"""The scratchpad regime for claims: 2-digit addition / subtraction answered with one line per column,
warm-started by a careless teacher whose demonstrations vary in length, then GRPO.

Why a second regime: configs/claims_arith.py answers with bare numbers, which leave a response no
room to grow, so the Dr. GRPO length-bias claim cannot show there; and a scratchpad has steps to
check, which gives CoT-pass@k (a sample counts only if the answer and every step are right). The
scratchpad, the careless lines and the step checker are in rlvr_jax/rewards/scratchpad.py; the
teacher is `careless_scratchpad` in rlvr_jax/training/sft.py.

Reproduction card
  paper:     none of its own: the tiny-scale setting of docs/papers.md 4.4 for Dr. GRPO (arXiv
             2503.20783, length bias of per-response normalisation) and CoT-pass@k
             (docs/papers.md 2.9).
  command:   python -m experiments.run --config configs/claims_scratchpad.py --workdir /tmp/claims_sp
             claims: python -m experiments.claims --claim dr_grpo_length_bias --seeds 3
             CPU smoke run: python -m experiments.run --config configs/claims_scratchpad.py:cpu \
               --workdir /tmp/claims_sp_cpu
  hardware:  2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 512, eval.batch_size 256, model.remat False fit 1 x CPU [this
             config: 8 GiB of RAM assumed]
             (python -m experiments.memory --config configs/claims_scratchpad.py).
  expected:  the warm start's held-out pass@1 in 20-60% and pass@64 at least 25 points higher.
  measured:  see MEASURED below.

The task: reasoning-gym chain_sum (2 terms of 2 digits, + and -), the quickstart's questions. The
target is the column scratchpad (e.g. "7+8=15\n4+3+1=8\n=85"); the teacher writes the careless
lines (carries forgotten, smaller digit from the larger) on 60% of the problems [quickstart's rate],
and repeats each line with probability 0.3 [this config], so a demonstration is 2-6 lines. The reward
is the exact match of the answer line; the step checker is logged as reward/scratchpad_steps
(weight 0: it does not shape the reward).

MEASURED (warm start only, 300 held-out problems, 64 samples each, T = 1; 2-core Intel Xeon,
2026-11-27; `--config.total_steps=0 --config.sft.steps=N`):
  SFT steps   pass@1   pass@2   pass@4   pass@8   pass@16  pass@32  pass@64  greedy  maj@64
     600      52.1%    70.1%    83.3%    91.8%    96.5%    98.6%    99.7%   60.0%   65.3%   <- used
    1000      61.1%    77.2%    88.4%    95.2%    98.2%    99.5%   100.0%   61.3%   66.3%
  At 600 steps pass@1 is 52.1% and pass@64 99.7% (+47.6 points): inside the regime. The scratchpad
  makes the task easier to learn than claims_arith's bare answers (22.9% pass@1 at 1000 steps).

Tags: [quickstart] as configs/quickstart.py; [claims_arith] as configs/claims_arith.py; [this
config] chosen here.
"""
import ml_collections

from configs import claims_arith, common

SFT_STEPS = 600  # early stop of the careless warm start [this config; from MEASURED above]
REPEAT_RATE = 0.3  # probability that the teacher writes a line twice [this config]


def scratchpad_rewards(c: ml_collections.ConfigDict) -> None:
  """Exact match of the answer line; the step checker logged beside it with weight 0."""
  answer = dict(extract="scratchpad")
  c.reward.terms = [
      dict(name="exact_match", weight=1.0, options=answer),
      dict(name="scratchpad_steps", weight=0.0, options=dict(prefix=common.CHAIN_SUM_PREFIX)),
  ]
  c.reward.correctness = "exact_match"
  c.reward.correctness_options = ml_collections.ConfigDict(answer)
  c.reward.answer_extractor = "scratchpad"
  c.eval.steps_reward = "scratchpad_steps"  # cot_pass@k: answer and every step right
  c.eval.steps_reward_options = ml_collections.ConfigDict(dict(prefix=common.CHAIN_SUM_PREFIX))


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = claims_arith.get_config(None)  # model, task, GRPO settings, eval sizes [claims_arith]
  c.sft.steps = SFT_STEPS
  c.sft.teacher = "careless_scratchpad"
  c.sft.teacher_options = ml_collections.ConfigDict(dict(
      error_rate=0.6, repeat_rate=REPEAT_RATE, seed=0, prefix=common.CHAIN_SUM_PREFIX))
  c.rollout.max_new_tokens = 64  # room to grow: a careful scratchpad is 14-25 characters [this config]
  scratchpad_rewards(c)
  if arg == "cpu":
    common.cpu_variant(c)
    scratchpad_rewards(c)  # cpu_variant resets the rewards to bare-number matching
    c.eval.size = 16
    c.eval.num_samples = 4
  elif arg:
    raise ValueError(f"configs/claims_scratchpad.py: unknown argument {arg!r}; use no argument or "
                     "'cpu'")
  return c
