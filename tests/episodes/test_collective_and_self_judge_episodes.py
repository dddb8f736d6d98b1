"""RLCCF's self-consistency-weighted collective label and SSR-Zero's self-judge score parsing,
hand-worked; the episodes themselves run in the :cpu config tests (configs/rlccf.py,
configs/ssr_zero.py)."""
from __future__ import annotations

import pytest

from rlvr_jax.episodes import collective, self_judge


def test_collective_label_weights_votes_by_self_consistency():
  policy = ["3", "3", "3", "5", "6", "7", "8", "9"]  # SC = 3/8
  peer = ["4", "4", "4", "3"]                        # SC = 3/4
  # Pooled votes would pick 3 (4 votes to 3). Weighted: score(3) = 3/8 * 3/8 + 3/4 * 1/4 = 0.328,
  # score(4) = 3/4 * 3/4 = 0.5625 -> 4.
  label, sc = collective.collective_label([policy, peer])
  assert label == "4" and sc == [0.375, 0.75]
  # Unparsed samples dilute their member: peer [4, None, None] has SC = freq(4) = 1/3, so
  # score(4) = 1/9 < score(3) = 1/2 * 1/2; with one None, 1/2 * 1/2 ties and the first seen wins.
  label, sc = collective.collective_label([["3", "3", "5", "6"], ["4", None, None]])
  assert label == "3" and sc == pytest.approx([0.5, 1 / 3])
  assert collective.collective_label([["5", "3", "3", "6"], ["4", None]])[0] == "3"
  assert collective.collective_label([["4", None], ["5", "3", "3", "6"]])[0] == "4"
  assert collective.collective_label([[None], [None, None]]) == (None, [0.0, 0.0])


def test_parse_score_takes_the_last_number_clipped_and_scaled():
  assert self_judge.parse_score("first 20, final 85") == pytest.approx(0.85)
  assert self_judge.parse_score("score: 140") == 1.0
  assert self_judge.parse_score("-5") == 0.0
  assert self_judge.parse_score("7.5", score_max=10) == pytest.approx(0.75)
  assert self_judge.parse_score("no number") is None
