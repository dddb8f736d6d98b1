"""Turning raw rows (JSONL lines, Parquet rows, TFDS records) into task examples.

Every task source yields plain dicts ``{'question', 'answer', 'metadata', 'task', 'id'}``. Row-based
datasets come in a few well-known layouts, which this module recognises:

* GSM8K (Cobbe et al., 2021, arXiv:2110.14168): ``{'question', 'answer'}`` where the answer column holds
  the worked solution followed by ``#### <final answer>``.
* MATH (Hendrycks et al., 2021, arXiv:2103.03874): ``{'problem', 'solution', ...}`` where the final
  answer is the last ``\\boxed{...}`` of the solution; MATH-500-style files also carry an explicit
  ``answer`` column, which then wins.
* plain: a question column and an answer column holding the final answer.

Rows that cannot be used (not an object, missing or non-string question, no recoverable answer) are
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
# Question columns tried, in order, when the config does not name one (GSM8K, MATH).
DEFAULT_QUESTION_KEYS = ("question", "problem")
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
    # back to the solution's boxed answer.
    answer_key = spec.answer_key or ("answer" if row.get("answer") is not None else None)
    if answer_key is not None and answer_key in row:
        raw = _as_text(row[answer_key])
        if raw is None:
            return None, f"answer column {answer_key!r} is null"
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
    if question_key not in row:
        return None, f"missing question column {question_key!r}"
    question = _as_text(row[question_key])
    if not isinstance(question, str):
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
