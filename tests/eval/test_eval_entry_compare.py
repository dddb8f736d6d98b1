"""experiments/eval.py without a model: --base/--compare (the per-problem comparison written as
vs_base) and --plot (pass@k curves), on small fabricated eval jsons."""
import json
import os
import subprocess
import sys

import pytest

from experiments import eval as eval_entry

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IDS = ["a1", "b2", "c3", "d4"]


def _write(path, tag, counts, n, greedy, passk, ids=IDS):
  record = {"tag": tag, "checkpoint": f"/ckpt/{tag}", "num_problems": len(ids), "num_samples": n,
            "temperature": 1.0, "greedy_accuracy": sum(greedy) / len(greedy),
            **{f"pass@{k}": v for k, v in passk.items()},
            "per_problem": {"problem_ids": ids, "num_samples": n, "correct_counts": counts,
                            "greedy_correct": greedy}}
  eval_entry.write_record(record, str(path))
  return str(path)


def _cli(*args):
  return subprocess.run([sys.executable, "-m", "experiments.eval", *args], cwd=ROOT,
                        capture_output=True, text=True, timeout=60, check=False)


def test_compare_writes_vs_base_and_prints_the_tables(tmp_path):
  # base accuracies 0, 1/4, 3/4, 1; new (n=8): 2/8, 2/8, 4/8, 8/8.
  # deltas: +0.25 (win), 0 (tie), -0.25 (loss), 0 (tie): mean 0.
  base = _write(tmp_path / "eval_base.json", "base", [0, 1, 3, 4], 4, [0, 0, 1, 1],
                {1: 0.5, 2: 0.7, 4: 0.75})
  new = _write(tmp_path / "eval_step10.json", "step10", [2, 2, 4, 8], 8, [1, 0, 1, 1],
               {1: 0.5, 2: 0.65, 4: 0.8, 8: 1.0})
  record = eval_entry.compare_files(base, new)
  vs = record["vs_base"]
  assert vs["base"] == "base" and vs["num_problems"] == 4
  s = vs["sampled"]
  assert (s["wins"], s["losses"], s["ties"]) == (1, 1, 2) and s["mean_delta"] == 0.0
  # s.e.: deltas +-0.25 and two zeros: var (ddof 1) = 2 * 0.0625 / 3, se^2 = var / 4 = 1/96.
  assert s["mean_delta_se"] ** 2 == pytest.approx(1 / 96)
  counts = {r["bin"]: r["count"] for r in vs["winner_take_all"]}
  assert counts == {"=0": 1, "(0, 0.25]": 1, "(0.25, 0.5]": 0, "(0.5, 0.75]": 1, "(0.75, 1)": 0,
                    "=1": 1}
  assert vs["greedy"]["wins"] == 1 and vs["greedy"]["losses"] == 0  # problem 0: 0 -> 1
  with open(new) as f:
    text = f.read()
  assert json.loads(text)["vs_base"] == vs
  assert '"correct_counts": [2, 2, 4, 8]' in text  # per-problem lists stay on one line
  table = eval_entry.format_comparison(vs)
  assert "1 wins / 1 losses / 2 ties" in table and "(0.25, 0.5]" in table
  assert "+0.00 +- 10.21 points" in table  # sqrt(1/96) = 0.1021


def test_compare_refuses_other_problems_and_old_jsons(tmp_path):
  base = _write(tmp_path / "eval_base.json", "base", [0, 1, 3, 4], 4, [0, 0, 1, 1], {1: 0.5})
  other = _write(tmp_path / "eval_other.json", "other", [0, 1, 3, 4], 4, [0, 0, 1, 1], {1: 0.5},
                 ids=["a1", "b2", "zz", "d4"])
  with pytest.raises(ValueError, match="problem 2 differs"):
    eval_entry.compare_files(base, other)
  old = tmp_path / "eval_old.json"
  old.write_text(json.dumps({"tag": "old", "pass@1": 0.5}))
  with pytest.raises(ValueError, match="evaluate that checkpoint again"):
    eval_entry.compare_files(str(old), base)
  with pytest.raises(ValueError, match="not an eval json"):
    eval_entry.load_record(str(_write_json(tmp_path / "eval.json", {"steps": 3})))


def _write_json(path, obj):
  path.write_text(json.dumps(obj))
  return path


def test_passk_curve_and_plot(tmp_path):
  base = _write(tmp_path / "eval_base.json", "base", [0, 1, 3, 4], 4, [0, 0, 1, 1],
                {4: 0.75, 1: 0.5, 2: 0.7})
  assert eval_entry.passk_curve(eval_entry.load_record(base)) == ([1, 2, 4], [0.5, 0.7, 0.75])
  new = _write(tmp_path / "eval_new.json", "new", [2, 2, 4, 8], 8, [1, 0, 1, 1],
               {1: 0.5, 2: 0.65, 4: 0.8, 8: 1.0})
  out = eval_entry.plot_passk_curves([base, new], str(tmp_path / "plots" / "passk.png"))
  with open(out, "rb") as f:
    assert f.read(8) == b"\x89PNG\r\n\x1a\n"
  with pytest.raises(ValueError, match="--curves"):
    eval_entry.plot_passk_curves([], str(tmp_path / "x.png"))


def test_cli_plot_and_compare(tmp_path):
  base = _write(tmp_path / "eval_base.json", "base", [0, 1, 3, 4], 4, [0, 0, 1, 1], {1: 0.5})
  new = _write(tmp_path / "eval_new.json", "new", [2, 2, 4, 8], 8, [1, 0, 1, 1], {1: 0.5})
  png = tmp_path / "curves.png"
  # --curves list plus a positional path.
  run = _cli("--plot", str(png), f"--curves={base}", new)
  assert run.returncode == 0, run.stderr
  assert png.stat().st_size > 0 and "wrote" in run.stdout
  run = _cli(f"--base={base}", f"--compare={new}")
  assert run.returncode == 0, run.stderr
  assert "1 wins / 1 losses / 2 ties" in run.stdout
  with open(new) as f:
    assert json.load(f)["vs_base"]["base"] == "base"
