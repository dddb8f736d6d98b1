r"""Quickstart: imitate a careless teacher, then GRPO against a verifier; 2-digit add/subtract, 2 CPU cores.

Reproduction card
  paper:     GRPO (DeepSeekMath, arXiv 2402.03300) on a procedurally generated task (reasoning-gym
             `chain_sum`, 2 terms of 2 digits, + and -), with a tiny character-level
             Qwen2-architecture model (0.81M params) trained from scratch. Fully offline.
  command:   python -m experiments.run --config configs/quickstart.py --workdir /tmp/rlvr_quickstart
  hardware:  2 CPU cores (no accelerator); about 4-5 minutes end to end.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 512,
             algo.micro_batch_size 512, eval.batch_size 256, model.remat False fit 1 x CPU [this
             config: 8 GiB of RAM assumed]
             (python -m experiments.memory --config configs/quickstart.py).
  expected:  held-out greedy accuracy after RL at least 10 points above before RL (500 problems).
  measured:  2026-11-22, 2-core AMD EPYC, 4m10s wall: warm start (2000 steps, 174 s) greedy 77.8%,
             pass@8 97.6%; after 60 GRPO steps greedy 97.4% (+19.6 points, stderr 0.7), pass@8
             99.6%, maj@8 95.6%. A fresh clone with the compilation cache disabled: 3m49s, same
             numbers (the run is deterministic); SIGTERM at step 26 then the same command again
             resumed from the step-27 checkpoint and finished at 97.4%.
             2026-11-27, 2-core Intel Xeon, after the engine-slots change: greedy 79.0% -> 93.4%
             (+14.4 points, stderr 1.1), pass@8 96.6% -> 99.4%. The pre-change commit 5acbd40 on
             the same machine gives the same numbers, step for step: XLA:CPU's float results
             differ between the two processors, and 2000 SFT steps plus sampling amplify that.

The pipeline
  1. Tokenizer: characters of the arithmetic alphabet (no training needed).
  2. Warm start (SFT, cached in <workdir>/sft): 2000 steps of 64 (question, answer) pairs written
     by the "careless_arithmetic" teacher (`rlvr_jax.training.sft`): on 60% of the problems (fixed
     per problem) it forgets carries ("78 + 45 = 113") or takes the smaller digit from the larger
     instead of borrowing ("52 - 38 = 26"). The model learns both behaviours; since only
     carry/borrow problems can be wrong, its greedy answers are right on 78% of held-out problems
     while its samples contain the correct column rule on almost all of them (pass@8 98%).
  3. GRPO, 60 steps: 64 prompts x G=8 samples at temperature 1, binary exact-match reward, group
     mean/std advantages, PPO-clip on-policy (one epoch), DAPO dynamic sampling (groups whose 8
     rewards agree are dropped and refilled), AdamW lr 5e-5 with cosine decay, no KL.
  4. Held-out evaluation before and after (500 problems disjoint from training; greedy accuracy,
     pass@k, maj@k) -> eval_before.json, eval.json; the final line prints both.

This is RLVR's usual situation in miniature: imitation of imperfect demonstrations, then a verifier
rewards the behaviour the teacher showed only sometimes. RL does not teach a new skill here; it
selects one the warm start already samples (the gap between pass@8 and greedy).

What we tried (same model and task, 500 held-out problems, this machine):
  - Reference-answer warm start (teacher "template"). 600 SFT steps: greedy 22%, pass@8 65%;
    1500 steps: greedy 61.4%, pass@8 91.4%. GRPO from the 1500-step model: +5.0 points (300 steps,
    32 prompts, T=0.5, lr 2e-5, 3 min) and +6.4 points (200 steps, 64 prompts, T=0.5, lr 3e-5,
    5 min); from the 600-step model 150 steps at G=16, lr 5e-5: -0.2. Adam learning rates of 1e-4
    and above (T=1) or 2e-4 (T=0.5-0.6) collapsed greedy accuracy to 2-50% within 100 steps.
  - A diagnostic: GRPO on a fixed set of 64 training prompts (lr 1e-4) raised their sampled
    accuracy from 0.40 to 0.65 in 40 steps while held-out greedy fell from 61% to 34%: with a
    clean warm start the remaining errors need new arithmetic, and per-problem policy gradients
    memorise rather than generalise at this scale. A careless teacher leaves errors that one shared
    rule fixes, which RL finds in tens of steps.
  - With the careless teacher, 150 GRPO steps reach 98.0% (+20.2); 60 steps keep the run short.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  # Memory plan (python -m experiments.memory): the card's hardware.
  c.hardware.update(dict(device="CPU", count=1, memory_gib=8.0))
  c.seed = 0
  common.tiny_model(c, hidden=128, layers=4, heads=4, kv_heads=2, mlp=384)
  c.tokenizer.kind = "char"
  c.tokenizer.alphabet = common.ARITHMETIC_ALPHABET

  c.data.train = ml_collections.ConfigDict(dict(
      source="reasoning_gym", name="chain_sum", size=20000, seed=0,
      kwargs=dict(min_terms=2, max_terms=2, min_digits=2, max_digits=2)))
  c.data.template = "plain"
  c.data.template_options = ml_collections.ConfigDict(dict(
      format="{question}",
      strip_prefix=common.CHAIN_SUM_PREFIX))
  c.data.max_prompt_len = 32

  # Binary exact match of the whole completion (the model answers with the bare number). Not
  # reasoning-gym's chain_sum scorer: it gives partial credit (0.6-0.75) to any string containing
  # the answer ("-288" for -28), which the policy learns to exploit by not stopping.
  c.reward.terms = [dict(name="exact_match", weight=1.0, options=dict(extract="none"))]
  c.reward.correctness = "exact_match"
  c.reward.correctness_options = ml_collections.ConfigDict(dict(extract="none"))
  c.reward.answer_extractor = "none"

  c.sft.steps = 2000
  c.sft.batch_size = 64
  c.sft.target = "{answer}"
  c.sft.teacher = "careless_arithmetic"
  c.sft.teacher_options = ml_collections.ConfigDict(dict(
      error_rate=0.6, seed=0, prefix=common.CHAIN_SUM_PREFIX))

  c.rollout.prompts_per_step = 64  # P
  c.rollout.num_samples = 8  # G
  c.rollout.temperature = 1.0
  c.rollout.max_new_tokens = 8

  c.algo.advantage = "grpo"
  c.algo.loss = "ppo_clip"
  c.algo.agg_mode = "seq-mean-token-mean"
  c.algo.epochs = 1
  # Dynamic sampling on the exact-match reward (here reward and accuracy are the same 0/1 value).
  common.dynamic_sampling(c, metric="accuracy", max_gen_batches=8)

  c.optim.lr = 5e-5
  c.optim.warmup_steps = 5
  c.optim.schedule = "cosine"
  c.optim.min_lr_ratio = 0.0
  c.total_steps = 60

  c.eval.size = 500
  c.eval.num_samples = 8
  c.eval.every = 20
  c.eval.every_size = 500
  c.checkpoint.every = 20
  if arg == "cpu":
    common.cpu_variant(c)
    # A 2-step smoke run from a random model: every group scores 0, so dynamic sampling would mask
    # the whole batch; train on it as plain GRPO instead.
    c.batch.builders = ()
  return c
