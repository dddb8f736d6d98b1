"""Turning raw rows (JSONL lines, Parquet rows, TFDS records) into task examples.

Every task source yields plain dicts ``{'question', 'answer', 'metadata', 'task', 'id'}``. Row-based
datasets come in a few well-known layouts, which this module recognises:

* GSM8K (Cobbe et al., 2021, arXiv:2110.14168): ``{'question', 'answer'}`` where the answer column holds
  the worked solution followed by ``#### <final answer>``.
* MATH (Hendrycks et al., 2021, arXiv:2103.03874): ``{'problem', 'solution', ...}`` where the final
  answer is the last ``\\boxed{...}`` of the solution; MATH-500-style files also carry an explicit
  ``answer`` column, which then wins.
* plain: a question column and an answer column holding the final answer.
* conversational (TRL's prompt-only format): ``prompt`` is a list of ``{'role', 'content'}``
  messages ending with a user turn. The example's question is then a ``Conversation``: the text of
  that last user turn, carrying the whole message list for the ``chat`` template (templates.py).
* verl's RL Parquet files: ``prompt`` is such a message list and the final answer sits in
  ``reward_model.ground_truth`` (found without an ``answer_key``); ``data_source``, ``extra_info``
  and the other columns go to the metadata.

``question_key`` / ``answer_key`` may be dotted (``reward_model.ground_truth``) to reach into nested
columns; a column whose own name contains the dots wins.

Rows that cannot be used (not an object, missing or malformed question, no recoverable answer) are
counted and skipped; the caller logs one summary naming the file and the offending lines, and a
source left with no rows raises ``ValueError``.
"""
from __future__ import annotations

import collections
import dataclasses
import hashlib
import re
from typing import Any, Iterable, Mapping

from absl import logging

