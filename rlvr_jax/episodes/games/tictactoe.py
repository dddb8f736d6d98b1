"""Tic-tac-toe as a text game for the ``two_seat_game`` episode.

Seat 0 plays ``x`` and moves first, seat 1 plays ``o``. The board is a string of 9 cells ("x", "o",
".") in row-major order; a move is a cell number 1-9. ``render`` writes the position for the seat
to move in the characters of the char-level CPU tokenizer (configs/common.ARITHMETIC_ALPHABET):

    x.o
    ...
    ..x
    o:

(three board rows, then the mark to play and a colon: 14 characters). ``parse_move`` reads the
first non-space character of a completion; anything but a digit naming an empty cell is an illegal
move, which ends the game as a loss for the mover (SPIRAL's rule for invalid actions).
"""
from __future__ import annotations

import dataclasses

import numpy as np

MAX_MOVES = 9
NUM_SEATS = 2
MARKS = ("x", "o")
LINES = ((0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6))


@dataclasses.dataclass(frozen=True)
class State:
  board: str = "." * 9
  to_move: int = 0  # seat to play
  moves: int = 0  # plies played (opening moves included)
  done: bool = False
  winner: int | None = None  # seat, or None for a draw / unfinished game
  illegal_by: int | None = None  # seat that made an illegal move


def legal_moves(state: State) -> list[int]:
  return [] if state.done else [i + 1 for i, c in enumerate(state.board) if c == "."]


def _winner(board: str) -> str | None:
  for a, b, c in LINES:
    if board[a] != "." and board[a] == board[b] == board[c]:
      return board[a]
  return None


def step(state: State, move: int | None) -> State:
  """The position after the seat to move plays ``move`` (None or a bad cell: it loses)."""
  if state.done:
    raise ValueError("step: the game is already over")
  mover, other = state.to_move, 1 - state.to_move
  if move is None or move not in legal_moves(state):
    return dataclasses.replace(state, done=True, winner=other, illegal_by=mover)
  board = state.board[:move - 1] + MARKS[mover] + state.board[move:]
  if _winner(board) is not None:
    return State(board, other, state.moves + 1, True, mover, None)
  if "." not in board:
    return State(board, other, state.moves + 1, True, None, None)
  return State(board, other, state.moves + 1, False, None, None)


def initial_state(rng: np.random.Generator, *, random_opening_moves: int = 0) -> State:
  """The empty board after ``random_opening_moves`` uniform legal moves that do not end the game."""
  state = State()
  for _ in range(int(random_opening_moves)):
    options = [m for m in legal_moves(state) if not step(state, m).done]
    if not options:
      break
    state = step(state, int(rng.choice(options)))
  return state


def render(state: State) -> str:
  b = state.board
  return f"{b[0:3]}\n{b[3:6]}\n{b[6:9]}\n{MARKS[state.to_move]}:"


def parse_move(text: str) -> int | None:
  text = text.lstrip()
  if not text or text[0] not in "123456789":
    return None
  return int(text[0])


def outcome(state: State) -> tuple[float, float]:
  """Zero-sum rewards of (seat 0, seat 1): +1 win, -1 loss, 0 draw."""
  if not state.done:
    raise ValueError("outcome: the game is not over")
  if state.winner is None:
    return 0.0, 0.0
  return (1.0, -1.0) if state.winner == 0 else (-1.0, 1.0)
