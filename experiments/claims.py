r"""Runs one paper claim: every arm for several seeds, then summary.json, plots and a verdict.

    python -m experiments.claims --claim dapo_clip_higher --seeds 3 --workdir /runs/claims
    python -m experiments.claims --claim dapo_clip_higher --quick      # CI-sized pipeline check
    python -m experiments.claims --list

Claims are declared in rlvr_jax/claims/declared.py (paper, the sentence tested, arms as config
overrides, the deciding metric and direction). Each arm x seed is a normal training run in
``<workdir>/<claim>/<arm>/seed<k>`` (re-running resumes / reuses it); arms of one seed share the
warm start (its cache is copied from the first arm). Written next to the runs:

* ``summary.json``: per arm and seed the deciding metric and the reported ones, their mean and
  standard error over seeds, the verdict (reproduced / not reproduced / inconclusive, with the
  difference in standard errors), the config, the command, date, machine and commit;
* ``curves.png``: training curves (mean over seeds with a +-1 standard error band) per arm;
* ``passk.png``: the final pass@k curves per arm (mean over seeds) when the runs evaluate.

``--quick`` uses the claim's CI-sized config and overrides: it checks the pipeline, not the effect,
and its verdict means nothing.
"""
from __future__ import annotations

import ast
import datetime
import importlib
import json
import os
import platform
import shutil
import subprocess
import sys
from typing import Any

from absl import app, flags, logging

from rlvr_jax import optional

_CLAIM = flags.DEFINE_string("claim", None, "name of the claim (see --list)")
_SEEDS = flags.DEFINE_integer("seeds", 3, "seeds per arm (0, 1, ... seeds - 1)")
_WORKDIR = flags.DEFINE_string("workdir", "/tmp/rlvr_claims", "root of the runs and summaries")
_QUICK = flags.DEFINE_bool("quick", False, "CI-sized pipeline check (not the effect)")
_LIST = flags.DEFINE_bool("list", False, "list the declared claims and exit")
_ARMS = flags.DEFINE_list("arms", None, "run only these arms (default: all)")


def load_config(spec: str):
  """``configs/x.py[:arg]`` -> ConfigDict (as experiments.run loads it, before locking)."""
  path, _, arg = spec.partition(":")
  module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
  return module.get_config(arg or None)


def set_override(cfg, key: str, value: Any) -> None:
  """``cfg.a.b = value`` for the dotted ``key``; an unknown key is an error naming it."""
  *path, last = key.split(".")
  node = cfg
  for part in path:
    if part not in node:
      raise KeyError(f"override {key!r}: the config has no section {part!r}")
    node = node[part]
  if last not in node:
    raise KeyError(f"override {key!r}: the config has no key {last!r}")
  if isinstance(value, str) and not isinstance(node[last], str):
    value = ast.literal_eval(value)
  node[last] = value


def arm_config(claim, arm: str, seed: int, quick: bool):
  cfg = load_config(claim.quick_config if quick and claim.quick_config else claim.config)
  for key, value in (claim.quick if quick else {}).items():
    set_override(cfg, key, value)
  for key, value in claim.arms[arm].items():
    set_override(cfg, key, value)
  for key, value in (claim.quick_arms.get(arm, {}) if quick else {}).items():
    set_override(cfg, key, value)
  cfg.seed = int(seed)
  if "data" in cfg and "train" in cfg.data and "seed" in cfg.data.train:
    cfg.data.train.seed = 0  # the same problems for every seed; the seed varies init and sampling
  cfg.log.progress_bar = False
  return cfg


def _read_rows(workdir: str) -> list[dict]:
  path = os.path.join(workdir, "metrics.jsonl")
  if not os.path.exists(path):
    return []
  with open(path) as f:
    by_step = {}
    for line in f:
      if line.strip():
        row = json.loads(line)
        by_step[row["step"]] = row  # a resumed run appends: keep the last record of each step
  return [by_step[s] for s in sorted(by_step)]


def _flat(d: Any, prefix: str = "") -> dict[str, Any]:
  if not isinstance(d, dict):
    return {prefix: d}
  out = {}
  for k, v in d.items():
    out.update(_flat(v, f"{prefix}.{k}" if prefix else str(k)))
  return out


