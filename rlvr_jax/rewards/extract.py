"""Answer extraction and normalisation, shared by the verifiers and the majority vote.

Extraction order of ``extract_answer(text, "auto")``: the last ``<answer>...</answer>`` block (and,
inside it, a ``\\boxed{}`` if there is one), else the last ``\\boxed{...}``, else the last number.
Normalisation makes surface variants of one answer compare equal as strings ("$1,000.$",
"1000", "\\text{1000}"); it is not a math-equivalence check (``math_verify`` is).
"""
from __future__ import annotations

import re
from typing import Callable

_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")
_BOX_COMMANDS = ("\\boxed", "\\fbox")


def extract_tag(text: str, tag: str = "answer") -> str | None:
  """Content of the last ``<tag>...</tag>`` block, stripped; None if there is none."""
  matches = re.findall(rf"<{tag}>(.*?)</{tag}>", text, flags=re.DOTALL)
  return matches[-1].strip() if matches else None


def _balanced(text: str, start: int) -> str | None:
  """Content of the brace group opening at ``text[start] == '{'``, None if unbalanced."""
  depth = 0
  for i in range(start, len(text)):
    if text[i] == "{":
      depth += 1
    elif text[i] == "}":
      depth -= 1
      if depth == 0:
        return text[start + 1 : i]
  return None


def extract_boxed(text: str) -> str | None:
  """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``), nested braces ok."""
  best, best_pos = None, -1
  for command in _BOX_COMMANDS:
    pos = text.rfind(command)
    if pos <= best_pos:
      continue
    rest = pos + len(command)
    while rest < len(text) and text[rest] == " ":
      rest += 1
    if rest < len(text) and text[rest] == "{":
      content = _balanced(text, rest)
    elif rest > pos + len(command):  # "\boxed 5": the token after the space
      content = re.match(r"[^\s$]*", text[rest:]).group(0)
    else:
      content = None
    if content is not None:
      best, best_pos = content.strip(), pos
  return best


def extract_last_number(text: str) -> str | None:
  """The last number in ``text`` ("-3", "1,000", "2.5", "3/4"), commas removed; None if none."""
  matches = _NUMBER.findall(text)
  if not matches:
    return None
  return matches[-1].rstrip(",").replace(",", "")


def _auto(text: str) -> str | None:
  tagged = extract_tag(text)
  if tagged is not None:
    boxed = extract_boxed(tagged)
    return boxed if boxed is not None else tagged
  boxed = extract_boxed(text)
  if boxed is not None:
    return boxed
  return extract_last_number(text)


def extract_scratchpad(text: str) -> str | None:
  """What follows ``=`` on the last line starting with ``=`` (`rlvr_jax.rewards.scratchpad`)."""
  for line in reversed([l.replace(" ", "") for l in str(text).split("\n")]):
    if line.startswith("="):
      return line[1:] or None
  return None


EXTRACTORS: dict[str, Callable[[str], str | None]] = {
    "auto": _auto,
    "scratchpad": extract_scratchpad,
    "answer_tag": extract_tag,
    "boxed": extract_boxed,
    "last_number": extract_last_number,
    "none": lambda text: text.strip(),
}


def extract_answer(text: str, mode: str = "auto") -> str | None:
  """The answer span of a completion with extractor ``EXTRACTORS[mode]``; None if not found."""
  if mode not in EXTRACTORS:
    raise ValueError(f"unknown answer extractor {mode!r}; choose one of {sorted(EXTRACTORS)}")
  return EXTRACTORS[mode](text)


def _canonical_number(s: str) -> str | None:
  if _THOUSANDS.match(s):
    s = s.replace(",", "")
  try:
    value = float(s)
  except ValueError:
    return None
  if value != value or value in (float("inf"), float("-inf")):
    return None
  if value == int(value) and abs(value) < 1e15:
    return str(int(value))
  return repr(value)


def normalize_answer(answer: str | None) -> str | None:
  """Canonical string form of an answer for exact comparison (None stays None).

  Strips math delimiters, ``\\text{}``, ``\\left``/``\\right``, spacing commands, a trailing period,
  surrounding whitespace and case; writes numbers canonically ("1,000.0" -> "1000", "0.50" -> "0.5")
  and ``\\frac{a}{b}`` of integers as "a/b".
  """
  if answer is None:
    return None
  s = answer.strip()
  boxed = extract_boxed(s)
  if boxed is not None and s.startswith(_BOX_COMMANDS):
    s = boxed
  s = s.strip().strip("$").strip()
  s = re.sub(r"\\(?:text|textbf|mathrm|mbox)\{([^{}]*)\}", r"\1", s)
  s = re.sub(r"\\(?:left|right)\b", "", s)
  s = re.sub(r"\\[,!;: ]", "", s)
  s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
  s = re.sub(r"\\frac\{(-?\d+)\}\{(\d+)\}", r"\1/\2", s)
  s = s.rstrip(".").strip()
  s = re.sub(r"\s+", " ", s).lower()
  number = _canonical_number(s)
  return number if number is not None else s
