"""Fused kernels of rlvr_jax, installed as ``rlvr_jax.kernels`` (see DESIGN.md, packaging).

Each op lives in its own folder with a pure-jnp reference, an XLA fallback and Pallas kernels
(STYLE.md item 11). The public ops are re-exported here as functions, so both
``from rlvr_jax.kernels import logprob`` and ``rlvr_jax.kernels.logprob(hidden, weight, targets)``
call the op. The function shadows the ``logprob`` subpackage as an attribute of this package; its
modules stay importable as ``from rlvr_jax.kernels.logprob import xla``.
"""
from rlvr_jax.kernels.logprob.api import logprob

__all__ = ["logprob"]
