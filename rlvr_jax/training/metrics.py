"""Where a run's numbers go: one compact stdout line per step, ``metrics.jsonl``, TensorBoard events,
a progress bar, and a PNG plot at the end.

Only the primary process (index 0) writes; the others get a writer whose methods do nothing, so the
loop never branches on the process index. The workdir may be local or ``gs://`` (see storage.py: on
an object store metrics.jsonl is re-uploaded on ``flush``, and TensorBoard writes to a local
staging directory uploaded at the same points).
"""
from __future__ import annotations

import json
import math
import os
import shutil
import sys
import tempfile
import time
from typing import Any, Mapping

import numpy as np
from absl import logging

from rlvr_jax import optional, sampling
from rlvr_jax.training import storage

# Keys shown on the one-line summary, in order, with their short labels and formats.
_LINE_KEYS = (
    ("reward_mean", "reward", "{:.3f}"),
    ("accuracy", "acc", "{:.3f}"),
    ("entropy", "ent", "{:.3f}"),
    ("kl", "kl", "{:.4f}"),
    ("clip_frac", "clip", "{:.3f}"),
    ("response_len", "len", "{:.1f}"),
    ("zero_adv_group_frac", "zero_adv", "{:.2f}"),
    ("tokens_per_s", "tok/s", "{:.0f}"),
    ("time_rollout_s", "t_roll", "{:.2f}"),
    ("time_update_s", "t_upd", "{:.2f}"),
)


def _to_python(value: Any) -> Any:
  if isinstance(value, (np.ndarray, np.generic)) or hasattr(value, "__array__"):
    arr = np.asarray(value)
    if arr.size == 1:
      value = arr.item()
    else:
      return arr.tolist()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)  # JSON has no NaN/inf; keep them visible instead of crashing the writer.
  return value


def format_line(step: int, total: int | None, metrics: Mapping[str, Any]) -> str:
  parts = [f"step {step}" + (f"/{total}" if total else "")]
  for key, label, fmt in _LINE_KEYS:
    if key in metrics and metrics[key] is not None:
      try:
        parts.append(f"{label} " + fmt.format(float(metrics[key])))
      except (TypeError, ValueError):
        pass
  return " | ".join(parts)


class MetricsWriter:
  """Writes per-step metrics to stdout, ``<workdir>/metrics.jsonl``, TensorBoard and any
  ``extra`` writers (e.g. `WandbWriter`: ``log(step, metrics)``, ``summary(name, payload)``,
  ``close()``)."""

  def __init__(self, workdir: str, *, total_steps: int | None = None, enabled: bool = True,
               tensorboard: bool = True, progress_bar: bool = True, stream=None,
               extra: tuple = (), flush_every_s: float = 60.0,
               first_extra: Mapping[str, Any] | None = None):
    self.enabled = enabled
    self.total_steps = total_steps
    self._stream = stream or sys.stdout
    self._jsonl: storage.AppendLog | None = None
    self._tb = None
    self._tb_stage: str | None = None  # local TensorBoard directory of a remote workdir
    self._tb_dest = None
    self._bar = None
    self._extra = tuple(extra) if enabled else ()
    self._first_extra = dict(first_extra or {})  # fields of this launch's first row (run_info)
    if not enabled:
      return
    storage.makedirs(workdir)
    self.jsonl_path = storage.join(workdir, "metrics.jsonl")
    self._jsonl = storage.AppendLog(self.jsonl_path, flush_every_s=flush_every_s)
    if tensorboard:
      try:
        from tensorboardX import SummaryWriter
        self._tb_dest = storage.join(workdir, "tensorboard")
        if storage.is_remote(workdir):
          self._tb_stage = tempfile.mkdtemp(prefix="rlvr_jax_tb_")
        self._tb = SummaryWriter(self._tb_stage or self._tb_dest)
      except ImportError:  # optional dependency; the jsonl file has everything
        logging.warning("tensorboardX is not installed: no tensorboard/ logs (metrics.jsonl has "
                        "every value; pip install 'rlvr_jax[tensorboard]' for them)")
        self._tb = None
    # A bar only helps a person watching a terminal; in logs (CI, SLURM) it is noise.
    if progress_bar and total_steps and sys.stderr.isatty():
      try:
        from tqdm import tqdm
        self._bar = tqdm(total=total_steps, desc="rl", unit="step", file=sys.stderr,
                         dynamic_ncols=True, leave=False, mininterval=2.0)
      except ImportError:
        self._bar = None

  def write(self, step: int, metrics: Mapping[str, Any]) -> None:
    if not self.enabled:
      return
    record = {"step": int(step), "time": time.time()}
    record.update({k: _to_python(v) for k, v in metrics.items()})
    first, self._first_extra = self._first_extra, {}
    self._jsonl.write_line(json.dumps({**record, **first}))
    if self._tb is not None:
      for k, v in record.items():
        if k in ("step", "time"):
          continue
        if isinstance(v, (int, float)) and not isinstance(v, bool):
          self._tb.add_scalar(k, v, step)
      self._tb.flush()
    for writer in self._extra:
      writer.log(int(step), {k: v for k, v in record.items() if k != "time"})
    line = format_line(step, self.total_steps, record)
    if self._bar is not None:
      self._bar.update(1)
      self._bar.write(line, file=self._stream)
    else:
      print(line, file=self._stream, flush=True)

  def flush(self) -> None:
    """Makes everything written so far durable in the workdir (a remote one included): called at
    every checkpoint, so a resumed run finds the rows of the steps it resumes after."""
    if not self.enabled:
      return
    if self._jsonl is not None:
      self._jsonl.flush()
    if self._tb is not None and self._tb_stage is not None:
      self._tb.flush()
      storage.copy_tree(self._tb_stage, self._tb_dest)

  def write_summary(self, name: str, payload: Mapping[str, Any], workdir: str) -> str:
    """Writes ``<workdir>/<name>.json`` (e.g. eval.json) and returns its path."""
    path = storage.join(workdir, f"{name}.json")
    if self.enabled:
      plain = {k: _to_python(v) for k, v in payload.items()}
      storage.write_text(path, json.dumps(plain, indent=2))
      for writer in self._extra:
        writer.summary(name, plain)
    return path

  def close(self) -> None:
    if self._bar is not None:
      self._bar.close()
      self._bar = None
    self.flush()
    if self._tb is not None:
      self._tb.close()
      if self._tb_stage is not None:
        storage.copy_tree(self._tb_stage, self._tb_dest)
        shutil.rmtree(self._tb_stage, ignore_errors=True)
      self._tb = None
    if self._jsonl is not None:
      self._jsonl.close()
      self._jsonl = None
    for writer in self._extra:
      writer.close()
    self._extra = ()


