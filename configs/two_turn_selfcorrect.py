r"""Two-turn self-correction on the two_turn episode: a first attempt, then a second attempt that sees
the first and an instruction; both turns trained with GRPO advantages inside their own turn.

Paper: the setting of SCoRe (Kumar et al., "Training Language Models to Self-Correct via
Reinforcement Learning", arXiv 2409.12917; docs/papers.md 2.7). This config is the engine's
two-turn run with SCoRe's stage-II reward shaping; it is NOT yet a reproduction of SCoRe (whose
model is Gemini, not open): that, with stage I's first-turn KL, is the self-correction issue.

Reproduction card
  paper:     SCoRe: Gemini 1.0 Pro / 1.5 Flash on MATH, two attempts; +15.6 points of
             accuracy@t2 - accuracy@t1 on MATH [recall, not re-checked offline].
  command:   python -m experiments.run --config configs/two_turn_selfcorrect.py --workdir /runs/t2 \
               --config.model.path=/models/Qwen2.5-Math-1.5B-Instruct \
               --config.data.path=/data/math/train.jsonl --config.data.eval_path=/data/math500.jsonl
             CPU smoke run: python -m experiments.run --config configs/two_turn_selfcorrect.py:cpu \
               --workdir /tmp/two_turn
  hardware:  untested at full size; the :cpu variant takes ~1 minute on 2 CPU cores.
             Memory plan: mesh {data: 1, fsdp: 1, tensor: 1}, rollout.max_rows_per_call 128,
             algo.micro_batch_size 1, eval.batch_size 128, model.remat False fit 1 x H100-80GB [this
             config] (python -m experiments.memory --config configs/two_turn_selfcorrect.py).
  expected:  turn-2 accuracy above turn-1 accuracy after training (SCoRe's delta(t1, t2) > 0), with
             few correct -> incorrect edits.
  measured:  none (the :cpu variant is a 2-step smoke test with a random tiny model).

Metrics: episode/accuracy_t1, episode/accuracy_t2, episode/delta_t1_t2,
episode/incorrect_to_correct, episode/correct_to_incorrect; turn0/* and turn1/* per-turn means.
Tags: [paper] as printed; [recall] from memory of the paper; [this config] our choice.
"""
import ml_collections

from configs import common


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
  c = common.base()
  c.total_steps = 500  # [this config]
  common.hf_checkpoint(c)
  # Memory plan (python -m experiments.memory): Qwen2.5-Math-1.5B-Instruct on the card's hardware.
  c.hardware.update(dict(model="qwen2p5_math_1p5b", device="H100-80GB", count=1, memory_gib=80.0))
  common.local_files(c, answer_format="math")  # MATH rows with \boxed{} answers
  c.data.max_prompt_len = 1024

  c.episode.name = "two_turn"
  c.episode.options = ml_collections.ConfigDict(dict(
      instruction="\nThere might be an error in the solution above. Please correct it: ",  # [recall]
      bonus=10.0,  # alpha of r(y2) + alpha (r(y2) - r(y1)), SCoRe stage II [recall: alpha = 10]
      train_first_turn=True))

  c.rollout.prompts_per_step = 64  # [this config]
  c.rollout.num_samples = 4  # G first attempts per prompt [this config]
  c.rollout.max_new_tokens = 1024
  c.rollout.temperature = 1.0

  c.reward.terms = [dict(name="math_verify", weight=1.0)]
  c.reward.correctness = "math_verify"

  c.algo.advantage = "grpo"  # within each turn's group [this config; SCoRe uses REINFORCE]
  c.algo.loss = "ppo_clip"
  c.algo.agg_mode = "seq-mean-token-mean"
  c.algo.kl_coef = 0.01  # beta_1 [recall]
  c.algo.kl_estimator = "k3"
  c.optim.lr = 1e-6  # [this config]
  c.eval.size = 500

  if arg == "cpu":
    c.reward.terms = [dict(name="reasoning_gym", weight=1.0)]  # the CPU task's own verifier
    c.reward.correctness = "reasoning_gym"
    common.cpu_variant(c)
    c.episode.options.instruction = "\nagain: "  # fits the char-level alphabet
    c.algo.kl_coef = 0.0  # no reference model at smoke size
  elif arg:
    raise ValueError(f"configs/two_turn_selfcorrect.py: unknown argument {arg!r}; use no argument "
                     "or 'cpu'")
  return c
