"""Fused log-prob and entropy of sampled tokens (issue 6): ``logprob(hidden, weight, targets, ...)``.

Layout (docs/style.md item 11): ``reference.py`` (materialised oracle), ``xla.py`` (tiled jnp,
custom VJP), ``pallas_tpu.py`` (Pallas TPU, interpretable on CPU), ``pallas_mosaic_gpu.py`` (Mosaic
GPU forward for Hopper), ``api.py`` (selection and fallback). README.md explains the design choices
(including why the policy-loss epilogue is left to XLA) with measurements.

Note: ``rlvr_jax.kernels.logprob`` is the *function* (re-exported by ``rlvr_jax/kernels``); import the
implementation modules with ``from rlvr_jax.kernels.logprob import xla`` rather than by attribute
access on ``rlvr_jax.kernels.logprob``.
"""
from rlvr_jax.kernels.logprob.api import IMPLEMENTATIONS, logprob, select_implementation

__all__ = ["IMPLEMENTATIONS", "logprob", "select_implementation"]