def read_jsonl(path: str) -> list[dict]:
  rows = []
  for line in storage.read_text(path).splitlines():
    line = line.strip()
    if line:
      rows.append(json.loads(line))
  return rows


def truncate_rows(jsonl_path: str, last_step: int) -> int:
  """Drops the rows of steps after ``last_step`` (written after the checkpoint a run resumes from,
  which it will write again); rewrites the file atomically; returns how many rows were dropped."""
  if not storage.exists(jsonl_path):
    return 0
  lines = storage.read_text(jsonl_path).splitlines(keepends=True)
  keep = []
  for line in lines:
    try:
      step = json.loads(line).get("step") if line.strip() else None
    except ValueError:  # a row cut short by kill -9: not a valid row, drop it
      continue
    if step is not None and int(step) <= last_step:
      keep.append(line if line.endswith("\n") else line + "\n")
  dropped = sum(1 for line in lines if line.strip()) - len(keep)
  if dropped:
    storage.write_text(jsonl_path, "".join(keep))
  return dropped


def plot_metrics(jsonl_path: str, png_path: str,
                 keys: tuple[str, ...] = ("reward_mean", "accuracy", "entropy", "response_len")) -> str:
  """Plots the given metrics over steps into one PNG (2x2 panels)."""
  matplotlib = optional.require("matplotlib", "the metrics plot")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  rows = read_jsonl(jsonl_path)
  # A resumed run appends; keep the last record of each step.
  by_step = {r["step"]: r for r in rows}
  steps = sorted(by_step)
  fig, axes = plt.subplots(2, 2, figsize=(10, 6.5))
  for ax, key in zip(axes.ravel(), keys):
    xs = [s for s in steps if isinstance(by_step[s].get(key), (int, float))]
    ys = [by_step[s][key] for s in xs]
    ax.plot(xs, ys, lw=1.0, alpha=0.5)
    if len(ys) >= 5:  # a running mean makes the trend readable through binary-reward noise
      w = max(2, len(ys) // 20)
      smooth = np.convolve(ys, np.ones(w) / w, mode="valid")
      ax.plot(xs[w - 1:], smooth, lw=2.0)
    ax.set_title(key)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  fig.tight_layout()
  with storage.staged_dir(storage.dirname(png_path)) as out:
    fig.savefig(os.path.join(out, storage.basename(png_path)), dpi=100)
  plt.close(fig)
  return png_path


def step_metrics(record: Any, stats: dict, update_metrics: list[dict], rows: dict,
                 times: dict) -> dict:
  """One metrics.jsonl row: rewards, accuracy, lengths of the record's rows (per turn / role too
  when the episode has several), rollout stats, the mean (max / min) of the update metrics."""
  correct, lengths = record.correct, record.lengths
  rec: dict[str, Any] = {
      "reward_mean": float(record.rewards.mean()), "reward_std": float(record.rewards.std()),
      "accuracy": float(correct.mean()), "response_len": float(lengths.mean()),
      "response_len_correct": float(lengths[correct].mean()) if correct.any() else None,
      "response_len_incorrect": float(lengths[~correct].mean()) if (~correct).any() else None,
      "truncated_frac": float(np.mean(record.finish == sampling.FINISH_LENGTH)),
      "tokens_per_s": stats.get("gen_tokens", 0) / max(times["time_rollout_s"], 1e-9),
      "train_tokens": float(rows["mask"].sum()),
  }
  rec.update(times)
  for name, ids in (("turn", record.turn_ids), ("role", record.role_ids)):
    values = np.unique(ids)
    if len(values) > 1:
      for v in values:
        sel = ids == v
        rec[f"{name}{int(v)}/reward_mean"] = float(record.rewards[sel].mean())
        rec[f"{name}{int(v)}/accuracy"] = float(correct[sel].mean())
        rec[f"{name}{int(v)}/response_len"] = float(lengths[sel].mean())
  rec.update({k: v for k, v in stats.items() if k != "gen_tokens"})
  if update_metrics:
    keys = update_metrics[0].keys()
    for k in keys:
      vals = np.array([float(m[k]) for m in update_metrics])
      rec[k] = float(vals.max() if k.endswith("_max") else vals.min() if k.endswith("_min")
                     else vals.mean())
    # "kl" is the KL to the reference policy when there is one; without a reference it falls back
    # to approx_kl (k3 of pi_old vs pi_theta), so the column is always present.
    rec.setdefault("kl", rec.get("approx_kl"))
    for k in keys:  # a max / min over no trained token (every group filtered out) is undefined
      if k.endswith(("_max", "_min")) and not np.isfinite(rec[k]):
        rec[k] = None
  return rec
