"""Two-player text games for the ``two_seat_game`` episode: a flat registry of game modules.

A game module provides ``initial_state(rng, *, random_opening_moves)``, ``render(state) -> str``
(the prompt of the seat to move), ``parse_move(text) -> move | None``, ``legal_moves(state)``,
``step(state, move) -> state`` (an illegal move ends the game, the mover losing),
``outcome(state) -> (reward seat 0, reward seat 1)`` (zero-sum), ``MAX_MOVES`` and ``NUM_SEATS``;
states have ``done``, ``to_move`` and ``moves``.
"""
from rlvr_jax.episodes.games import tictactoe

GAMES = {"tictactoe": tictactoe}


def get_game(name: str):
  if name not in GAMES:
    raise ValueError(f"unknown game {name!r}; choose one of {sorted(GAMES)}")
  return GAMES[name]
