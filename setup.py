"""Package layout for rlvr_jax; metadata and dependencies are in pyproject.toml.

The top-level ``kernels/`` folder is installed as ``rlvr_jax.kernels`` (never as a top-level package
named ``kernels``, which is an unrelated PyPI project), so the package list and ``package_dir`` are
computed here. ``configs/``, ``experiments/`` and ``notebooks/`` are used from a checkout
(``python -m experiments.run`` at the repository root) and are not installed.
"""
import setuptools

setuptools.setup(
    packages=["rlvr_jax"]
    + ["rlvr_jax." + p for p in setuptools.find_packages("rlvr_jax")]
    + ["rlvr_jax.kernels"]
    + ["rlvr_jax.kernels." + p for p in setuptools.find_packages("kernels")],
    package_dir={"rlvr_jax": "rlvr_jax", "rlvr_jax.kernels": "kernels"},
)
