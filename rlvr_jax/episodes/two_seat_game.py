"""``two_seat_game``: one policy plays both seats of a two-player text game to the end (SPIRAL-style
self-play, arXiv 2506.24119; docs/papers.md 2.3 / 2.8).

Each example of the step's batch starts one game (its content is not used; openings are drawn from
the step's rng, ``opening_moves`` random legal moves, so positions vary). All unfinished games
advance together: one sampler call per ply at batch "games still running". Every move is a row:
prompt = the rendered position for the seat to move, completion = the policy's move text,
``role_ids`` = seat, ``turn_ids`` = ply, ``group_ids`` = game. When a game ends, every row of a
seat gets that seat's zero-sum outcome (+1 win, -1 loss, 0 draw; an illegal move loses at once).
``correct`` marks legal moves. Pair it with the ``role_baseline`` advantage (SPIRAL's RAE).
The config's reward terms are not used: the game is the reward.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.episodes import games as games_lib
from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode


@register_episode("two_seat_game")
def two_seat_game(ctx: EpisodeContext, examples: Sequence[Mapping], prompts: Sequence[Sequence[int]],
                  counts: Sequence[int] | None = None, *, game: str = "tictactoe",
                  opening_moves: int = 0) -> RolloutRecord:
  """See the module docstring."""
  del prompts
  if counts is not None:
    raise ValueError("two_seat_game plays one game per example: use the 'uniform' allocator")
  g = games_lib.get_game(game)
  states = [g.initial_state(ctx.rng, random_opening_moves=int(opening_moves)) for _ in examples]
  moves: list[dict] = []
  for _ in range(g.MAX_MOVES):
    active = [i for i, s in enumerate(states) if not s.done]
    if not active:
      break
    position = [ctx.prompt_fn({"question": g.render(states[i]), "answer": ""}) for i in active]
    s = ctx.sample(position, num_samples=1)
    texts = ctx.decode(s.tokens, s.lengths)
    for j, i in enumerate(active):
      state = states[i]
      move = g.parse_move(texts[j])
      moves.append(dict(game=i, seat=state.to_move, ply=state.moves, prompt=position[j],
                        tokens=s.tokens[j], length=s.lengths[j], logp=s.logprobs[j],
                        finish=s.finish[j], legal=move in g.legal_moves(state)))
      states[i] = g.step(state, move)
  if any(not s.done for s in states):
    raise RuntimeError(f"game {game!r} did not end within MAX_MOVES={g.MAX_MOVES} plies")
  outcomes = [g.outcome(s) for s in states]
  rewards = np.asarray([outcomes[m["game"]][m["seat"]] for m in moves], np.float32)
  record = RolloutRecord(
      prompts=[m["prompt"] for m in moves], completions=np.stack([m["tokens"] for m in moves]),
      lengths=np.asarray([m["length"] for m in moves]), group_ids=[m["game"] for m in moves],
      rewards=rewards, correct=np.asarray([m["legal"] for m in moves]),
      behaviour_logp=np.stack([m["logp"] for m in moves]),
      finish=np.asarray([m["finish"] for m in moves]),
      role_ids=[m["seat"] for m in moves], turn_ids=[m["ply"] for m in moves],
      examples=[examples[m["game"]] for m in moves])
  first = np.asarray([o[0] for o in outcomes])
  ctx.log("seat0_win_rate", np.mean(first > 0))
  ctx.log("seat1_win_rate", np.mean(first < 0))
  ctx.log("draw_rate", np.mean(first == 0))
  ctx.log("illegal_move_rate", 1.0 - record.correct.mean())
  ctx.log("game_plies", len(moves) / max(len(states), 1))
  return record
