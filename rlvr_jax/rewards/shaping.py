"""Shaped rewards: output format and DAPO's soft overlong penalty."""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.rewards.registry import RewardConfigError, register_reward

# DeepSeek-R1 (arXiv 2501.12948, sec. 2.2.2) format: reasoning in <think>, the answer in <answer>.
THINK_ANSWER = r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$"


@register_reward("format")
def format_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    pattern: str = THINK_ANSWER,
    tags: Sequence[str] = ("think", "answer"),
    reward: float = 1.0,
) -> np.ndarray:
  """``reward`` if the completion matches ``pattern`` (full match, DOTALL) and each of ``tags``
  opens and closes exactly once, else 0 (R1-style format reward; the once-only check stops
  ``<answer>a</answer><answer>b</answer>`` from passing the lazy regex)."""
  del examples
  regex = re.compile(pattern, flags=re.DOTALL)
  scores = np.zeros(len(completions), np.float32)
  for i, text in enumerate(completions):
    once = all(text.count(f"<{t}>") == 1 and text.count(f"</{t}>") == 1 for t in tags)
    if once and regex.fullmatch(text):
      scores[i] = reward
  return scores


def overlong_penalty(
    lengths: np.ndarray, max_len: int, buffer_len: int, penalty_factor: float = 1.0
) -> np.ndarray:
  """DAPO soft overlong punishment (arXiv 2503.14476, sec. 3.4, eq. 13), L = length in tokens:

      0                                      if L <= L_max - L_buf
      ((L_max - L_buf) - L) / L_buf * f      if L_max - L_buf < L <= L_max
      -f                                     if L > L_max

  DAPO: L_max = 20,480, L_buf = 4,096, f = 1.0.
  """
  if not 0 < buffer_len <= max_len:
    raise RewardConfigError(f"overlong buffer_len={buffer_len} must be in (0, max_len={max_len}]")
  lengths = np.asarray(lengths, np.float32)
  excess = lengths - (max_len - buffer_len)  # > 0 inside the buffer zone
  penalty = -np.clip(excess / buffer_len, 0.0, 1.0) * penalty_factor
  return np.where(lengths > max_len, -penalty_factor, penalty).astype(np.float32)


@register_reward("overlong")
def overlong_reward(
    completions: Sequence[str],
    examples: Sequence[Mapping],
    *,
    lengths: np.ndarray | None = None,
    max_len: int | None = None,
    buffer_len: int = 4096,
    penalty_factor: float = 1.0,
) -> np.ndarray:
  """``overlong_penalty`` of the response lengths; needs ``lengths`` (tokens) and ``max_len`` from
  ``compute_rewards``. Add it with weight 1 to the correctness reward, as DAPO does."""
  del examples
  if lengths is None or max_len is None:
    raise RewardConfigError("the overlong reward needs lengths (tokens) and max_len from compute_rewards")
  if len(lengths) != len(completions):
    raise RewardConfigError(f"lengths has {len(lengths)} entries for {len(completions)} completions")
  return overlong_penalty(lengths, int(max_len), int(min(buffer_len, max_len)), penalty_factor)
