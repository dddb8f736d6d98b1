"""Episodes, rollout records, batch builders and allocators: the slots a paper plugs into.

* ``EPISODES`` (``register_episode``): ``fn(ctx, examples, prompts, counts, **options) ->
  RolloutRecord``; ``config.episode.name`` / ``.options``. Shipped: ``single_turn`` (GRPO family),
  ``two_turn`` (a second attempt conditioned on the first, SCoRe-style), ``two_seat_game`` (one
  policy plays both seats of a text game, SPIRAL-style), ``cross_view`` (Co-Reward: two views of
  each question, each rewarded by the other's majority answer), ``collective_vote`` (RLCCF: the
  policy's samples rewarded by a self-consistency-weighted vote with a frozen peer policy),
  ``self_judge`` (SSR-Zero: the policy rates its own responses through a judging prompt),
  ``rehearsal`` (DPH-RL: prompts the initial policy solves are trained only by a forward-KL /
  JS penalty on its pre-drawn samples).
* `RolloutRecord` (record.py): one row per trained sequence, read by everything downstream.
* `EpisodeContext` (context.py): sample (per-prompt counts, overrides, forced prefixes, behaviour
  log-probs), score (reward terms, token statistics), log-probs (current / reference policy).
* ``BATCH_BUILDERS`` / ``ALLOCATORS`` (selection.py): ``dynamic_sampling``, ``vote_subsample``, ``replay``,
  ``trajectory_select`` (TraPO);
  ``uniform``, ``by_success_rate``.

``docs/adding_a_method.md`` shows how to add each kind with a 20-line example.
"""
from rlvr_jax.episodes import (collective, cross_view, rehearsal, self_judge,  # noqa: F401
                               single_turn, two_seat_game, two_turn)
from rlvr_jax.episodes.context import EpisodeContext, Samples, Scores
from rlvr_jax.episodes.record import RolloutRecord, group_index
from rlvr_jax.episodes.registry import EPISODES, get_episode, register_episode
from rlvr_jax.episodes.selection import (ALLOCATORS, BATCH_BUILDERS, BuilderContext, example_key,
                                         get_allocator, parse_builders, register_allocator,
                                         register_builder)

__all__ = ["EPISODES", "register_episode", "get_episode", "RolloutRecord", "group_index",
           "EpisodeContext", "Samples", "Scores", "BATCH_BUILDERS", "ALLOCATORS", "BuilderContext",
           "register_builder", "register_allocator", "parse_builders", "get_allocator",
           "example_key"]
