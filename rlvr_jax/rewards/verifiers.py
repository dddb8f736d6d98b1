"""Verifier rewards: math answer equivalence (math-verify), reasoning-gym scorers, exact match.

math-verify and reasoning-gym are imported lazily (inside the worker processes for math-verify),
so importing ``rlvr_jax.rewards`` stays cheap for the pool workers.
"""
from __future__ import annotations

import functools
import logging as py_logging
from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.rewards.extract import extract_answer, extract_tag, normalize_answer
from rlvr_jax.rewards.pool import get_pool
from rlvr_jax.rewards.registry import RewardConfigError, RewardOutput, register_reward


def _gold(example: Mapping, index: int) -> str:
  if "answer" not in example:
    raise RewardConfigError(f"example {index} has no 'answer' (gold) field; keys: {sorted(example)}")
  return str(example["answer"])


# ---------------------------------------------------------------------------------------------
# math-verify


def _init_math_worker() -> None:
  import math_verify  # noqa: F401  (warm the import once per worker)

  # We pass timeout=None to math-verify (the pool enforces the timeout); silence its warning.
  py_logging.getLogger("math_verify").setLevel(py_logging.ERROR)
  # The open_r1 preset passes equations=True as open-r1 does; latex2sympy2_extended warns on every
  # call that the flag is deprecated (it still applies it).
  py_logging.getLogger("latex2sympy2_extended").setLevel(py_logging.ERROR)


def _as_latex(text: str) -> str:
  return text if ("$" in text or "\\boxed" in text or "\\(" in text) else f"${text}$"


# math-verify parse settings by name. "default": math-verify's own defaults (LaTeX and plain
# expressions, last match). "open_r1": the configuration open-r1's and TRL's accuracy rewards use:
# the gold parsed with the defaults at first match; the completion parsed as LaTeX only, \boxed{}
# tried first, no match without an anchor (a bare trailing number does not count), malformed
# operators not repaired, first match.
MATH_VERIFY_PRESETS = ("default", "open_r1")


def _open_r1_prediction_config():
  from latex2sympy2_extended import NormalizationConfig
  from math_verify import LatexExtractionConfig

  return [LatexExtractionConfig(
      normalization_config=NormalizationConfig(nits=False, malformed_operators=False,
                                               basic_latex=True, equations=True, boxed="all",
                                               units=True),
      boxed_match_priority=0, try_extract_without_anchor=False)]


def math_verify_task(gold: str, prediction: str, from_span: bool, preset: str = "default") -> bool:
  """Runs in a pool worker: ``verify(parse(gold), parse(prediction))`` under ``preset``.

  ``from_span``: the prediction is an extracted answer span, tried as LaTeX (``$..$``) first and
  then as plain text; otherwise it is a whole completion that math-verify searches itself.
  """
  from math_verify import parse, verify

  if preset == "open_r1":
    gold_parsed = parse(gold, extraction_mode="first_match", parsing_timeout=None)
    if not gold_parsed:
      raise ValueError(f"gold answer {gold!r} does not parse")
    pred_parsed = parse(prediction, extraction_config=_open_r1_prediction_config(),
                        extraction_mode="first_match", parsing_timeout=None)
    return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
  gold_parsed = parse(_as_latex(gold), parsing_timeout=None)
  if not gold_parsed:
    raise ValueError(f"gold answer {gold!r} does not parse")
  candidates = [_as_latex(prediction), prediction] if from_span else [prediction]
  for candidate in candidates:
    pred_parsed = parse(candidate, parsing_timeout=None)
    if pred_parsed:
      return bool(verify(gold_parsed, pred_parsed, timeout_seconds=None))
  return False


@register_reward("math_verify")
def math_verify_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    timeout: float = 5.0,
    correct: float = 1.0,
    incorrect: float = 0.0,
    num_workers: int | None = None,
    preset: str = "default",
) -> RewardOutput:
  """Math answer verification with math-verify (HF, ``verify(parse(gold), parse(pred))``).

  ``preset="default"``: the answer span is the last ``<answer>`` block when present (math-verify
  does not look inside tags), else the whole completion (math-verify finds the last ``\\boxed{}`` /
  expression itself). ``preset="open_r1"``: open-r1's and TRL's settings (``MATH_VERIFY_PRESETS``):
  the whole completion, boxed-first LaTeX extraction, no string-equality shortcut, so scores are
  comparable with theirs.
  Scores ``correct`` / ``incorrect`` (DAPO uses +1 / -1, ``math_dapo.compute_score``). Items whose
  normalised answer string equals the gold are scored without the pool; the rest run in a shared
  process pool (``pool.get_pool("math_verify")``) with a ``timeout`` in seconds per item; a timeout
  or error scores NaN (0 and counted by ``compute_rewards``) and is counted in ``reward_timeout``.
  """
  if preset not in MATH_VERIFY_PRESETS:
    raise RewardConfigError(f"math_verify: preset={preset!r} is not one of {MATH_VERIFY_PRESETS}")
  n = len(completions)
  scores = np.full(n, np.nan, np.float32)
  tasks: dict[tuple[str, str, bool, str], list[int]] = {}
  for i, (text, example) in enumerate(zip(completions, examples)):
    gold = _gold(example, i)
    if preset == "open_r1":
      tasks.setdefault((gold, text, False, preset), []).append(i)
      continue
    span = extract_tag(text)
    if normalize_answer(span if span is not None else extract_answer(text)) == normalize_answer(gold):
      scores[i] = correct  # string-equal answers are equal; skip the pool
      continue
    key = (gold, span, True, preset) if span is not None else (gold, text, False, preset)
    tasks.setdefault(key, []).append(i)  # G samples often share an answer: verify it once
  timeouts = 0
  if tasks:
    pool = get_pool("math_verify", num_workers=num_workers, initializer=_init_math_worker)
    keys = list(tasks)
    for key, (status, value) in zip(keys, pool.map(math_verify_task, keys, timeout=timeout)):
      if status == "ok":
        scores[tasks[key]] = correct if value else incorrect
      elif status == "timeout":
        timeouts += len(tasks[key])
  return RewardOutput(scores, None, {"reward_timeout": timeouts})