def check_same_config(workdir: str, cfg) -> None:
  """Raises ValueError naming the differing fields when ``workdir`` holds a run of another config.

  A claim's runs are reused by directory; without this check, changing a claim's arms (or its
  config file) would silently reuse results of the old settings.
  """
  path = os.path.join(workdir, "config.json")
  if not os.path.exists(path):
    return
  with open(path) as f:
    old = _flat(json.load(f))
  new = _flat(json.loads(cfg.to_json_best_effort()))
  # A field added to the configs since the old run, at its off value (None / False / empty), is
  # not a difference: the old run behaved as if it had it.
  added_off = {k for k in set(new) - set(old) if new[k] in (None, False, "", [], {})}
  diff = sorted(k for k in (set(old) | set(new)) - added_off
                if old.get(k, "<absent>") != new.get(k, "<absent>"))
  if diff:
    shown = ", ".join(f"{k}: {old.get(k, '<absent>')!r} -> {new.get(k, '<absent>')!r}" for k in diff[:8])
    raise ValueError(f"{workdir} holds a run of a different config ({shown}"
                     f"{', ...' if len(diff) > 8 else ''}); use another --workdir or delete it")


def _finished(workdir: str, total_steps: int) -> dict | None:
  """The eval summary of a run that already finished in ``workdir`` (reused, not re-run)."""
  path = os.path.join(workdir, "eval.json")
  if not os.path.exists(path):
    return None
  with open(path) as f:
    summary = json.load(f)
  return summary if summary.get("steps") == total_steps else None


def _share_warm_start(src: str, dst: str) -> None:
  """Arms of one seed start from the same warm start: copy its cache instead of recomputing."""
  for item in ("sft", "tokenizer"):
    if os.path.isdir(os.path.join(src, item)) and not os.path.exists(os.path.join(dst, item)):
      shutil.copytree(os.path.join(src, item), os.path.join(dst, item))


def run_claim(claim, *, seeds: int, root: str, quick: bool, arms: list[str] | None = None) -> dict:
  """Runs (or reuses) every arm x seed and returns the summary (also written to summary.json)."""
  from rlvr_jax import claims as claims_lib  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  base = os.path.join(root, claim.name + ("_quick" if quick else ""))
  arms = list(arms or claim.arms)
  unknown = sorted(set(arms) - set(claim.arms))
  if unknown:
    raise ValueError(f"claim {claim.name!r} has no arms {unknown}; arms: {sorted(claim.arms)}")
  metrics = (claim.metric,) + tuple(claim.also)
  results: dict[str, dict] = {arm: {"seeds": {}} for arm in arms}
  for seed in range(seeds):
    first: dict[str, str] = {}  # warm-start settings -> the first workdir of this seed that has them
    for arm in arms:
      workdir = os.path.join(base, arm, f"seed{seed}")
      os.makedirs(workdir, exist_ok=True)
      cfg = arm_config(claim, arm, seed, quick)
      # Arms share a warm start only when they ask for the same one (an arm may change it).
      warm = json.dumps(json.loads(cfg.sft.to_json_best_effort()), sort_keys=True)
      if warm in first:
        _share_warm_start(first[warm], workdir)
      cfg.lock()
      check_same_config(workdir, cfg)
      logging.info("claim %s: arm %s seed %d -> %s", claim.name, arm, seed, workdir)
      summary = _finished(workdir, int(cfg.total_steps)) or loop.run(cfg, workdir)
      rows = _read_rows(workdir)
      values = {}
      for m in metrics:
        try:
          values[m.label] = m.value(rows, summary)
        except KeyError as e:  # a reported metric the run lacks is recorded, not fatal
          if m is claim.metric:
            raise
          values[m.label] = None
          logging.warning("claim %s arm %s: %s", claim.name, arm, e)
      results[arm]["seeds"][seed] = {"values": values, "eval_after": summary.get("after"),
                                     "workdir": workdir}
      first.setdefault(warm, workdir)
  for arm in arms:
    for m in metrics:
      vals = [s["values"][m.label] for s in results[arm]["seeds"].values()
              if s["values"][m.label] is not None]
      if vals:
        mean, se = claims_lib.mean_stderr(vals)
        results[arm].setdefault("mean", {})[m.label] = mean
        results[arm].setdefault("stderr", {})[m.label] = se
  deciding = {arm: [s["values"][claim.metric.label] for s in results[arm]["seeds"].values()]
              for arm in arms}
  out = {
      "claim": claim.name, "paper": claim.paper, "sentence": claim.sentence,
      "metric": claim.metric.label, "quick": quick, "seeds": seeds, "arms": results,
      "config": claim.quick_config if quick and claim.quick_config else claim.config,
      "overrides": {arm: dict(claim.arms[arm]) for arm in arms},
      "quick_overrides": dict(claim.quick) if quick else {},
      "command": " ".join(["python -m experiments.claims"] + sys.argv[1:]),
      "date": datetime.date.today().isoformat(), "machine": platform.processor() or platform.machine(),
      "commit": _commit(), "notes": claim.notes,
  }
  a, _, b = claim.expect
  if a in deciding and b in deciding:
    out["verdict"] = claims_lib.verdict(claim, deciding)
    if quick:
      out["verdict"]["verdict"] += " (quick run: pipeline check only)"
  os.makedirs(base, exist_ok=True)
  with open(os.path.join(base, "summary.json"), "w") as f:
    json.dump(out, f, indent=2)
  plot_curves(claim, results, os.path.join(base, "curves.png"))
  plot_passk(results, os.path.join(base, "passk.png"))
  return out