ANSWER_FORMATS = ("auto", "plain", "gsm8k", "math")
# Question columns tried, in order, when the config does not name one (GSM8K, MATH, TRL / verl).
DEFAULT_QUESTION_KEYS = ("question", "problem", "prompt")
# Where verl's RL Parquet files keep the gold answer; tried when no 'answer' column is present.
VERL_ANSWER_KEY = "reward_model.ground_truth"
_MISSING = object()
_GSM8K_MARK = "####"
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\b")


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (or ``\\fbox{...}``, or ``\\boxed 5``) in ``text``.

    Braces are matched by depth so nested groups such as ``\\boxed{\\frac{1}{2}}`` survive; returns
    None when there is no box or its braces never close.
    """
    matches = list(_BOX_RE.finditer(text))
    if not matches:
        return None
    rest = text[matches[-1].end():]
    if rest.startswith("{"):
        depth = 0
        for pos, char in enumerate(rest):
            if char == "{":
                depth += 1
            elif char == "}":
                depth -= 1
                if depth == 0:
                    return rest[1:pos].strip()
        return None
    # "\boxed 5": the token up to the next whitespace or closing '$'.
    token = rest.lstrip().split("$")[0].split()
    return token[0] if token and rest[:1].isspace() else None


def gsm8k_answer(text: str) -> str | None:
    """Final answer of a GSM8K solution: the text after the last '####', thousands commas removed."""
    if _GSM8K_MARK not in text:
        return None
    answer = text.rsplit(_GSM8K_MARK, 1)[1].strip().replace(",", "")
    return answer or None


def normalize_question(question: str) -> str:
    """Whitespace-collapsed, case-folded question text: the key used for overlap checks."""
    return " ".join(question.split()).casefold()


def hash_fraction(question: str) -> float:
    """A stable number in [0, 1) from the question text (same on every host and Python run)."""
    digest = hashlib.sha256(normalize_question(question).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


@dataclasses.dataclass
class RowSpec:
    """How to read question and answer out of a row (see the module docstring for formats)."""

    question_key: str | None = None  # None: first of DEFAULT_QUESTION_KEYS present in the row
    answer_key: str | None = None  # None: 'answer' if present, else the boxed answer of 'solution'
    answer_format: str = "auto"
    solution_key: str = "solution"

    def __post_init__(self):
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(
                f"answer_format={self.answer_format!r} is not one of {ANSWER_FORMATS}")


class Conversation(str):
    """A chat prompt: the text of its last user turn, carrying the whole message list.

    Code that treats questions as text (overlap checks, question hashes, rewards, logs) sees the
    user's question; the ``chat`` template renders ``messages`` (system and earlier turns kept), and
    the non-chat templates accept it only when it is a single user turn (templates.py).
    """

    messages: tuple[dict, ...]

    def __new__(cls, messages: Iterable[Mapping[str, Any]]):
        messages = tuple(dict(m) for m in messages)
        if not messages or messages[-1].get("role") != "user":
            raise ValueError("a Conversation must end with a user message")
        self = super().__new__(cls, messages[-1]["content"])
        self.messages = messages
        return self

    def __reduce__(self):  # pickle / deepcopy keep the messages, not just the text
        return (Conversation, ([dict(m) for m in self.messages],))

    def __repr__(self) -> str:
        return f"Conversation({list(self.messages)!r})"


def lookup(row: Mapping[str, Any], key: str) -> Any:
    """``row[key]``, or for a dotted key the nested value (``'reward_model.ground_truth'``);
    ``_MISSING`` when absent. A column literally named ``key`` wins over the nested path."""
    if key in row:
        return row[key]
    node: Any = row
    for part in key.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return _MISSING
        node = node[part]
    return node


def parse_messages(value: Any, key: str) -> tuple[Conversation | None, str]:
    """A message-list question column -> (Conversation, '') or (None, reason it is unusable)."""
    if not value:
        return None, f"question column {key!r} is an empty message list"
    messages = []
    for i, message in enumerate(value):
        if not isinstance(message, Mapping):
            return None, (f"question column {key!r}: message {i} is a {type(message).__name__}, "
                          "not a {'role', 'content'} object")
        role, content = _as_text(message.get("role")), _as_text(message.get("content"))
        if not isinstance(role, str) or not isinstance(content, str):
            return None, (f"question column {key!r}: message {i} needs string 'role' and "
                          f"'content' (got {type(role).__name__}, {type(content).__name__})")
        # Parquet structs give every message every field; the unused ones come back as None.
        extra = {k: _plain_value(v) for k, v in message.items()
                 if k not in ("role", "content") and v is not None}
        messages.append({"role": role, "content": content, **extra})
    if messages[-1]["role"] != "user":
        return None, (f"question column {key!r}: the last message has role "
                      f"{messages[-1]['role']!r}; a prompt must end with a user turn")
    if not messages[-1]["content"].strip():
        return None, f"question column {key!r}: the last user message is empty"
    return Conversation(messages), ""


def _as_text(value: Any) -> Any:
    # TFDS Text features arrive as bytes.
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _plain_value(value: Any) -> Any:
    """Metadata values as plain Python (bytes decoded, numpy scalars/arrays unwrapped)."""
    value = _as_text(value)
    if hasattr(value, "tolist"):
        value = value.tolist()
    return value


def _extract_answer(row: Mapping[str, Any], spec: RowSpec) -> tuple[str | None, str]:
    """(answer or None, reason it failed)."""
    # Without an explicit answer_key a null 'answer' (a MATH row in a mixed Parquet file) falls
    # back to the solution's boxed answer; rows without 'answer' try verl's ground truth.
    answer_key = spec.answer_key
    if answer_key is None:
        if row.get("answer") is not None:
            answer_key = "answer"
        elif lookup(row, VERL_ANSWER_KEY) is not _MISSING:
            answer_key = VERL_ANSWER_KEY
    raw = _MISSING if answer_key is None else lookup(row, answer_key)
    if raw is not _MISSING:
        raw = _as_text(raw)
        if raw is None:
            return None, f"answer column {answer_key!r} is null"
        if isinstance(raw, (list, tuple, Mapping)):
            return None, (f"answer column {answer_key!r} is a {type(raw).__name__}, not a string "
                          "or number")
        raw = str(raw)
        fmt = spec.answer_format
        if fmt == "auto":
            fmt = "gsm8k" if _GSM8K_MARK in raw else "plain"
        if fmt == "gsm8k":
            answer = gsm8k_answer(raw)
            return answer, f"no '####' final answer in column {answer_key!r}"
        if fmt == "math":
            answer = last_boxed(raw)
            return answer, f"no \\boxed{{}} answer in column {answer_key!r}"
        answer = raw.strip()
        return (answer or None), f"empty answer column {answer_key!r}"
    if spec.answer_key is not None:
        return None, f"missing answer column {spec.answer_key!r}"
    solution = _as_text(row.get(spec.solution_key))
    if isinstance(solution, str) and spec.answer_format in ("auto", "math"):
        return last_boxed(solution), f"no \\boxed{{}} answer in column {spec.solution_key!r}"
    return None, f"missing answer column 'answer' (and no {spec.solution_key!r} to take it from)"


class UnreadableRow(str):
    """A row a reader could not decode; the string is the reason (e.g. not valid UTF-8)."""


def row_to_example(row: Any, spec: RowSpec, row_id: str) -> tuple[dict | None, str]:
    """One row -> (example dict, '') or (None, reason the row is unusable)."""
    if isinstance(row, UnreadableRow):
        return None, str(row)
    if not isinstance(row, Mapping):
        return None, f"row is a {type(row).__name__}, not an object"
    if spec.question_key is not None:
        question_key = spec.question_key
    else:
        question_key = next((k for k in DEFAULT_QUESTION_KEYS if k in row), DEFAULT_QUESTION_KEYS[0])
    question = _as_text(lookup(row, question_key))
    if question is _MISSING:
        return None, f"missing question column {question_key!r}"
    if isinstance(question, (list, tuple)):
        question, reason = parse_messages(question, question_key)
        if question is None:
            return None, reason
    elif not isinstance(question, str):
        return None, f"question column {question_key!r} is a {type(question).__name__}, not a string"
    if not question.strip():
        return None, f"empty question column {question_key!r}"
    answer, reason = _extract_answer(row, spec)
    if answer is None:
        return None, reason
    # Every other column, raw answer/solution included (useful for SFT warm starts).
    metadata = {k: _plain_value(v) for k, v in row.items() if k != question_key}
    return {"question": question, "answer": answer, "metadata": metadata, "task": None,
            "id": row_id}, ""


def rows_to_examples(rows: Iterable[tuple[str, Any]], spec: RowSpec, *, origin: str,
                     holdout_fraction: float = 0.0,
                     subset: str = "all") -> tuple[list[dict], dict[str, list]]:
    """Converts (location, row) pairs; skips and summarises bad rows; optional hash-based split.

    Returns the examples and the skipped rows as ``{reason: [location, ...]}``.

    ``holdout_fraction`` > 0 splits rows by a hash of the normalised question: ``subset='train'``
    keeps rows whose hash fraction is >= holdout_fraction, ``'eval'`` the others. Equal questions
    always land on the same side, so the two subsets never share a question.
    """
    if subset not in ("all", "train", "eval"):
        raise ValueError(f"{origin}: subset={subset!r} must be 'all', 'train' or 'eval'")
    if subset != "all" and not 0.0 < holdout_fraction < 1.0:
        raise ValueError(
            f"{origin}: subset={subset!r} needs 0 < holdout_fraction < 1 (got {holdout_fraction})")
    examples = []
    bad = collections.defaultdict(list)  # reason -> locations
    total = 0
    for location, row in rows:
        total += 1
        example, reason = row_to_example(row, spec, f"{origin}:{location}")
        if example is None:
            bad[reason].append(location)
            continue
        if subset != "all":
            in_eval = hash_fraction(example["question"]) < holdout_fraction
            if in_eval != (subset == "eval"):
                continue
        examples.append(example)
    num_bad = sum(len(v) for v in bad.values())
    if num_bad:
        details = "; ".join(
            f"{reason}: {', '.join(map(str, locs[:5]))}{' ...' if len(locs) > 5 else ''}"
            f" ({len(locs)} rows)" for reason, locs in bad.items())
        logging.warning("%s: skipped %d of %d rows: %s", origin, num_bad, total, details)
    if not examples:
        split_note = f" in subset {subset!r}" if subset != "all" else ""
        raise ValueError(
            f"task source {origin} has no usable rows{split_note} ({total} read, {num_bad} bad)")
    return examples, dict(bad)
