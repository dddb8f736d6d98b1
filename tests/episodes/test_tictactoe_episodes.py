"""Tic-tac-toe for the two_seat_game episode: hand-worked games, illegal moves, parsing, rendering."""
import string

import numpy as np
import pytest

from rlvr_jax.episodes import games
from rlvr_jax.episodes.games import tictactoe as ttt

ALPHABET = set("0123456789+-*/=()., ?:<>\n" + string.ascii_letters)


def has_line(board, mark):
  lines = [(0, 1, 2), (3, 4, 5), (6, 7, 8), (0, 3, 6), (1, 4, 7), (2, 5, 8), (0, 4, 8), (2, 4, 6)]
  return any(all(board[i] == mark for i in line) for line in lines)


def play(moves, state=None):
  state = state or ttt.State()
  for m in moves:
    state = ttt.step(state, m)
  return state


# ------------------------------------------------------------------------------------------------
# Hand-worked games.


@pytest.mark.parametrize(
    "moves, winner, board",
    [
        # seat 0 (x) wins the top row: x 1,2,3; o 4,5.
        ([1, 4, 2, 5, 3], 0, "xxxoo...."),
        # seat 0 wins the first column: x 1,4,7; o 2,3.
        ([1, 2, 4, 3, 7], 0, "xoox..x.."),
        # seat 0 wins the main diagonal: x 1,5,9; o 2,3.
        ([1, 2, 5, 3, 9], 0, "xoo.x...x"),
        # seat 1 (o) wins the middle row: x 1,2,7; o 4,5,6.
        ([1, 4, 2, 5, 7, 6], 1, "xx.ooox.."),
        # seat 1 wins the last column: x 1,2,4; o 3,6,9.
        ([1, 3, 2, 6, 4, 9], 1, "xxox.o..o"),
        # seat 1 wins the anti-diagonal: x 1,2,4; o 3,5,7.
        ([1, 3, 2, 5, 4, 7], 1, "xxoxo.o.."),
    ])
def test_wins(moves, winner, board):
  s = play(moves)
  assert s.done and s.winner == winner and s.illegal_by is None
  assert s.board == board and s.moves == len(moves)
  assert ttt.outcome(s) == ((1.0, -1.0) if winner == 0 else (-1.0, 1.0))
  assert ttt.legal_moves(s) == []


def test_draw():
  # x o x / x o o / o x x : no line for either mark.
  s = play([1, 2, 3, 5, 4, 6, 8, 7, 9])
  assert s.board == "xoxxooox" + "x"
  assert s.done and s.winner is None and s.illegal_by is None and s.moves == 9
  assert ttt.outcome(s) == (0.0, 0.0)


def test_win_on_last_move_is_a_win_not_a_draw():
  # x's ninth-ply mark fills the board and completes the top row: x 6,7,1,2,3; o 4,5,8,9.
  s = play([6, 4, 7, 5, 1, 8, 2, 9, 3])
  assert s.board == "xxxooxxoo"
  assert s.done and s.winner == 0 and s.moves == 9 and ttt.outcome(s) == (1.0, -1.0)


def test_step_alternates_seats_and_places_marks():
  s = play([5])
  assert (s.board, s.to_move, s.moves, s.done) == ("....x....", 1, 1, False)
  s = ttt.step(s, 1)
  assert (s.board, s.to_move, s.moves, s.done) == ("o...x....", 0, 2, False)
  assert ttt.legal_moves(s) == [2, 3, 4, 6, 7, 8, 9]


# ------------------------------------------------------------------------------------------------
# Illegal moves end the game: the mover loses.


@pytest.mark.parametrize("prefix", [[], [5]])  # mover = seat 0, then seat 1
@pytest.mark.parametrize("text", ["0", "a", "", "   ", "x5"])
def test_unparseable_move_loses(prefix, text):
  before = play(prefix)
  mover = before.to_move
  s = ttt.step(before, ttt.parse_move(text))
  assert s.done and s.illegal_by == mover and s.winner == 1 - mover
  assert s.board == before.board  # nothing placed
  rewards = ttt.outcome(s)
  assert rewards[mover] == -1.0 and rewards[1 - mover] == 1.0


@pytest.mark.parametrize("move", [None, 0, 10, -1])
def test_out_of_range_move_loses(move):
  s = ttt.step(ttt.State(), move)
  assert s.done and s.illegal_by == 0 and s.winner == 1
  assert ttt.outcome(s) == (-1.0, 1.0)