def _commit() -> str:
  try:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          check=True, cwd=os.path.dirname(os.path.abspath(__file__))).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return "unknown"


def plot_curves(claim, results: dict, path: str) -> None:
  """Per curve key one panel: the mean over seeds of each arm with a +-1 standard error band."""
  matplotlib = optional.require("matplotlib", "plots")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from rlvr_jax import claims as claims_lib  # pylint: disable=import-outside-toplevel
  keys = list(claim.curves)[:4]
  fig, axes = plt.subplots(1, len(keys), figsize=(4.2 * len(keys), 3.4), squeeze=False)
  for ax, key in zip(axes[0], keys):
    for arm, res in results.items():
      curves = []
      for seed in res["seeds"].values():
        rows = _read_rows(seed["workdir"])
        col = claims_lib.column(rows, key)
        curves.append([r.get(col) if isinstance(r.get(col), (int, float)) else np.nan for r in rows])
      if not curves or not min(len(c) for c in curves):
        continue
      n = min(len(c) for c in curves)
      arr = np.asarray([c[:n] for c in curves], np.float64)  # [seeds, steps]
      mean = np.nanmean(arr, axis=0)
      se = (np.nanstd(arr, axis=0, ddof=1) / np.sqrt(arr.shape[0]) if arr.shape[0] > 1
            else np.zeros_like(mean))
      steps = np.arange(1, n + 1)
      ax.plot(steps, mean, label=arm)
      ax.fill_between(steps, mean - se, mean + se, alpha=0.25)
    ax.set_title(key)
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
  axes[0][0].legend(fontsize=8)
  fig.suptitle(f"{claim.name} (mean over seeds, band = 1 s.e.)", fontsize=10)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def plot_passk(results: dict, path: str) -> None:
  matplotlib = optional.require("matplotlib", "plots")
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  fig, ax = plt.subplots(figsize=(5, 3.6))
  drawn = False
  for arm, res in results.items():
    per_seed = [s["eval_after"] for s in res["seeds"].values() if s.get("eval_after")]
    if not per_seed:
      continue
    ks = sorted(int(k.split("@")[1]) for k in per_seed[0]
                if k.startswith("pass@") and not k.endswith("_expected") and k[5:].isdigit())
    if not ks:
      continue
    ys = np.mean([[e[f"pass@{k}"] for k in ks] for e in per_seed], axis=0)
    ax.plot(ks, ys, marker="o", label=arm)
    drawn = True
  if drawn:
    ax.set_xscale("log", base=2)
    ax.set_xlabel("k")
    ax.set_ylabel("pass@k (held out)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  del argv
  from rlvr_jax import claims as claims_lib  # pylint: disable=import-outside-toplevel
  if _LIST.value:
    for name, claim in sorted(claims_lib.CLAIMS.items()):
      print(f"{name}: {claim.paper}\n  {claim.sentence}\n  arms {sorted(claim.arms)}; "
            f"decides on {claim.metric.label}, expects {' '.join(claim.expect)}")
    return
  if not _CLAIM.value:
    raise app.UsageError("--claim is required (or --list)")
  claim = claims_lib.get_claim(_CLAIM.value)
  out = run_claim(claim, seeds=_SEEDS.value, root=_WORKDIR.value, quick=_QUICK.value,
                  arms=_ARMS.value)
  print(json.dumps({"claim": out["claim"], "metric": out["metric"],
                    "means": {a: r.get("mean") for a, r in out["arms"].items()},
                    "verdict": out.get("verdict")}, indent=2))


if __name__ == "__main__":
  app.run(main)
