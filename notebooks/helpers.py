"""What the notebooks call: run configs in-process, draw runs side by side, show a claim's result.

The notebooks stay short (a cell per step) and their logic lives here, where it is tested and
reviewed like the rest of the code. Runs go to ``$RLVR_NOTEBOOK_WORKDIR`` (default
``/tmp/rlvr_notebooks``), one folder per notebook and config, started fresh on each call.
"""
from __future__ import annotations

import importlib
import json
import os
import pathlib
import shutil
from typing import Mapping, Sequence

REPO = pathlib.Path(__file__).resolve().parents[1]
CLAIMS = REPO / "results" / "claims"
# Curves drawn for every run, in this order (missing keys leave the panel empty).
RUN_KEYS = ("reward_mean", "accuracy", "entropy", "response_len")
TABLE_KEYS = ("reward_mean", "accuracy", "entropy", "response_len", "kl", "clip_frac",
              "tokens_per_s")


def workdir_root() -> pathlib.Path:
  return pathlib.Path(os.environ.get("RLVR_NOTEBOOK_WORKDIR", "/tmp/rlvr_notebooks"))


def smoke() -> bool:
  """True when CI executes the notebooks: full-length runs switch to their ``:cpu`` variant."""
  return os.environ.get("RLVR_NOTEBOOK_SMOKE", "") not in ("", "0")


def card_title(name: str) -> str:
  """First line of configs/<name>.py's docstring (its reproduction card)."""
  doc = (importlib.import_module(f"configs.{name}").__doc__ or "").strip()
  return doc.splitlines()[0].strip() if doc else name


def read_rows(workdir: str | os.PathLike) -> list[dict]:
  """metrics.jsonl rows, the last record of each step (a resumed run appends)."""
  path = pathlib.Path(workdir) / "metrics.jsonl"
  by_step = {}
  if path.exists():
    for line in path.read_text().splitlines():
      if line.strip():
        row = json.loads(line)
        by_step[row["step"]] = row
  return [by_step[s] for s in sorted(by_step)]


def run_config(name: str, arg: str | None = "cpu", *, notebook: str = "notebook") -> dict:
  """Runs configs/<name>.py:<arg> in this process; returns its metrics rows and eval records."""
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel

  cfg = importlib.import_module(f"configs.{name}").get_config(arg)
  cfg.lock()
  workdir = workdir_root() / notebook / (name if arg is None else f"{name}_{arg}")
  shutil.rmtree(workdir, ignore_errors=True)
  summary = loop.run(cfg, str(workdir))
  evals = {}
  for tag, file in (("before", "eval_before.json"), ("after", "eval.json")):
    if (workdir / file).exists():
      evals[tag] = json.loads((workdir / file).read_text())
  return {"name": name, "arg": arg, "workdir": str(workdir), "rows": read_rows(workdir),
          "summary": summary, "eval": evals}


def run_configs(names: Sequence[str], arg: str | None = "cpu", *,
                notebook: str = "notebook") -> dict[str, dict]:
  """run_config for each name, in order; compiled programs are shared within the process."""
  return {name: run_config(name, arg, notebook=notebook) for name in names}


def _fmt(value) -> str:
  if isinstance(value, bool) or value is None:
    return str(value)
  if isinstance(value, float):
    return f"{value:.4g}"
  return str(value)


def markdown_table(header: Sequence[str], rows: Sequence[Sequence]) -> str:
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  lines += ["| " + " | ".join(_fmt(v) for v in row) + " |" for row in rows]
  return "\n".join(lines)


def runs_table(runs: Mapping[str, dict], keys: Sequence[str] = TABLE_KEYS) -> str:
  """Markdown: one row per run with its last step's metrics."""
  rows = []
  for name, run in runs.items():
    last = run["rows"][-1] if run["rows"] else {}
    rows.append([f"`{name}`", last.get("step")] + [last.get(k, "") for k in keys])
  return markdown_table(["config", "step", *keys], rows)


