"""rlvr_jax.optional.require: the error for a missing extra names the package and the install line."""
import sys

import pytest

from rlvr_jax import optional


def test_missing_extra_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, "tensorflow_datasets", None)  # import now raises ImportError
  with pytest.raises(ImportError, match=r"data source 'tfds' needs the optional package "
                     r"'tensorflow-datasets'.*pip install 'rlvr_jax\[tfds\]'"):
    optional.require("tensorflow_datasets", "data source 'tfds'")


def test_missing_unknown_package_names_pip_line(monkeypatch):
  monkeypatch.setitem(sys.modules, "some_missing_pkg", None)
  with pytest.raises(ImportError, match=r"pip install some_missing_pkg"):
    optional.require("some_missing_pkg.sub", "a feature")


def test_present_module_is_returned():
  assert optional.require("json", "x").dumps([1]) == "[1]"
