"""Packaging: declared jax / flax ranges against known broken pairs, the package layout, the version,
and imports from a checkout.

Dependencies are read from pyproject.toml; setup.py (the package layout) is executed with
``setuptools.setup`` replaced by a recorder (offline, no build). The import
tests run in subprocesses with the editable install's finder removed from ``sys.meta_path``, so
``rlvr_jax`` comes from ``PYTHONPATH`` alone, as after a non-editable install shadowed by the checkout.
"""
import json
import os
import pathlib
import runpy
import subprocess
import sys
import textwrap
import tomllib

import pytest
import setuptools
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = pathlib.Path(__file__).resolve().parents[1]

# (package, versions) x (package, versions) that do not work together, with the symptom.
KNOWN_BROKEN = [
    (("jax", ">=0.11,<0.12"), ("flax", "<0.12.10"),
     "flax fails to import: jax.experimental.hijax has no HiPrimitive"),
]
# Pairs known to work: the CPU pins (requirements.txt) and the GPU image.
KNOWN_GOOD = {"cpu": {"jax": "0.10.2", "flax": "0.12.8"}, "accelerator": {"jax": "0.11.2", "flax": "0.12.10"}}
# Candidate releases for deciding whether a range meets a broken one (all final 0.x.y up to 0.30.60).
_CANDIDATES = [Version(f"0.{minor}.{patch}") for minor in range(31) for patch in range(61)]

# Strips the editable install's meta path finder (setuptools' __editable___*_finder module).
_NO_EDITABLE = ("import sys\n"
                "sys.meta_path[:] = [f for f in sys.meta_path\n"
                "                    if '__editable__' not in (getattr(f, '__module__', '') or '')]\n")


