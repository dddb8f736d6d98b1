"""Column scratchpads for ``a + b`` / ``a - b``: the careful student's lines, a careless variant, a
step checker and the rewards built on them (issue 12: the scratchpad task for CoT-pass@k and for
the Dr. GRPO length-bias claim, whose incorrect responses need room to grow).

A scratchpad is one line per column, right to left, then the answer line, e.g. 47 + 38 and 52 - 38::

    7+8=15          2-8 needs a borrow: 12-8=4
    4+3+1=8         5-1-3=1          (the borrowed 1 is paid back)
    =85             =14

Addition pads the shorter number with zeros and writes the incoming carry as a third term; a final
carry becomes the answer's leading digit. Subtraction of a smaller from a larger number writes
``1d`` when the column borrows and ``-1`` when it pays a borrow back; for ``a < b`` the lines are
those of ``b - a`` and the answer carries the minus sign. Every line is a true equation.

The careless variant mirrors `rlvr_jax.training.sft.careless_add` / ``careless_sub``: it writes
``7+8=15`` then ``4+3=7`` (the carry forgotten, answer 75), or ``8-2=6`` then ``5-3=2`` (smaller digit
from larger, answer 26): each line is still a true equation, so only a checker that follows the
carries catches it. Repeated lines (a line written again right after itself) are allowed anywhere:
they are the filler that lets a response grow without changing its content.

`steps_ok(text, a, op, b)` is that checker: the lines, repeats removed, must be exactly the
careful scratchpad of ``a op b`` including its answer line. The final answer is what follows
``=`` on the last answer line: the ``scratchpad`` answer extractor of `rlvr_jax.rewards.extract`.
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.rewards.registry import RewardConfigError, register_reward

_BINARY = re.compile(r"^\s*(\d+)\s*([+-])\s*(\d+)\s*=?\s*$")


def parse_question(question: str, prefix: str = "") -> tuple[int, str, int]:
  """(a, op, b) of ``"<int> + <int>"`` / ``"<int> - <int>"`` (optionally ``=``), after ``prefix``."""
  text = str(question)
  if prefix and text.startswith(prefix):
    text = text[len(prefix):]
  m = _BINARY.match(text)
  if m is None:
    raise ValueError(f"scratchpad: question {question!r} is not '<int> + <int>' or '<int> - <int>'")
  return int(m.group(1)), m.group(2), int(m.group(3))


def _digits(x: int, width: int) -> list[int]:
  return [(x // 10 ** i) % 10 for i in range(width)]  # least significant first


def column_steps(a: int, op: str, b: int) -> list[str]:
  """The careful scratchpad of ``a op b`` (a, b >= 0): column lines, then ``=answer``."""
  if a < 0 or b < 0 or op not in "+-":
    raise ValueError(f"column_steps needs a, b >= 0 and op in '+-', got {a} {op} {b}")
  if op == "-" and a < b:
    lines = column_steps(b, "-", a)
    return lines[:-1] + ["=-" + lines[-1][1:]] if lines[-1] != "=0" else lines
  width = max(len(str(a)), len(str(b)))
  da, db = _digits(a, width), _digits(b, width)
  lines, carry = [], 0
  for x, y in zip(da, db):
    if op == "+":
      total = x + y + carry
      lines.append(f"{x}+{y}+{carry}={total}" if carry else f"{x}+{y}={total}")
      carry = total // 10
    else:
      top = x - carry
      borrow = int(top < y)
      left = f"{'1' if borrow else ''}{x}" + ("-1" if carry else "")
      lines.append(f"{left}-{y}={top + 10 * borrow - y}")
      carry = borrow
  answer = a + b if op == "+" else a - b
  return lines + [f"={answer}"]


def careless_steps(a: int, op: str, b: int) -> list[str]:
  """The careless scratchpad: carries forgotten (``+``) or the smaller digit taken from the larger
  (``-``); its answer is `sft.careless_add` / `sft.careless_sub` of the same numbers."""
  if op == "-" and a < b:
    lines = careless_steps(b, "-", a)
    return lines[:-1] + ["=-" + lines[-1][1:]] if lines[-1] != "=0" else lines
  width = max(len(str(a)), len(str(b)))
  lines, digits = [], []
  for x, y in zip(_digits(a, width), _digits(b, width)):
    if op == "+":
      lines.append(f"{x}+{y}={x + y}")
      digits.append(x + y)
    else:
      hi, lo = max(x, y), min(x, y)
      lines.append(f"{hi}-{lo}={hi - lo}")
      digits.append(hi - lo)
  # Column results placed without carrying; the top column keeps its full value ("4+8=12" -> "12").
  answer = sum((d % 10) * 10 ** i for i, d in enumerate(digits[:-1])) + digits[-1] * 10 ** (width - 1)
  return lines + [f"={answer}"]


def render(lines: Sequence[str], repeats: Sequence[int] | None = None) -> str:
  """Joins the lines with newlines, writing line i ``1 + repeats[i]`` times (the filler)."""
  repeats = repeats or [0] * len(lines)
  return "\n".join(line for line, r in zip(lines, repeats) for _ in range(1 + int(r)))


def _lines(text: str) -> list[str]:
  """Non-empty lines with spaces removed and immediate repeats collapsed."""
  out = []
  for line in str(text).split("\n"):
    line = line.replace(" ", "")
    if line and (not out or out[-1] != line):
      out.append(line)
  return out


def steps_ok(text: str, a: int, op: str, b: int) -> bool:
  """True iff ``text`` is the careful scratchpad of ``a op b`` (repeated lines allowed)."""
  return _lines(text) == column_steps(a, op, b)


def _questions(examples: Sequence[Mapping], prefix: str) -> list[tuple[int, str, int]]:
  out = []
  for i, example in enumerate(examples):
    if "question" not in example:
      raise RewardConfigError(f"example {i} has no 'question' field; keys: {sorted(example)}")
    out.append(parse_question(example["question"], prefix))
  return out


@register_reward("scratchpad_steps")
def scratchpad_steps_reward(completions: Sequence[str], examples: Sequence[Mapping], *,
                            prefix: str = "", correct: float = 1.0,
                            incorrect: float = 0.0) -> np.ndarray:
  """``correct`` when the completion is the careful scratchpad (every step and the answer), else
  ``incorrect``: the step checker as a reward, and the per-sample flag CoT-pass@k counts.
  A question that is not ``a + b`` / ``a - b`` raises ValueError naming it."""
  problems = _questions(examples, prefix)
  return np.array([correct if steps_ok(text, *abc) else incorrect
                   for text, abc in zip(completions, problems)], np.float32)
