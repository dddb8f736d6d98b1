"""notebooks/: the committed notebooks are what notebooks/make_notebooks.py writes, every config and
every measured claim has a family, and every notebook executes without a cell error.

Execution uses nbclient with a real IPython kernel, as Jupyter or Colab would, on the CPU-sized
settings (RLVR_NOTEBOOK_SMOKE=1) and the suite's compilation cache.
"""
from __future__ import annotations

import json

import nbclient
import nbformat
import pytest

from notebooks import helpers
from notebooks import make_notebooks as nb


def test_committed_notebooks_are_current():
  for family in nb.FAMILIES:
    path = nb.NOTEBOOKS / f"{family}.ipynb"
    assert path.exists() and path.read_text() == nb.render(family), (
        "run: python -m notebooks.make_notebooks")
  written = {p.stem for p in nb.NOTEBOOKS.glob("*.ipynb")}
  assert written == set(nb.FAMILIES), f"notebooks with no family: {written - set(nb.FAMILIES)}"


def test_every_config_and_claim_has_exactly_one_family():
  configs = [c for _, _, names, _, _ in nb.FAMILIES.values() for c in names]
  claims = [c for _, _, _, names, _ in nb.FAMILIES.values() for c in names]
  assert sorted(configs) == nb.config_names(), "add the config to a family in make_notebooks.py"
  assert sorted(claims) == nb.measured_claims(), "add the claim to a family in make_notebooks.py"


def test_notebooks_are_valid_and_stripped():
  for family in nb.FAMILIES:
    book = nbformat.read(nb.NOTEBOOKS / f"{family}.ipynb", as_version=4)
    nbformat.validate(book)
    code = [c for c in book.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code), family
    assert nb.colab_url(family) in book.cells[0].source
    assert 'if "google.colab" in sys.modules:' in code[0].source  # install only in Colab


def test_claim_table_reads_every_measured_summary():
  for claim in nb.measured_claims():
    summary = helpers.claim_summary(claim)
    table = helpers.claim_table(summary)
    assert table.count("\n") == 1 + len(summary["arms"]), claim  # header, rule, one row per arm
    assert "s.e." in helpers.verdict_line(summary) or "verdict" not in summary, claim


def test_claim_table_hand_worked():
  seeds = lambda *vals: {str(i): {"values": {"m": v}, "eval_after": {"pass@1": v, "pass@4": 2 * v}}
                         for i, v in enumerate(vals)}
  summary = {"metric": "m", "arms": {"a": {"seeds": seeds(0.1, 0.3)}, "b": {"seeds": seeds(0.5)}}}
  table = helpers.claim_table(summary).splitlines()
  assert table[0] == "| arm | seeds | m | held-out pass@1 (%) | held-out pass@4 (%) |"
  # mean 0.2, s.e. = sd / sqrt(2) = 0.1414 / 1.414 = 0.1; pass@4 x 100: 40 +- 20
  assert table[2] == "| `a` | 2 | 0.2 +- 0.1 | 20 +- 10 | 40 +- 20 |"
  assert table[3] == "| `b` | 1 | 0.5 | 50 | 100 |"


@pytest.mark.slow
@pytest.mark.parametrize("family", list(nb.FAMILIES))
def test_notebook_executes(family, tmp_path, monkeypatch):
  monkeypatch.setenv("RLVR_NOTEBOOK_SMOKE", "1")
  monkeypatch.setenv("RLVR_NOTEBOOK_WORKDIR", str(tmp_path))
  monkeypatch.setenv("JAX_COMPILATION_CACHE_DIR", str(helpers.REPO / ".jax_cache"))
  monkeypatch.setenv("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.2")
  monkeypatch.setenv("JAX_PLATFORMS", "cpu")
  book = nbformat.read(nb.NOTEBOOKS / f"{family}.ipynb", as_version=4)
  client = nbclient.NotebookClient(book, timeout=900, kernel_name="python3",
                                   resources={"metadata": {"path": str(nb.NOTEBOOKS)}})
  client.execute()  # raises CellExecutionError naming the cell on any error
  outputs = [o for c in book.cells if c.cell_type == "code" for o in c.outputs]
  images = [o for o in outputs if "image/png" in o.get("data", {})]
  assert images, f"{family}: no figure was displayed"
  _, _, names, claims, _ = nb.FAMILIES[family]
  for name in names:  # each config ran and wrote its metrics
    rows = helpers.read_rows(next(tmp_path.glob(f"*/{name}_cpu")))
    assert [r["step"] for r in rows] == [1, 2], name
  text = json.dumps([o.get("data", {}).get("text/markdown", "") for o in outputs])
  for claim in claims:
    assert helpers.claim_summary(claim)["paper"].split(",")[0] in text, claim
