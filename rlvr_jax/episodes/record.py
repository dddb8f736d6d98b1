"""The rollout record: one row per trained sequence, whatever episode produced it.

Everything after the episode (batch builders, advantages, metrics, the update) reads this record;
nothing downstream assumes a [P, G] rectangle. A row is one prompt and one completion:

  prompts         list of N int32 arrays (token ids, any lengths)
  completions     int32 [N, T]   right padded with ``pad_id`` after ``lengths``
  lengths         int32 [N]      tokens of each completion (a stop id, when emitted, included)
  loss_mask       f32   [N, T]   1 on completion tokens the policy is trained on (0 on a forced
                                 prefix, after the end, and on rows that are not trained)
  group_ids       int32 [N]      rows compared with each other by group-baseline advantages
  rewards         f32   [N]      the row's scalar reward (per-token rewards: ``token_rewards``)
  correct         bool  [N]      ground-truth correctness where the task has it (else False)
  behaviour_logp  f32   [N, T]   log-probs under the sampling distribution (0 where unknown)
  finish          int8  [N]      sampling.FINISH_STOP / FINISH_LENGTH
  role_ids        int32 [N]      seat / role (0 by default): games, creator / solver
  turn_ids        int32 [N]      turn of a multi-turn episode (0 by default)
  valid           bool  [N]      False on filler rows (kept for fixed shapes, never trained)
  token_rewards   f32   [N, T] or None
  meta            dict name -> array [N, ...]: free per-row side data (self-reward scores, ...)
  examples        list of N data rows (dicts) or None where unknown

Choice documented for episodes: a multi-turn episode emits ONE ROW PER TRAINED TURN (the row's
prompt holds the earlier turns as context), never several trained segments in one row; a forced
prefix that should not be trained is part of the completion with ``loss_mask`` 0.

Construction checks every field's shape and names the field at fault.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import numpy as np

from rlvr_jax import sampling


@dataclasses.dataclass
class RolloutRecord:
  """See the module docstring for the fields and their shapes."""

  prompts: list[np.ndarray]
  completions: np.ndarray
  lengths: np.ndarray
  group_ids: np.ndarray
  rewards: np.ndarray
  loss_mask: np.ndarray | None = None
  correct: np.ndarray | None = None
  behaviour_logp: np.ndarray | None = None
  finish: np.ndarray | None = None
  role_ids: np.ndarray | None = None
  turn_ids: np.ndarray | None = None
  valid: np.ndarray | None = None
  token_rewards: np.ndarray | None = None
  meta: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
  examples: list[Any] | None = None

  def __post_init__(self):
    self.prompts = [np.asarray(p, np.int32).reshape(-1) for p in self.prompts]
    n = len(self.prompts)
    self.completions = _array("completions", self.completions, np.int32, ndim=2)
    if self.completions.shape[0] != n:
      raise ValueError(f"RolloutRecord: completions has {self.completions.shape[0]} rows but "
                       f"prompts has {n}")
    t = self.completions.shape[1]
    self.lengths = _rows("lengths", self.lengths, np.int32, n)
    if np.any(self.lengths < 0) or np.any(self.lengths > t):
      raise ValueError(f"RolloutRecord: lengths must lie in [0, {t}] (the completions' width), "
                       f"got min {self.lengths.min(initial=0)} max {self.lengths.max(initial=0)}")
    self.group_ids = _rows("group_ids", self.group_ids, np.int32, n)
    self.rewards = _rows("rewards", self.rewards, np.float32, n)
    if self.loss_mask is None:
      self.loss_mask = (np.arange(t)[None, :] < self.lengths[:, None]).astype(np.float32)
    self.loss_mask = _tokens("loss_mask", self.loss_mask, np.float32, (n, t))
    self.correct = _rows("correct", _default(self.correct, n, False), bool, n)
    self.behaviour_logp = _tokens("behaviour_logp", _default(self.behaviour_logp, (n, t), 0.0),
                                  np.float32, (n, t))
    self.finish = _rows("finish", _default(self.finish, n, sampling.FINISH_STOP), np.int8, n)
    self.role_ids = _rows("role_ids", _default(self.role_ids, n, 0), np.int32, n)
    self.turn_ids = _rows("turn_ids", _default(self.turn_ids, n, 0), np.int32, n)
    self.valid = _rows("valid", _default(self.valid, n, True), bool, n)
    if self.token_rewards is not None:
      self.token_rewards = _tokens("token_rewards", self.token_rewards, np.float32, (n, t))
    meta = {}
    for key, value in dict(self.meta).items():
      value = np.asarray(value)
      if value.ndim == 0 or value.shape[0] != n:
        raise ValueError(f"RolloutRecord: meta[{key!r}] has shape {value.shape}; per-row metadata "
                         f"needs a leading dimension of {n} rows")
      meta[key] = value
    self.meta = meta
    if self.examples is not None and len(self.examples) != n:
      raise ValueError(f"RolloutRecord: examples has {len(self.examples)} entries for {n} rows")

  # --- shape -------------------------------------------------------------------------------------
  @property
  def num_rows(self) -> int:
    return len(self.prompts)

  @property
  def width(self) -> int:
    return int(self.completions.shape[1])

  def group_sizes(self) -> dict[int, int]:
    ids, counts = np.unique(self.group_ids, return_counts=True)
    return {int(i): int(c) for i, c in zip(ids, counts)}

  def rectangular(self) -> int | None:
    """G when the rows form contiguous groups of equal size G (row p * G + g of group p), else None.

    Group-baseline advantages then run on the [P, G] matrix exactly as on a plain rollout."""
    n = self.num_rows
    if n == 0:
      return None
    change = np.flatnonzero(np.diff(self.group_ids)) + 1
    starts = np.concatenate([[0], change])
    sizes = np.diff(np.concatenate([starts, [n]]))
    if len(set(sizes.tolist())) != 1 or len(np.unique(self.group_ids)) != len(starts):
      return None
    return int(sizes[0])

  def split_groups(self) -> list["RolloutRecord"]:
    """One record per group, in the order the groups first appear."""
    dense, _ = group_index(self.group_ids)
    return [self.select(np.flatnonzero(dense == g)) for g in range(int(dense.max(initial=-1)) + 1)]

  # --- selection ---------------------------------------------------------------------------------
  def select(self, index: Sequence[int] | np.ndarray) -> "RolloutRecord":
    """The rows ``index`` (in that order) as a new record."""
    idx = np.asarray(index, np.int64).reshape(-1)
    take = lambda x: None if x is None else x[idx]
    return RolloutRecord(
        prompts=[self.prompts[i] for i in idx], completions=self.completions[idx],
        lengths=self.lengths[idx], group_ids=self.group_ids[idx], rewards=self.rewards[idx],
        loss_mask=self.loss_mask[idx], correct=self.correct[idx],
        behaviour_logp=self.behaviour_logp[idx], finish=self.finish[idx],
        role_ids=self.role_ids[idx], turn_ids=self.turn_ids[idx], valid=self.valid[idx],
        token_rewards=take(self.token_rewards), meta={k: v[idx] for k, v in self.meta.items()},
        examples=None if self.examples is None else [self.examples[i] for i in idx])

  def replace(self, **changes) -> "RolloutRecord":
    return dataclasses.replace(self, **changes)

  @staticmethod
  def concat(records: Sequence["RolloutRecord"], *, renumber_groups: bool = True) -> "RolloutRecord":
    """Rows of several records, completions padded to the widest; group ids made distinct (each
    record's ids offset past the previous ones) unless ``renumber_groups`` is False."""
    records = [r for r in records if r.num_rows]
    if not records:
      raise ValueError("RolloutRecord.concat needs at least one non-empty record")
    if len(records) == 1:
      return records[0]
    width = max(r.width for r in records)
    pad = lambda x, value: np.pad(x, ((0, 0), (0, width - x.shape[1])), constant_values=value)
    groups, offset = [], 0
    for r in records:
      if renumber_groups:
        _, inverse = np.unique(r.group_ids, return_inverse=True)
        groups.append(inverse.astype(np.int32) + offset)
        offset += int(inverse.max(initial=-1)) + 1
      else:
        groups.append(r.group_ids)
    meta_keys = set(records[0].meta)
    for r in records[1:]:
      if set(r.meta) != meta_keys:
        raise ValueError(f"RolloutRecord.concat: meta keys differ ({sorted(meta_keys)} vs "
                         f"{sorted(r.meta)})")
    has_tok = [r.token_rewards is not None for r in records]
    if any(has_tok) and not all(has_tok):
      raise ValueError("RolloutRecord.concat: some records have token_rewards and some do not")
    cat = np.concatenate
    return RolloutRecord(
        prompts=[p for r in records for p in r.prompts],
        completions=cat([pad(r.completions, 0) for r in records]),
        lengths=cat([r.lengths for r in records]), group_ids=cat(groups),
        rewards=cat([r.rewards for r in records]),
        loss_mask=cat([pad(r.loss_mask, 0.0) for r in records]),
        correct=cat([r.correct for r in records]),
        behaviour_logp=cat([pad(r.behaviour_logp, 0.0) for r in records]),
        finish=cat([r.finish for r in records]), role_ids=cat([r.role_ids for r in records]),
        turn_ids=cat([r.turn_ids for r in records]), valid=cat([r.valid for r in records]),
        token_rewards=cat([pad(r.token_rewards, 0.0) for r in records]) if all(has_tok) else None,
        meta={k: cat([r.meta[k] for r in records]) for k in meta_keys},
        examples=(None if any(r.examples is None for r in records)
                  else [e for r in records for e in r.examples]))


def _default(value, shape, fill):
  return np.full(shape, fill) if value is None else value


def _array(name: str, value: Any, dtype, *, ndim: int) -> np.ndarray:
  arr = np.asarray(value)
  if arr.ndim != ndim:
    raise ValueError(f"RolloutRecord: {name} must have {ndim} dimensions, got shape {arr.shape}")
  return arr.astype(dtype, copy=False)


def _rows(name: str, value: Any, dtype, n: int) -> np.ndarray:
  arr = np.asarray(value)
  if arr.shape != (n,):
    raise ValueError(f"RolloutRecord: {name} has shape {arr.shape}; expected ({n},), one per row")
  return arr.astype(dtype, copy=False)


def _tokens(name: str, value: Any, dtype, shape: tuple[int, int]) -> np.ndarray:
  arr = np.asarray(value)
  if arr.shape != shape:
    raise ValueError(f"RolloutRecord: {name} has shape {arr.shape}; expected {shape} "
                     "(rows x completion width)")
  return arr.astype(dtype, copy=False)


def group_index(group_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(dense group index per row in first-seen order, number of rows per dense group)."""
  _, first, inverse, counts = np.unique(group_ids, return_index=True, return_inverse=True,
                                        return_counts=True)
  order = np.argsort(first, kind="stable")  # dense ids in the order groups first appear
  rank = np.empty_like(order)
  rank[order] = np.arange(len(order))
  return rank[inverse].astype(np.int32), counts[order]