# ---------------------------------------------------------------------------------------------
# reasoning-gym


@functools.lru_cache(maxsize=None)
def _rg_scorer(task: str):
  import reasoning_gym

  return reasoning_gym.get_score_answer_fn(task)


def reasoning_gym_task(task: str, answer: str | None, entry: dict) -> float:
  """Runs (in-process or in a pool worker): ``score_answer(answer, entry)`` of dataset ``task``."""
  return float(_rg_scorer(task)(answer, entry))


def _rg_entry(example: Mapping, index: int) -> tuple[str, dict]:
  metadata = dict(example.get("metadata") or {})
  task = example.get("task") or metadata.get("source_dataset")
  if not task:
    raise RewardConfigError(
        f"example {index} names no reasoning-gym task: set 'task' or metadata['source_dataset']"
    )
  entry = {"question": example.get("question", ""), "answer": _gold(example, index), "metadata": metadata}
  return str(task), entry


@register_reward("reasoning_gym")
def reasoning_gym_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    extract: str = "answer_tag",
    use_pool: bool = False,
    timeout: float = 10.0,
) -> RewardOutput:
  """The task's own scorer from reasoning-gym (``dataset.score_answer(answer, entry)``), any of its
  procedural tasks; scores are in [0, 1] and some tasks give partial credit (countdown: 0.01/0.05).

  The task is ``example["task"]`` or ``example["metadata"]["source_dataset"]``; the entry passed to
  the scorer is rebuilt from the row's question / answer / metadata. The answer is extracted with
  ``extract`` (reasoning-gym's prompts ask for ``<answer>`` tags; a missing answer scores 0).
  ``use_pool=True`` runs scorers in the process pool with ``timeout`` seconds per item (for
  scorers that can hang); otherwise they run in-process and an exception scores NaN (counted).
  """
  n = len(completions)
  items = []
  for i, (text, example) in enumerate(zip(completions, examples)):
    task, entry = _rg_entry(example, i)
    items.append((task, extract_answer(text, extract), entry))
  scores = np.full(n, np.nan, np.float32)
  timeouts = 0
  if use_pool:
    pool = get_pool("reasoning_gym")
    for i, (status, value) in enumerate(pool.map(reasoning_gym_task, items, timeout=timeout)):
      if status == "ok":
        scores[i] = value
      timeouts += status == "timeout"
  else:
    for i, item in enumerate(items):
      try:
        scores[i] = reasoning_gym_task(*item)
      except Exception:  # pylint: disable=broad-except
        scores[i] = np.nan  # one broken item must not sink the batch; counted as a failure
  return RewardOutput(scores, None, {"reward_timeout": timeouts})


# ---------------------------------------------------------------------------------------------
# exact match


@register_reward("exact_match")
def exact_match_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    extract: str = "auto",
    normalize: bool = True,
    correct: float = 1.0,
    incorrect: float = 0.0,
) -> np.ndarray:
  """1[extracted answer == gold] after ``normalize_answer`` on both sides (set ``normalize=False``
  for raw string equality after stripping). A gold given as a list accepts any of its entries."""
  scores = np.empty(len(completions), np.float32)
  norm = normalize_answer if normalize else (lambda s: None if s is None else s.strip())
  for i, (text, example) in enumerate(zip(completions, examples)):
    if "answer" not in example:
      raise RewardConfigError(f"example {i} has no 'answer' (gold) field; keys: {sorted(example)}")
    golds = example["answer"] if isinstance(example["answer"], (list, tuple)) else [example["answer"]]
    pred = norm(extract_answer(text, extract))
    hit = pred is not None and any(pred == norm(str(g)) for g in golds)
    scores[i] = correct if hit else incorrect
  return scores
