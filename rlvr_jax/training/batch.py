"""Host-side batch building: prompt padding, shape buckets, and the RL training batch.

Shapes are bucketed (prompt length and response length rounded up) so a run compiles a bounded set
of update functions instead of one per step.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def bucket(n: int, *, multiple: int = 16, maximum: int | None = None) -> int:
  """``n`` rounded up to a multiple (at least one multiple), capped at ``maximum``."""
  b = max(multiple, -(-int(n) // multiple) * multiple)
  return min(b, maximum) if maximum is not None else b


def left_pad(seqs: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  """Left-pads token lists to ``length``: (tokens int32 [B, length], mask bool [B, length])."""
  tokens = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), bool)
  for i, s in enumerate(seqs):
    if len(s) > length:
      raise ValueError(f"row {i}: {len(s)} tokens do not fit in {length}")
    if len(s):
      tokens[i, length - len(s):] = s
      mask[i, length - len(s):] = True
  return tokens, mask


def right_pad(seqs: Sequence[Sequence[int]], length: int, pad_id: int) -> tuple[np.ndarray, np.ndarray]:
  tokens = np.full((len(seqs), length), pad_id, np.int32)
  mask = np.zeros((len(seqs), length), bool)
  for i, s in enumerate(seqs):
    s = list(s)[:length]
    tokens[i, :len(s)] = s
    mask[i, :len(s)] = True
  return tokens, mask


def sequence_batch(prompt_tokens: np.ndarray, prompt_mask: np.ndarray, response: np.ndarray,
                   response_mask: np.ndarray) -> dict[str, np.ndarray]:
  """The model-input part of a training batch from left-padded prompts and right-padded responses.

  Positions count real tokens only, so a left-padded row gets the same positions as unpadded.
  """
  tokens = np.concatenate([prompt_tokens, response], axis=1).astype(np.int32)  # [B, Tp + Tn]
  attn = np.concatenate([prompt_mask, response_mask], axis=1)
  positions = np.maximum(np.cumsum(attn, axis=1) - 1, 0).astype(np.int32)
  return {"tokens": tokens, "positions": positions, "attn_mask": attn,
          "response": response.astype(np.int32), "mask": response_mask.astype(np.float32)}


def rollout_batch(prompt_ids: Sequence[Sequence[int]], group_size: int, response: np.ndarray,
                  lengths: np.ndarray, *, pad_id: int, prompt_len: int,
                  response_len: int) -> dict[str, np.ndarray]:
  """Training rows for P prompts x G sampled responses (samples of one prompt adjacent).

  ``response`` [P*G, >= response_len] as returned by the sampler; ``lengths`` [P*G] include the stop
  token. Responses are cut to ``response_len`` (callers pick a bucket >= max(lengths)).
  """
  n = len(prompt_ids) * group_size
  if response.shape[0] != n or lengths.shape[0] != n:
    raise ValueError(f"expected {n} responses for {len(prompt_ids)} prompts x G={group_size}, got "
                     f"{response.shape[0]} tokens rows and {lengths.shape[0]} lengths")
  p_tok, p_mask = left_pad(prompt_ids, prompt_len, pad_id)
  p_tok = np.repeat(p_tok, group_size, axis=0)
  p_mask = np.repeat(p_mask, group_size, axis=0)
  resp = response[:, :response_len]
  if resp.shape[1] < response_len:
    resp = np.pad(resp, ((0, 0), (0, response_len - resp.shape[1])), constant_values=pad_id)
  r_mask = np.arange(response_len)[None, :] < np.minimum(lengths, response_len)[:, None]
  resp = np.where(r_mask, resp, pad_id)
  return sequence_batch(p_tok, p_mask, resp, r_mask)


def record_batch(prompt_ids: Sequence[Sequence[int]], completions: np.ndarray, lengths: np.ndarray,
                 *, pad_id: int, prompt_len: int, response_len: int) -> dict[str, np.ndarray]:
  """Training rows for N (prompt, completion) pairs of a rollout record (one prompt per row).

  ``completions`` [N, >= response_len] right padded; ``lengths`` [N] include the stop token.
  ``mask`` is 1 on each row's first ``lengths`` tokens (callers multiply in the loss mask).
  """
  n = len(prompt_ids)
  if completions.shape[0] != n or lengths.shape[0] != n:
    raise ValueError(f"expected {n} completions and lengths for {n} prompts, got "
                     f"{completions.shape[0]} and {lengths.shape[0]}")
  p_tok, p_mask = left_pad(prompt_ids, prompt_len, pad_id)
  resp = completions[:, :response_len]
  if resp.shape[1] < response_len:
    resp = np.pad(resp, ((0, 0), (0, response_len - resp.shape[1])), constant_values=pad_id)
  r_mask = np.arange(response_len)[None, :] < np.minimum(lengths, response_len)[:, None]
  resp = np.where(r_mask, resp, pad_id)
  return sequence_batch(p_tok, p_mask, resp, r_mask)


def supervised_batch(prompt_ids: Sequence[Sequence[int]], target_ids: Sequence[Sequence[int]], *,
                     pad_id: int, prompt_len: int, response_len: int) -> dict[str, np.ndarray]:
  """Rows of (prompt, target) pairs for the warm-start SFT (loss on the target tokens)."""
  p_tok, p_mask = left_pad(prompt_ids, prompt_len, pad_id)
  r_tok, r_mask = right_pad(target_ids, response_len, pad_id)
  return sequence_batch(p_tok, p_mask, r_tok, r_mask)
