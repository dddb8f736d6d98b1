"""``two_turn``: a first attempt, then a second attempt conditioned on it (SCoRe-style
self-correction, arXiv 2409.12917; docs/papers.md 2.7).

Turn 1: y1 ~ pi(. | x), G samples per prompt. Turn 2: y2 ~ pi(. | x, y1, instruction), one per y1.
Each trained turn is its own row (the turn-2 row's prompt holds x, y1 and the instruction), with
its own reward and group: turn-1 rows of prompt p form group p, turn-2 rows group P + p, so
group-baseline advantages compare attempts of the same turn. SCoRe's stage-II shaping
r^(y2) = r(y2) + alpha (r(y2) - r(y1)) is ``bonus=alpha`` (0: plain rewards).
Logged per step: accuracy of each turn, their difference, and the fractions of turn-2 rows that
went incorrect -> correct and correct -> incorrect.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode


def _first_turn(ctx: EpisodeContext, samples, prompts, examples) -> RolloutRecord:
  texts = ctx.decode(samples.tokens, samples.lengths)
  rows = [examples[p] for p in samples.prompt_index]
  record = RolloutRecord(
      prompts=[prompts[p] for p in samples.prompt_index], completions=samples.tokens,
      lengths=samples.lengths, group_ids=samples.prompt_index,
      rewards=np.zeros(len(rows), np.float32), behaviour_logp=samples.logprobs,
      finish=samples.finish, examples=rows)
  scores = ctx.score(texts, rows, group_ids=samples.prompt_index, lengths=samples.lengths,
                     record=record)
  return record.replace(rewards=scores.rewards, correct=scores.correct)


@register_episode("two_turn")
def two_turn(ctx: EpisodeContext, examples: Sequence[Mapping], prompts: Sequence[Sequence[int]],
             counts: Sequence[int] | None = None, *,
             instruction: str = "\nCheck it. Answer again: ", bonus: float = 0.0,
             train_first_turn: bool = True) -> RolloutRecord:
  """See the module docstring. ``train_first_turn=False`` keeps the turn-1 rows for the metrics
  but gives them loss mask 0 (only the correction is trained)."""
  first = ctx.sample(prompts, counts=counts)
  rec1 = _first_turn(ctx, first, prompts, examples)
  eos = set(ctx.tokenizer.eos_ids)
  suffix = ctx.encode(instruction)
  # Turn-2 prompt: x, y1 without its stop token, then the instruction (exact tokens, no re-encode).
  second_prompts = []
  for i, p in enumerate(first.prompt_index):
    y1 = first.tokens[i, :first.lengths[i]].tolist()
    while y1 and y1[-1] in eos:
      y1.pop()
    second_prompts.append(list(prompts[p]) + y1 + suffix)
  second = ctx.sample(second_prompts, num_samples=1)
  texts2 = ctx.decode(second.tokens, second.lengths)
  groups2 = first.prompt_index + len(prompts)  # row i continues turn-1 row i, of prompt p
  rec2 = RolloutRecord(
      prompts=second_prompts, completions=second.tokens, lengths=second.lengths,
      group_ids=groups2, rewards=np.zeros(len(second_prompts), np.float32),
      behaviour_logp=second.logprobs, finish=second.finish,
      turn_ids=np.ones(len(second_prompts), np.int32), examples=list(rec1.examples))
  scores2 = ctx.score(texts2, rec2.examples, group_ids=groups2, lengths=second.lengths,
                      record=rec2)
  r1, r2 = rec1.rewards, scores2.rewards
  rec2 = rec2.replace(rewards=r2 + float(bonus) * (r2 - r1), correct=scores2.correct)
  if not train_first_turn:
    rec1 = rec1.replace(loss_mask=np.zeros_like(rec1.loss_mask))
  c1, c2 = rec1.correct, rec2.correct
  ctx.log("accuracy_t1", c1.mean())
  ctx.log("accuracy_t2", c2.mean())
  ctx.log("delta_t1_t2", c2.mean() - c1.mean())
  ctx.log("incorrect_to_correct", np.mean(~c1 & c2))
  ctx.log("correct_to_incorrect", np.mean(c1 & ~c2))
  return RolloutRecord.concat([rec1, rec2], renumber_groups=False)
