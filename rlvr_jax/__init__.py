"""rlvr_jax: RL with verifiable rewards and self-play post-training of language models, in JAX.

``__version__`` below is the one place the version is written (pyproject.toml reads it; CHANGELOG.md
says what changed; the README ledger names the version each result was measured with).

Running from a checkout. setup.py installs the top-level ``kernels/`` folder as ``rlvr_jax.kernels``,
and an editable install maps that name with its own finder. Imported straight from a checkout
(``PYTHONPATH=<checkout>``, or ``python -m experiments.run`` at the repository root after a
non-editable ``pip install .``, whose installed copy the checkout's ``rlvr_jax/`` then shadows),
this package has no ``kernels`` subfolder, and ``from rlvr_jax import kernels`` would fail. In that
case only, the finder below maps ``rlvr_jax.kernels`` to ``<checkout>/kernels``; its submodules
(``rlvr_jax.kernels.logprob.xla``) then resolve through that package's ``__path__`` as usual. It is
appended to ``sys.meta_path``, so a finder that already knows the name (the editable install's) wins;
both point at the same folder.
"""
import importlib.abc
import importlib.util
import os
import sys

__version__ = "0.2.0"

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(_PACKAGE_DIR)
_CHECKOUT_KERNELS = os.path.join(_ROOT, "kernels")


class _CheckoutKernelsFinder(importlib.abc.MetaPathFinder):
    """Finds ``rlvr_jax.kernels`` in the checkout's top-level ``kernels/`` folder."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "rlvr_jax.kernels":
            return None
        return importlib.util.spec_from_file_location(
            fullname,
            os.path.join(_CHECKOUT_KERNELS, "__init__.py"),
            submodule_search_locations=[_CHECKOUT_KERNELS],
        )


def _from_checkout() -> bool:
    # pyproject.toml beside kernels/ marks a checkout: an installed rlvr_jax has its own kernels/ and a
    # site-packages/kernels/ next to it would be the unrelated PyPI package of that name.
    return (
        not os.path.isdir(os.path.join(_PACKAGE_DIR, "kernels"))
        and os.path.isfile(os.path.join(_CHECKOUT_KERNELS, "__init__.py"))
        and os.path.isfile(os.path.join(_ROOT, "pyproject.toml"))
    )


# By class name, so that importlib.reload(rlvr_jax) does not stack a second finder.
if _from_checkout() and not any(type(f).__name__ == "_CheckoutKernelsFinder" for f in sys.meta_path):
    sys.meta_path.append(_CheckoutKernelsFinder())
