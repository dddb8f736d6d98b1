"""Column scratchpads (rlvr_jax.rewards.scratchpad): hand-worked lines, the careless variant, the
step checker, the answer extractor, the reward and the careless_scratchpad teacher."""
import numpy as np
import pytest

from rlvr_jax.rewards import REWARDS, extract_answer, scratchpad
from rlvr_jax.training import sft


@pytest.mark.parametrize("a, op, b, lines", [
    # 47 + 38: 7+8 = 15 (write 5, carry 1); 4+3+1 = 8; answer 85.
    (47, "+", 38, ["7+8=15", "4+3+1=8", "=85"]),
    # 95 + 7: 5+7 = 12 (carry 1); 9+0+1 = 10 (carry 1 becomes the leading digit); 102.
    (95, "+", 7, ["5+7=12", "9+0+1=10", "=102"]),
    # 52 - 38: 2 < 8, borrow: 12-8 = 4; pay it back: 5-1-3 = 1; 14.
    (52, "-", 38, ["12-8=4", "5-1-3=1", "=14"]),
    # 23 - 58 = -(58 - 23): 8-3 = 5; 5-2 = 3; -35.
    (23, "-", 58, ["8-3=5", "5-2=3", "=-35"]),
    # 100 - 1: 0 < 1 borrow: 10-1 = 9; 0-1 < 0 borrow again: 10-1-0 = 9; 1-1-0 = 0; 099 = 99.
    (100, "-", 1, ["10-1=9", "10-1-0=9", "1-1-0=0", "=99"]),
    (5, "-", 5, ["5-5=0", "=0"]),
])
def test_column_steps_by_hand(a, op, b, lines):
  assert scratchpad.column_steps(a, op, b) == lines


def test_every_careful_line_is_a_true_equation():
  for a in range(0, 120, 7):
    for b in range(0, 120, 5):
      for op in "+-":
        for line in scratchpad.column_steps(a, op, b)[:-1]:
          left, right = line.split("=")
          assert eval(left) == int(right), (a, op, b, line)  # pylint: disable=eval-used


def test_careless_lines_match_the_careless_teacher_arithmetic():
  # 47 + 38 without carries: 7+8=15 (write 5), 4+3=7 -> 75; 52 - 38 smaller-from-larger: 26.
  assert scratchpad.careless_steps(47, "+", 38) == ["7+8=15", "4+3=7", "=75"]
  assert scratchpad.careless_steps(52, "-", 38) == ["8-2=6", "5-3=2", "=26"]
  for a in range(0, 100, 3):
    for b in range(0, 100, 7):
      assert scratchpad.careless_steps(a, "+", b)[-1] == f"={sft.careless_add(a, b)}"
      assert scratchpad.careless_steps(a, "-", b)[-1] == f"={sft.careless_sub(a, b)}"


def test_step_checker_allows_repeats_and_catches_careless_steps():
  good = "7+8=15\n7+8=15\n4+3+1=8\n=85"  # one line written twice: still the careful scratchpad
  assert scratchpad.steps_ok(good, 47, "+", 38)
  assert scratchpad.steps_ok(" 7+8=15 \n\n4 + 3 + 1 = 8\n=85\n", 47, "+", 38)  # spaces, blank lines
  assert not scratchpad.steps_ok("7+8=15\n4+3=7\n=75", 47, "+", 38)  # carry forgotten
  assert not scratchpad.steps_ok("7+8=15\n4+3=7\n=85", 47, "+", 38)  # right answer, wrong step
  assert not scratchpad.steps_ok("7+8=15\n4+3+1=8", 47, "+", 38)  # no answer line
  assert not scratchpad.steps_ok("7+8=15\n4+3+1=8\n7+8=15\n=85", 47, "+", 38)  # not a repeat


def test_answer_extractor_takes_the_last_answer_line():
  assert extract_answer("7+8=15\n4+3+1=8\n=85", "scratchpad") == "85"
  assert extract_answer("8-3=5\n5-2=3\n=-35\n=-35", "scratchpad") == "-35"
  assert extract_answer("7+8=15\n4+3+1=8", "scratchpad") is None  # steps only: no answer
  assert extract_answer("=", "scratchpad") is None


def test_scratchpad_steps_reward_and_bad_question():
  prefix = "Q: "
  examples = [{"question": "Q: 47 + 38", "answer": "85"}] * 3
  texts = ["7+8=15\n4+3+1=8\n=85", "7+8=15\n4+3=7\n=75", "=85"]
  got = REWARDS["scratchpad_steps"](texts, examples, prefix=prefix)
  np.testing.assert_array_equal(got, [1.0, 0.0, 0.0])
  with pytest.raises(ValueError, match="not '<int> \\+ <int>'"):
    REWARDS["scratchpad_steps"](["=1"], [{"question": "Q: 2 * 3", "answer": "6"}], prefix=prefix)


def test_careless_scratchpad_teacher_is_deterministic_with_the_asked_rates():
  examples = [{"id": f"ex{i}", "question": f"{10 + i % 80} + {19 + i % 70}", "answer": "0"}
              for i in range(2000)]
  write = lambda ex: sft.TEACHERS["careless_scratchpad"](ex, target="{answer}", error_rate=0.6,
                                                         repeat_rate=0.3, seed=0)
  texts = [write(ex) for ex in examples]
  assert texts == [write(ex) for ex in examples]  # fixed per example
  careful = [scratchpad.steps_ok(t, *scratchpad.parse_question(ex["question"]))
             for t, ex in zip(texts, examples)]
  collapsed = [scratchpad.render(scratchpad._lines(t)) for t in texts]  # pylint: disable=protected-access
  carries = [scratchpad.column_steps(*scratchpad.parse_question(ex["question"]))
             != scratchpad.careless_steps(*scratchpad.parse_question(ex["question"])) for ex in examples]
  # Careless on ~60% of the examples; it only shows where a carry exists.
  wrong_rate = 1 - np.mean([c for c, k in zip(careful, carries) if k])
  assert 0.55 < wrong_rate < 0.65
  repeated = np.mean([len(t.split("\n")) - len(c.split("\n")) for t, c in zip(texts, collapsed)])
  assert 0.3 * 2.5 < repeated < 0.3 * 3.5  # ~0.3 extra lines per line, 3 lines per problem


def test_eval_steps_reward_gives_the_evaluator_a_step_checker():
  """config.eval.steps_reward names the checker; evaluate() then reports cot_pass@k."""
  from configs import common
  from rlvr_jax.training import loop
  cfg = common.base()
  cfg.eval.steps_reward = "scratchpad_steps"
  cfg.eval.steps_reward_options = dict(prefix="Q: ")
  check = loop.eval_options(cfg, None, None)["steps_ok_fn"]
  examples = [{"question": "Q: 47 + 38", "answer": "85"}] * 2
  np.testing.assert_array_equal(check(["7+8=15\n4+3+1=8\n=85", "7+8=15\n4+3=7\n=85"], examples),
                                [True, False])
  assert loop.eval_options(common.base(), None, None)["steps_ok_fn"] is None