def test_occupied_cell_loses():
  s = play([5, 1])
  s = ttt.step(s, 1)  # x plays onto o's cell
  assert s.done and s.illegal_by == 0 and s.winner == 1 and s.board == "o...x...."
  s = ttt.step(play([5]), 5)  # o plays onto x's cell
  assert s.done and s.illegal_by == 1 and s.winner == 0


def test_stepping_a_finished_game_raises():
  for finished in (play([1, 4, 2, 5, 3]), ttt.step(ttt.State(), None)):
    with pytest.raises(ValueError):
      ttt.step(finished, 9)


def test_outcome_of_unfinished_game_raises():
  with pytest.raises(ValueError):
    ttt.outcome(play([1, 2]))


# ------------------------------------------------------------------------------------------------
# Parsing and rendering.


@pytest.mark.parametrize(
    "text, want",
    [("5", 5), ("1", 1), ("9", 9), ("  7", 7), ("\n3 because", 3), ("42", 4), ("3x", 3),
     ("0", None), ("a", None), ("", None), (" ", None), ("x5", None), ("-1", None), (":5", None)])
def test_parse_move(text, want):
  assert ttt.parse_move(text) == want


def test_render_hand_worked():
  s = play([1, 3, 9])
  assert ttt.render(s) == "x.o\n...\n..x\no:"
  assert ttt.render(ttt.State()) == "...\n...\n...\nx:"


def test_render_alphabet_and_length_over_random_games():
  rng = np.random.default_rng(0)
  seen = 0
  for _ in range(200):
    s = ttt.State()
    while not s.done:
      text = ttt.render(s)
      assert set(text) <= ALPHABET, set(text) - ALPHABET
      assert len(text) <= 32
      assert text.endswith(ttt.MARKS[s.to_move] + ":")
      seen += 1
      legal = ttt.legal_moves(s)
      # Mostly legal play, sometimes an illegal move, so finished-by-illegal states occur too.
      move = None if rng.random() < 0.05 else legal[int(rng.integers(len(legal)))]
      s = ttt.step(s, move)
    assert set(ttt.render(s)) <= ALPHABET and len(ttt.render(s)) <= 32
  assert seen > 500


# ------------------------------------------------------------------------------------------------
# Outcomes and openings.


def test_outcome_is_zero_sum_over_random_games():
  rng = np.random.default_rng(1)
  results = set()
  for _ in range(300):
    s = ttt.initial_state(rng, random_opening_moves=int(rng.integers(0, 6)))
    while not s.done:
      legal = ttt.legal_moves(s)
      s = ttt.step(s, legal[int(rng.integers(len(legal)))])
    r = ttt.outcome(s)
    assert r[0] + r[1] == 0.0 and r[0] in (-1.0, 0.0, 1.0)
    results.add(r)
  assert results == {(1.0, -1.0), (-1.0, 1.0), (0.0, 0.0)}  # all three outcomes were reached


@pytest.mark.parametrize("n", [0, 1, 2, 5, 8, 20])
def test_random_openings_are_legal_unfinished_and_deterministic(n):
  boards = set()
  for seed in range(30):
    a = ttt.initial_state(np.random.default_rng(seed), random_opening_moves=n)
    b = ttt.initial_state(np.random.default_rng(seed), random_opening_moves=n)
    assert a == b
    assert not a.done and a.winner is None and a.illegal_by is None
    assert a.moves == a.board.count("x") + a.board.count("o") <= min(n, 8)
    # x moves first, so x has as many marks as o or one more; turn follows from that.
    assert a.board.count("x") - a.board.count("o") == a.to_move
    assert not has_line(a.board, "x") and not has_line(a.board, "o")
    boards.add(a.board)
  if n == 0:
    assert boards == {"........."}
  else:
    assert len(boards) > 1  # openings vary with the seed
  if n in (1, 2, 5):
    assert all(len(b) - b.count(".") == n for b in boards)


# ------------------------------------------------------------------------------------------------
# Registry.


def test_get_game():
  assert games.get_game("tictactoe") is ttt
  assert games.GAMES["tictactoe"].NUM_SEATS == 2 and ttt.MAX_MOVES == 9


def test_get_game_unknown_lists_valid_games():
  with pytest.raises(ValueError) as err:
    games.get_game("chess")
  assert "chess" in str(err.value) and "tictactoe" in str(err.value)