@pytest.fixture(scope="module")
def declared():
    """pyproject.toml's dependencies as {"install_requires": [...], "extras_require": {...}}."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {"install_requires": project["dependencies"],
            "extras_require": project["optional-dependencies"]}


@pytest.fixture(scope="module")
def layout():
    """The keyword arguments setup.py passes to ``setuptools.setup``."""
    recorded = {}
    original, cwd = setuptools.setup, os.getcwd()
    setuptools.setup = lambda **kwargs: recorded.update(kwargs)
    try:
        os.chdir(ROOT)  # setup.py finds packages relative to the working directory
        runpy.run_path(str(ROOT / "setup.py"), run_name="__main__")
    finally:
        setuptools.setup = original
        os.chdir(cwd)
    return recorded


def _ranges(requirements):
    """Intersects requirement strings into {canonical name: SpecifierSet}."""
    ranges = {}
    for line in requirements:
        req = Requirement(line)
        name = canonicalize_name(req.name)
        ranges[name] = ranges.get(name, SpecifierSet()) & req.specifier
    return ranges


def _admitted_broken(requirements):
    """Symptoms of the KNOWN_BROKEN pairs that ``requirements`` can resolve to."""
    ranges = _ranges(requirements)
    found = []
    for (pkg_a, bad_a), (pkg_b, bad_b), symptom in KNOWN_BROKEN:
        meets = [any(v in ranges.get(pkg, SpecifierSet()) & SpecifierSet(bad) for v in _CANDIDATES)
                 for pkg, bad in ((pkg_a, bad_a), (pkg_b, bad_b))]
        if all(meets):
            found.append(symptom)
    return found


def _accelerator_extras(declared):
    names = {pkg for (pkg_a, _), (pkg_b, _), _ in KNOWN_BROKEN for pkg in (pkg_a, pkg_b)}
    return {extra: reqs for extra, reqs in declared["extras_require"].items()
            if any(canonicalize_name(Requirement(r).name) in names for r in reqs)}


def test_layout_installs_kernels_inside_rlvr_jax(layout):
    assert layout["package_dir"] == {"rlvr_jax": "rlvr_jax", "rlvr_jax.kernels": "kernels"}
    assert {"rlvr_jax", "rlvr_jax.training", "rlvr_jax.kernels", "rlvr_jax.kernels.logprob"} <= set(
        layout["packages"])
    assert not any(p == "kernels" or p.startswith(("kernels.", "configs", "experiments"))
                   for p in layout["packages"])


def test_version_has_one_source():
    import rlvr_jax
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rlvr_jax.__version__"}
    assert Version(rlvr_jax.__version__) >= Version("0.2.0")
    assert f"## {rlvr_jax.__version__}" in (ROOT / "CHANGELOG.md").read_text()
    citation = (ROOT / "CITATION.cff").read_text()
    assert f'version: "{rlvr_jax.__version__}"' in citation


def test_extras_exclude_known_broken_pairs(declared):
    extras = _accelerator_extras(declared)
    assert {"cuda", "tpu"} <= set(extras)
    for extra, reqs in extras.items():
        assert not _admitted_broken(declared["install_requires"] + reqs), extra


def test_checker_catches_the_old_ranges():
    old_base = ["jax>=0.10.2,<0.12", "jaxlib>=0.10.2,<0.12", "flax>=0.12.8,<0.14"]
    assert _admitted_broken(old_base)
    assert _admitted_broken(old_base + ["jax[cuda13]>=0.11.2,<0.12", "flax>=0.12.8"])
    assert not _admitted_broken(old_base + ["jax[cuda13]>=0.11.2,<0.12", "flax>=0.12.10,<0.14"])


def test_known_good_pairs_still_resolve(declared):
    base = _ranges(declared["install_requires"])
    for name, version in KNOWN_GOOD["cpu"].items():
        assert Version(version) in base[name], (name, version)
    for extra in ("cuda", "tpu"):
        ranges = _ranges(declared["install_requires"] + declared["extras_require"][extra])
        for name, version in KNOWN_GOOD["accelerator"].items():
            assert Version(version) in ranges[name], (extra, name, version)


def test_requirements_pins_satisfy_declared_ranges(declared):
    # The README lines install with -c requirements.txt: every pin must fit the base and test ranges.
    pins = {}
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            req = Requirement(line)
            pins[canonicalize_name(req.name)] = Version(str(req.specifier).removeprefix("=="))
    ranges = _ranges(declared["install_requires"] + declared["extras_require"]["test"])
    checked = {name: spec for name, spec in ranges.items() if name in pins}
    assert {"jax", "jaxlib", "flax"} <= set(checked)
    for name, spec in checked.items():
        assert spec.contains(pins[name], prereleases=True), (name, str(pins[name]), str(spec))


def _run(code, cwd, pythonpath):
    env = dict(os.environ, PYTHONPATH=str(pythonpath))
    proc = subprocess.run([sys.executable, "-c", _NO_EDITABLE + textwrap.dedent(code)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_kernels_importable_from_checkout_without_install(tmp_path):
    out = _run("""
        import json
        import rlvr_jax
        import rlvr_jax.kernels
        from rlvr_jax.kernels import logprob
        from rlvr_jax.kernels.logprob import xla
        print(json.dumps({"rlvr_jax": rlvr_jax.__file__, "kernels": rlvr_jax.kernels.__file__,
                          "xla": xla.__file__, "logprob_callable": callable(logprob)}))
    """, cwd=tmp_path, pythonpath=ROOT)
    assert out["rlvr_jax"] == str(ROOT / "rlvr_jax" / "__init__.py")
    assert out["kernels"] == str(ROOT / "kernels" / "__init__.py")
    assert out["xla"] == str(ROOT / "kernels" / "logprob" / "xla.py")
    assert out["logprob_callable"]


def test_installed_layout_adds_no_finder(tmp_path):
    # An installed rlvr_jax has its own kernels/; a kernels/ beside it (the hub package) is not ours.
    site = tmp_path / "site"
    (site / "rlvr_jax" / "kernels").mkdir(parents=True)
    (site / "rlvr_jax" / "__init__.py").write_text((ROOT / "rlvr_jax" / "__init__.py").read_text())
    (site / "rlvr_jax" / "kernels" / "__init__.py").write_text("INSTALLED = True\n")
    (site / "kernels").mkdir()
    (site / "kernels" / "__init__.py").write_text("raise AssertionError('hub package imported')\n")
    out = _run("""
        import json, sys
        import rlvr_jax.kernels
        print(json.dumps({"installed": getattr(rlvr_jax.kernels, "INSTALLED", False),
                          "finders": [type(f).__name__ for f in sys.meta_path]}))
    """, cwd=tmp_path, pythonpath=site)
    assert out["installed"]
    assert "_CheckoutKernelsFinder" not in out["finders"]


def test_top_level_kernels_import_is_harmless_without_rlvr_jax():
    # A notebook at the repository root: the checkout's kernels/ is the top-level package `kernels`
    # that transformers probes for (the HF kernel hub); rlvr_jax is not installed (blocked here).
    out = _run("""
        import importlib.abc, json, sys

        class _NoRlvrJax(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if name.split(".")[0] == "rlvr_jax":
                    raise ModuleNotFoundError(f"No module named {name!r}", name=name)

        sys.meta_path.insert(0, _NoRlvrJax())
        from transformers import AutoProcessor, Qwen2ForCausalLM  # probes `kernels` first
        from transformers.utils.import_utils import is_kernels_available
        import kernels
        print(json.dumps({"file": kernels.__file__, "public": [n for n in dir(kernels) if not n.startswith("_")],
                          "hub_available": is_kernels_available()}))
    """, cwd=ROOT, pythonpath=ROOT)
    assert out["file"] == str(ROOT / "kernels" / "__init__.py")
    assert out["public"] == []
    assert not out["hub_available"]
