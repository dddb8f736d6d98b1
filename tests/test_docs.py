"""The design notes the code cites live in docs/, and every citation of them resolves.

Docstrings and comments cite docs/design.md, docs/style.md ("item N"), docs/environment.md and
docs/papers.md ("N.N", the section numbers of the paper survey). These tests fail when a tracked
.py / .md file points outside the repository (the old workspace notes), names a docs/ file that
does not exist, cites a papers.md section that has no heading, or a style item that is not there.
"""
from __future__ import annotations

import pathlib
import re
import subprocess

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
EXCLUDED = (".venv", "gpu_wheels", "build")
# Built from pieces so that this file does not match its own check.
OUTSIDE = ".." + "/shared"

DOC_FILE = re.compile(r"\bdocs/([A-Za-z0-9_.-]+?\.md)\b")
# "docs/papers.md 2.1", "... 2.3 / 2.8", "... 1.1 and 2.2", also across a line break.
PAPERS_CITE = re.compile(r"docs/papers\.md((?:(?:[\s,/]|and\b)+\d+\.\d+\b)+)")
STYLE_CITE = re.compile(r"docs/style\.md,?\s+items?\s+(\d+)")
SECTION_HEADING = re.compile(r"^#{1,6}\s+(\d+\.\d+)\b", re.MULTILINE)
STYLE_ITEM = re.compile(r"^(\d+)\.\s", re.MULTILINE)
MD_LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


def _excluded(rel: pathlib.PurePath) -> bool:
  return bool(rel.parts) and rel.parts[0] in EXCLUDED


def tracked_files() -> list[pathlib.Path]:
  """Tracked .py and .md files (every such file when the checkout is not a git work tree)."""
  try:
    out = subprocess.run(["git", "ls-files", "-z", "--", "*.py", "*.md"], cwd=REPO,
                         capture_output=True, check=True).stdout.decode()
    rels = [pathlib.PurePosixPath(p) for p in out.split("\0") if p]
  except (OSError, subprocess.CalledProcessError):
    rels = [p.relative_to(REPO) for ext in ("py", "md") for p in REPO.rglob(f"*.{ext}")]
  files = [REPO / rel for rel in rels if not _excluded(rel)]
  return sorted(p for p in files if p.is_file())


@pytest.fixture(scope="module")
def texts() -> dict[str, str]:
  return {str(p.relative_to(REPO)): p.read_text(encoding="utf-8", errors="replace")
          for p in tracked_files()}


def _hits(texts: dict[str, str], pattern: re.Pattern) -> list[tuple[str, int, re.Match]]:
  return [(name, text.count("\n", 0, m.start()) + 1, m)
          for name, text in texts.items() for m in pattern.finditer(text)]


def test_files_found(texts):
  assert "rlvr_jax/__init__.py" in texts and len(texts) > 50


def test_no_reference_outside_the_repository(texts):
  bad = [f"{name}:{i + 1}" for name, text in texts.items()
         for i, line in enumerate(text.splitlines()) if OUTSIDE in line]
  assert not bad, f"these lines point at workspace notes outside the repository ({OUTSIDE}); " \
                  f"cite docs/ instead: {bad}"


def test_cited_docs_files_exist(texts):
  missing = sorted({f"{name}:{line} -> docs/{m.group(1)}"
                    for name, line, m in _hits(texts, DOC_FILE)
                    if not (DOCS / m.group(1)).is_file()})
  assert not missing, f"citations of docs/ files that do not exist: {missing}"


def test_markdown_links_in_docs_resolve():
  missing = []
  for page in sorted(DOCS.glob("*.md")):
    for m in MD_LINK.finditer(page.read_text(encoding="utf-8")):
      target = m.group(1)
      if "://" not in target and not (page.parent / target).is_file():
        missing.append(f"{page.relative_to(REPO)} -> {target}")
  assert not missing, f"broken relative links: {missing}"


def test_cited_papers_sections_exist(texts):
  headings = set(SECTION_HEADING.findall((DOCS / "papers.md").read_text(encoding="utf-8")))
  cited = _hits(texts, PAPERS_CITE)
  assert cited, "no docs/papers.md section citations found: is the pattern still right?"
  missing = sorted({f"{name}:{line} -> {section}" for name, line, m in cited
                    for section in re.findall(r"\d+\.\d+", m.group(1)) if section not in headings})
  assert not missing, (f"docs/papers.md has no heading for these cited sections: {missing}; "
                       f"headings: {sorted(headings)}")


def test_cited_style_items_exist(texts):
  items = set(STYLE_ITEM.findall((DOCS / "style.md").read_text(encoding="utf-8")))
  cited = _hits(texts, STYLE_CITE)
  assert cited, "no docs/style.md item citations found: is the pattern still right?"
  missing = sorted({f"{name}:{line} -> item {m.group(1)}" for name, line, m in cited
                    if m.group(1) not in items})
  assert not missing, f"docs/style.md has no such numbered item: {missing}"


def test_patterns_parse_the_citation_forms():
  forms = {"docs/papers.md 2.1.": ["2.1"], "docs/papers.md 2.3 / 2.8)": ["2.3", "2.8"],
           "docs/papers.md 1.1 and 2.2 (": ["1.1", "2.2"],
           "docs/papers.md 2.3, 2.8).": ["2.3", "2.8"],
           "docs/papers.md\n             2.4]": ["2.4"], "docs/papers.md 4.4 #9": ["4.4"]}
  for text, want in forms.items():
    (m,) = PAPERS_CITE.finditer(text)
    assert re.findall(r"\d+\.\d+", m.group(1)) == want, text
  assert STYLE_CITE.search("(docs/style.md item 11)").group(1) == "11"
  assert DOC_FILE.findall("see docs/design.md, and docs/papers.md.") == ["design.md", "papers.md"]
