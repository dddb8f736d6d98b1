"""Warm-start teachers (rlvr_jax.training.sft.TEACHERS): the reference template and the careless
arithmetic demonstrator, checked against hand-worked columns."""
import ml_collections
import pytest

from rlvr_jax.training import sft

PREFIX = "State the final answer to the following arithmetic problem: "


def _ex(question, answer, i=0):
  return {"question": PREFIX + question, "answer": answer, "id": f"chain_sum:0:{i}"}


@pytest.mark.parametrize("a,b,want", [
    (78, 45, 113),  # 8+5=13 -> 3, carry dropped; 7+4=11
    (20, 56, 76),  # no carry: same as a + b
    (99, 99, 188),
    (5, 7, 12),  # a single column keeps its full sum
    (123, 989, 1002),  # 3+9 -> 2, 2+8 -> 0, 1+9 = 10
])
def test_careless_add_forgets_every_carry(a, b, want):
  assert sft.careless_add(a, b) == want


@pytest.mark.parametrize("a,b,want", [
    (52, 38, 26),  # |2-8| = 6, 5-3 = 2 (correct: 14)
    (42, 25, 23),  # correct: 17
    (38, 52, -26),  # a < b: -(52 ~ 38)
    (15, 43, -32),  # correct: -28
    (57, 23, 34),  # no borrow: same as a - b
    (40, 40, 0),
])
def test_careless_sub_takes_smaller_from_larger(a, b, want):
  assert sft.careless_sub(a, b) == want


def _teacher(**options):
  cfg = ml_collections.ConfigDict(dict(target="{answer}", teacher="careless_arithmetic",
                                       teacher_options=dict(prefix=PREFIX, **options)))
  return sft.make_teacher(cfg)


def test_careless_teacher_error_rate_and_determinism():
  teacher = _teacher(error_rate=0.6, seed=0)
  # 78 + 45 always has a carry: the slip shows on about 60% of the examples (2000 ids: std ~1.1%).
  outs = [teacher(_ex("78 + 45 =", "123", i)) for i in range(2000)]
  assert set(outs) == {"123", "113"}
  frac = outs.count("113") / len(outs)
  assert 0.56 < frac < 0.64, frac
  assert outs == [teacher(_ex("78 + 45 =", "123", i)) for i in range(2000)]  # fixed per example
  # A problem without carries is always right; error_rate 0 is the reference teacher.
  assert {teacher(_ex("20 + 56 =", "76", i)) for i in range(50)} == {"76"}
  assert {_teacher(error_rate=0.0)(_ex("78 + 45 =", "123", i)) for i in range(50)} == {"123"}
  assert {_teacher(error_rate=1.0)(_ex("15 - 43 =", "-28", i)) for i in range(50)} == {"-32"}


def test_template_teacher_is_the_default():
  cfg = ml_collections.ConfigDict(dict(target="<answer>{answer}</answer>"))
  assert sft.make_teacher(cfg)(_ex("1 + 2 =", "3")) == "<answer>3</answer>"


def test_bad_teacher_and_bad_question_are_named():
  cfg = ml_collections.ConfigDict(dict(target="{answer}", teacher="nope"))
  with pytest.raises(ValueError, match="config.sft.teacher='nope'"):
    sft.make_teacher(cfg)
  with pytest.raises(ValueError, match="chain_sum:0:7"):
    _teacher(error_rate=1.0)(_ex("1 + 2 + 3 =", "6", 7))
