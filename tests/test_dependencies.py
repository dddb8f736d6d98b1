"""Declared dependencies are exactly what the code imports.

Every top-level import in the library (rlvr_jax/, kernels/) must come from the standard library,
the package itself, a base dependency of pyproject.toml, or, when imported where it is used (inside
a function), an optional extra. Checkout code (experiments/, configs/, notebooks/) may also use the
test extra, and benchmark peers that live in their own environments. In the other direction, every
base dependency must be imported somewhere (a leftover such as einops fails), except the few that
are imported through another package, listed with the reason.
"""
from __future__ import annotations

import ast
import functools
import importlib.metadata
import pathlib
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = pathlib.Path(__file__).resolve().parents[1]
LIBRARY = ("rlvr_jax", "kernels")
CHECKOUT = ("experiments", "configs", "notebooks")
OWN = {"rlvr_jax", "kernels", "experiments", "configs", "notebooks", "tests"}
# Benchmark peers, imported only inside the peer's benchmark function and installed in their own
# environments (BENCHMARKS.md): not dependencies of rlvr_jax.
PEERS = {"trl", "tunix", "datasets"}
# Declared but never imported by name, and why.
IMPORTED_THROUGH = {
    "jaxlib": "jax's compiled backend; pinned beside jax so the pair moves together",
}


def _project(root=ROOT):
  return tomllib.loads((root / "pyproject.toml").read_text())["project"]


def _names(requirements) -> set[str]:
  return {canonicalize_name(Requirement(r).name) for r in requirements}


def _imports(folder: str, root=ROOT) -> dict[str, tuple[str, bool]]:
  """{top-level module: (first file importing it, imported at module level anywhere)}."""
  found: dict[str, tuple[str, bool]] = {}
  for path in sorted((root / folder).rglob("*.py")):
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(n) for n in tree.body}
    for node in ast.walk(tree):
      if isinstance(node, ast.Import):
        modules = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        modules = [node.module]
      else:
        continue
      for module in modules:
        top = module.split(".")[0]
        where, eager = found.get(top, (str(path.relative_to(root)), False))
        found[top] = (where, eager or id(node) in top_level)
  return found


@functools.lru_cache(maxsize=None)
def _module_distributions() -> dict[str, list[str]]:
  return importlib.metadata.packages_distributions()  # scans every installed distribution: slow


def _distributions(module: str) -> set[str]:
  return {canonicalize_name(d) for d in _module_distributions().get(module, [])}


def undeclared_imports(root=ROOT) -> list[str]:
  """One line per import that pyproject.toml does not cover."""
  project = _project(root)
  base = _names(project["dependencies"])
  extras = project["optional-dependencies"]
  optional = set().union(*(_names(extras[e]) for e in extras if e not in ("test", "cuda", "tpu")))
  test = _names(extras["test"])
  problems = []
  for folder in LIBRARY + CHECKOUT:
    for module, (where, eager) in sorted(_imports(folder, root).items()):
      if module in sys.stdlib_module_names or module in OWN or module == "__future__":
        continue
      if folder in CHECKOUT and module in PEERS:
        continue
      dists = _distributions(module)
      if not dists:
        problems.append(f"{where}: imports {module!r}, which no installed distribution provides")
      elif dists & base:
        continue
      elif dists & optional and not eager:
        continue  # an extra, imported where it is used
      elif folder in CHECKOUT and dists & (optional | test):
        continue
      else:
        kind = "at module level " if eager and dists & optional else ""
        problems.append(f"{where}: imports {module!r} {kind}from {sorted(dists)}, which is not a "
                        "base dependency in pyproject.toml")
  return problems


def test_imports_are_declared():
  problems = undeclared_imports()
  assert not problems, "\n".join(problems)


def test_every_base_dependency_is_imported():
  imported = set()
  for folder in LIBRARY + CHECKOUT:
    for module in _imports(folder):
      imported |= _distributions(module)
  unused = _names(_project()["dependencies"]) - imported - set(IMPORTED_THROUGH)
  assert not unused, f"declared in pyproject.toml but never imported: {sorted(unused)}"


def test_checker_refuses_an_eager_extra_and_an_undeclared_package(tmp_path):
  (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
  (tmp_path / "rlvr_jax").mkdir()
  (tmp_path / "rlvr_jax" / "ok.py").write_text("import numpy\n\ndef plot():\n  import matplotlib\n")
  assert undeclared_imports(tmp_path) == []
  (tmp_path / "rlvr_jax" / "bad.py").write_text("import matplotlib\n\ndef f():\n  import torch\n")
  problems = undeclared_imports(tmp_path)
  assert len(problems) == 2, problems
  assert "'matplotlib' at module level" in problems[0] and "rlvr_jax/bad.py" in problems[0]
  assert "'torch'" in problems[1]
