"""Fused kernels of rlvr_jax, installed as ``rlvr_jax.kernels`` (see docs/design.md, packaging).

Each op lives in its own folder with a pure-jnp reference, an XLA fallback and Pallas kernels
(docs/style.md item 11). The public ops are re-exported here as functions, so both
``from rlvr_jax.kernels import logprob`` and ``rlvr_jax.kernels.logprob(hidden, weight, targets)``
call the op. The function shadows the ``logprob`` subpackage as an attribute of this package; its
modules stay importable as ``from rlvr_jax.kernels.logprob import xla``.

Imported under any other name, this file is the checkout's folder picked up as a top-level package
``kernels`` (the repository root on ``sys.path``): transformers probes for the unrelated Hugging Face
kernel-hub package of that name (``is_kernels_available``), and the probe imports whatever
``kernels`` it finds when no distribution metadata names it. That import must not fail, even where
rlvr_jax is not installed, so it defines nothing: no ``__version__``, which makes the probe report
the hub package as absent.
"""
if __name__ == "rlvr_jax.kernels":
    from rlvr_jax.kernels.logprob.api import logprob

    __all__ = ["logprob"]
else:
    __all__ = []