def plot_runs(runs: Mapping[str, dict], keys: Sequence[str] = RUN_KEYS, title: str = ""):
  """One panel per metric, one line per run (metric against RL step); returns the figure."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
  for ax, key in zip(axes[0], keys):
    for name, run in runs.items():
      points = [(r["step"], r[key]) for r in run["rows"] if isinstance(r.get(key), (int, float))]
      if points:
        ax.plot(*zip(*points), marker="o", ms=3, label=name)
    ax.set_title(key)
    ax.set_xlabel("RL step")
  axes[0][0].legend(fontsize=7)
  if title:
    fig.suptitle(title)
  fig.tight_layout()
  return fig


def plot_passk(records: Mapping[str, dict], title: str = ""):
  """pass@k against k (log2 axis) for several eval records (eval.json contents)."""
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel

  fig, ax = plt.subplots(figsize=(4.5, 3.2))
  for label, record in records.items():
    ks = sorted(int(k[5:]) for k in record if k.startswith("pass@") and k[5:].isdigit())
    if ks:
      ax.plot(ks, [record[f"pass@{k}"] for k in ks], marker="o", label=label)
  ax.set_xscale("log", base=2)
  ax.set_xlabel("k")
  ax.set_ylabel("pass@k")
  ax.legend(fontsize=8)
  if title:
    ax.set_title(title)
  fig.tight_layout()
  return fig


def _show(fig) -> None:
  """Displays a figure as PNG bytes: a run's metrics.png switches matplotlib to the Agg backend,
  after which a notebook no longer renders figures by itself."""
  import io  # pylint: disable=import-outside-toplevel

  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  from IPython.display import Image, display  # pylint: disable=import-outside-toplevel
  buffer = io.BytesIO()
  fig.savefig(buffer, format="png", dpi=100)
  plt.close(fig)
  display(Image(data=buffer.getvalue()))


def show_runs(runs: Mapping[str, dict]) -> None:
  """Learning curves of the runs side by side, then their last-step metrics as a table."""
  from IPython.display import Markdown, display  # pylint: disable=import-outside-toplevel
  _show(plot_runs(runs))
  display(Markdown(runs_table(runs)))


def passk_records(runs: Mapping[str, dict]) -> dict[str, dict]:
  """{"<config> before|after": eval record} for the runs whose evaluation computed pass@k."""
  return {f"{name} {tag}": record for name, run in runs.items()
          for tag, record in run["eval"].items() if "pass@1" in record}


def show_passk(runs: Mapping[str, dict]) -> None:
  records = passk_records(runs)
  if records:
    _show(plot_passk(records, "held-out pass@k"))
  else:
    print("no held-out pass@k in these runs (their eval.size is 0)")


def claim_summary(claim: str) -> dict:
  path = CLAIMS / claim / "summary.json"
  if not path.exists():
    raise FileNotFoundError(f"no measured result for claim {claim!r} ({path}); run "
                            f"python -m experiments.claims --claim {claim} --seeds 3")
  return json.loads(path.read_text())


def claim_table(summary: Mapping) -> str:
  """Markdown: one row per arm, the deciding metric and held-out pass@k as mean +- s.e. over seeds."""
  metric = summary["metric"]
  ks = set()
  for arm in summary["arms"].values():
    for seed in arm["seeds"].values():
      ks |= {k for k in seed.get("eval_after", {}) if k.startswith("pass@") and k[5:].isdigit()}
  ks = sorted(ks, key=lambda k: int(k[5:]))
  shown = [k for k in ks if k in ("pass@1", ks[-1])] if ks else []
  rows = []
  for name, arm in summary["arms"].items():
    seeds = list(arm["seeds"].values())
    row = [f"`{name}`", len(seeds), _mean_se([s["values"].get(metric) for s in seeds])]
    row += [_mean_se([s.get("eval_after", {}).get(k) for s in seeds], scale=100) for k in shown]
    rows.append(row)
  return markdown_table(["arm", "seeds", metric, *[f"held-out {k} (%)" for k in shown]], rows)


def _mean_se(values, scale: float = 1.0) -> str:
  values = [scale * v for v in values if isinstance(v, (int, float))]
  if not values:
    return ""
  mean = sum(values) / len(values)
  if len(values) == 1:
    return f"{mean:.4g}"
  var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
  return f"{mean:.4g} +- {(var / len(values)) ** 0.5:.2g}"


def verdict_line(summary: Mapping) -> str:
  verdict = summary.get("verdict") or {}
  parts = [f"expected: `{verdict.get('expect', '?')}`"]
  for tag, v in (("unpaired", verdict), ("paired", verdict.get("paired") or {})):
    if "difference" in v:
      parts.append(f"{tag}: difference {v['difference']:.4g} +- {v['stderr']:.2g} "
                   f"({v['margin_se']:.1f} s.e.) -> **{v['verdict']}**")
  return "; ".join(parts)


def show_claim(claim: str) -> None:
  """Displays a claim's sentence, the arms side by side, the verdict, the command and its plots."""
  from IPython.display import Image, Markdown, display  # pylint: disable=import-outside-toplevel

  summary = claim_summary(claim)
  display(Markdown(f"**{summary['paper']}**\n\n{summary['sentence']}\n\n"
                   f"{claim_table(summary)}\n\n{verdict_line(summary)}\n\n"
                   f"Measured {summary.get('date', '?')} on {summary.get('machine', '?')} at commit "
                   f"`{summary.get('commit', '?')}`. Rerun: `{summary.get('command', '')}`"))
  for png in ("curves.png", "passk.png"):
    if (CLAIMS / claim / png).exists():
      display(Image(filename=str(CLAIMS / claim / png), width=640))
