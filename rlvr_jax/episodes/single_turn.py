"""``single_turn``: G samples per prompt, scored once. The episode every GRPO-family config uses."""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode


@register_episode("single_turn")
def single_turn(ctx: EpisodeContext, examples: Sequence[Mapping], prompts: Sequence[Sequence[int]],
                counts: Sequence[int] | None = None) -> RolloutRecord:
  """One group per prompt: ``counts[p]`` samples of prompt p (the config's G when None), each
  scored by the reward terms; group id = prompt index."""
  s = ctx.sample(prompts, counts=counts)
  texts = ctx.decode(s.tokens, s.lengths)
  rows = [examples[p] for p in s.prompt_index]
  record = RolloutRecord(
      prompts=[prompts[p] for p in s.prompt_index], completions=s.tokens, lengths=s.lengths,
      group_ids=s.prompt_index, rewards=np.zeros(len(rows), np.float32),
      behaviour_logp=s.logprobs, finish=s.finish, examples=rows)
  scores = ctx.score(texts, rows, group_ids=s.prompt_index, lengths=s.lengths, record=record)
  return record.replace(rewards=scores.rewards, correct=scores.correct,
                        token_rewards=scores.token_rewards)
