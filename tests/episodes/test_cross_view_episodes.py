"""Co-Reward's cross-view vote (episodes/cross_view.py): the rule by hand, the rephrasers, errors."""
import numpy as np
import pytest

from rlvr_jax.episodes import cross_view


def test_each_view_is_rewarded_by_the_other_views_majority():
  """Prompt 0: view 1 answers 5, 5, 3; view 2 answers 3, 3, 3. View 1's label is view 2's
  majority (3), so only its third sample is rewarded; view 2's label is view 1's majority (5), so
  none of view 2's samples is. Prompt 1: view 2 has no parseable answer: view 1 gets no label and
  no reward; view 2's label is view 1's majority 7 (7, 7, 1), which nothing in view 2 matches."""
  answers1 = [["5", "5", "3"], ["7", "7", "1"]]
  answers2 = [["3", "3", "3"], [None, None, None]]
  labels1, labels2, r1, r2 = cross_view.cross_votes(answers1, answers2)
  assert labels1 == ["3", None] and labels2 == ["5", "7"]
  np.testing.assert_array_equal(r1, [[0, 0, 1], [0, 0, 0]])
  np.testing.assert_array_equal(r2, [[0, 0, 0], [0, 0, 0]])


def test_commute_keeps_the_answer_and_the_preamble():
  rephrase = cross_view.REPHRASERS["commute"]
  assert rephrase({"question": "Add: 12 + 34"}) == "Add: 34 + 12"
  assert rephrase({"question": "52 - 38 ="}) == "-38 + 52 ="
  assert eval("-38 + 52") == 52 - 38  # pylint: disable=eval-used
  with pytest.raises(ValueError, match="does not end in"):
    rephrase({"question": "2 * 3", "id": "q7"})


def test_field_view_names_the_missing_column():
  rephrase = cross_view.REPHRASERS["field"]
  assert rephrase({"question": "x", "question_rewrite": "x'"}) == "x'"
  with pytest.raises(ValueError, match="no second view in field 'question_rewrite'"):
    rephrase({"question": "x", "id": "row3"})
