"""notebooks/papers.ipynb is what notebooks/make_papers_notebook.py writes: a valid nbformat-4
notebook with a section (card title, :cpu run, plot) for every configs/*.py."""
from __future__ import annotations

import json

from notebooks import make_papers_notebook as nb


def test_papers_notebook_is_current_and_covers_every_config():
  text = nb.NOTEBOOK.read_text()
  assert text == nb.render(), "run: python -m notebooks.make_papers_notebook"
  book = json.loads(text)
  assert book["nbformat"] == 4
  code = ["".join(c["source"]) for c in book["cells"] if c["cell_type"] == "code"]
  for name in nb.config_names():
    assert any(f"--config configs/{name}.py:cpu" in c for c in code), name
