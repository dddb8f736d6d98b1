"""Public entry point: ``logprob(hidden, weight, targets, *, temperature, implementation)``.

Picks one of the implementations registered in ``IMPLEMENTATIONS`` by name and backend:

  =============  ==============================  =============================================
  request        TPU                             GPU                       CPU
  =============  ==============================  =============================================
  None           pallas (Pallas TPU)             xla (logged)              xla
  "pallas"       Pallas TPU                      Mosaic GPU (Hopper+),     Pallas TPU kernel in
                                                 else xla (logged)         interpret mode (logged)
  "xla"          tiled jnp + custom VJP          same                      same
  "reference"    materialised [N, V] (oracle)    same                      same
  =============  ==============================  =============================================

On GPU, ``None`` picks ``xla``. Both GPU paths pass the ``gpu`` tests on an H200 (jax 0.11.2) and
run at the same speed there (N = 16,384, D = 1,536, V = 151,936, bf16: forward 19.9 ms xla vs 19.7 ms
Mosaic; forward + backward 61.5 vs 61.8 ms, the backward being xla's in both; BENCHMARKS.md), so the
default is the one that runs on every GPU generation; ``"pallas"`` uses the Mosaic forward on Hopper,
whose only gain is no forward temporaries (0.26 GiB for xla).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp
from absl import logging
from jaxtyping import Array, Float, Int

from rlvr_jax.kernels.logprob import reference, xla

LogprobFn = Callable[..., tuple[Array, Array]]


# The Pallas modules import their backend's Pallas dialect (Mosaic GPU alone costs ~0.2 s), so they
# are imported on first use: a CPU run never pays for them.
def _pallas_tpu(*args, interpret: bool = False):
  from rlvr_jax.kernels.logprob import pallas_tpu
  return pallas_tpu.logprob_pallas_tpu(*args, interpret=interpret)


def _pallas_mosaic_gpu(*args):
  from rlvr_jax.kernels.logprob import pallas_mosaic_gpu
  return pallas_mosaic_gpu.logprob_pallas_mosaic_gpu(*args)


# Flat registry: name -> fn(hidden, weight, targets, temperature) -> (logp, entropy).
IMPLEMENTATIONS: dict[str, LogprobFn] = {
    "reference": reference.logprob_reference,
    "xla": xla.logprob_xla,
    "pallas_tpu": _pallas_tpu,
    "pallas_tpu_interpret": lambda *a: _pallas_tpu(*a, interpret=True),
    "pallas_mosaic_gpu": _pallas_mosaic_gpu,
}
REQUESTS = (None, "reference", "xla", "pallas")

_already_logged: set[str] = set()


def _log_once(message: str) -> None:
  # Selection runs at trace time; one line per distinct reason keeps training logs readable.
  if message not in _already_logged:
    _already_logged.add(message)
    logging.warning("rlvr_jax.kernels.logprob: %s", message)


def select_implementation(implementation: str | None, backend: str, hidden_shape=None,
                          weight_shape=None, dtype=None) -> str:
  """Resolves a request to a key of ``IMPLEMENTATIONS``, logging why when it falls back.

  Shapes and dtype only matter for the Mosaic GPU kernel, which has layout requirements.
  """
  if implementation not in REQUESTS:
    raise ValueError(f"implementation={implementation!r} is not one of {REQUESTS}")
  if implementation in ("reference", "xla"):
    return implementation
  if backend == "tpu":
    return "pallas_tpu"
  if backend in ("gpu", "cuda", "rocm"):
    if implementation is None:
      _log_once("GPU: using 'xla' (as fast as the Mosaic GPU forward on an H200; "
                "implementation='pallas' uses the Mosaic forward on Hopper).")
      return "xla"
    from rlvr_jax.kernels.logprob import pallas_mosaic_gpu
    reason = pallas_mosaic_gpu.unsupported_reason(hidden_shape, weight_shape, dtype)
    if reason is not None:
      _log_once(f"GPU: Mosaic GPU kernel unavailable ({reason}); falling back to 'xla'.")
      return "xla"
    return "pallas_mosaic_gpu"
  if implementation is None:
    return "xla"
  _log_once(f"backend {backend!r} has no Pallas compiler; running the Pallas TPU kernel in "
            "interpret mode (slow, for tests only).")
  return "pallas_tpu_interpret"


def _check_inputs(hidden, weight, targets, temperature) -> float:
  if hidden.ndim != 2:
    raise ValueError(f"hidden must be [N, D], got shape {hidden.shape}")
  if weight.ndim != 2:
    raise ValueError(f"weight must be [D, V], got shape {weight.shape}")
  if hidden.shape[1] != weight.shape[0]:
    raise ValueError(f"hidden [N, D] = {hidden.shape} and weight [D, V] = {weight.shape} "
                     "disagree on D (HF lm_head weights are [V, D]: pass their transpose)")
  if targets.shape != (hidden.shape[0],):
    raise ValueError(f"targets must be [N] = ({hidden.shape[0]},), got shape {targets.shape}")
  if not jnp.issubdtype(targets.dtype, jnp.integer):
    raise ValueError(f"targets must be integer token ids, got dtype {targets.dtype}")
  for name, x in (("hidden", hidden), ("weight", weight)):
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"{name} must be floating point, got dtype {x.dtype}")
  try:
    temperature = float(temperature)
  except (TypeError, jax.errors.ConcretizationTypeError) as err:
    raise ValueError("temperature must be a static Python float (it selects the compiled "
                     f"kernel), got {temperature!r}") from err
  if not (math.isfinite(temperature) and temperature > 0):
    raise ValueError(f"temperature must be finite and > 0, got {temperature}")
  return temperature


def logprob(
    hidden: Float[Array, "N D"],
    weight: Float[Array, "D V"],
    targets: Int[Array, "N"],
    *,
    temperature: float = 1.0,
    implementation: str | None = None,
) -> tuple[Float[Array, "N"], Float[Array, "N"]]:
  """Log-prob of the sampled tokens and the entropy of the tempered softmax, fused with the lm head.

  Computes, without materialising the [N, V] logits (except ``implementation="reference"``),

      z = hidden @ weight / temperature,  logp = z[targets] - logsumexp(z),  H = -sum softmax(z) log softmax(z)

  accumulating in float32 whatever the input dtype. Both outputs are differentiable in ``hidden``
  and ``weight`` (the backward recomputes logits tile by tile). Every row must have a valid target
  in [0, V) (out-of-range targets give NaN); mask padding tokens in the loss.

  Args:
    hidden: final hidden states (after the last norm), [N, D].
    weight: unembedding, [D, V] (the transpose of an HF ``lm_head.weight``).
    targets: sampled token ids, int [N].
    temperature: the sampling temperature the log-probs must match (docs/papers.md 2.4: EAD's
      tempered sampling and truncated importance sampling).
    implementation: None (best for the backend), "reference", "xla" or "pallas".

  Returns:
    (logp [N], entropy [N]), float32.
  """
  temperature = _check_inputs(hidden, weight, targets, temperature)
  dtype = jnp.result_type(hidden.dtype, weight.dtype)
  name = select_implementation(implementation, jax.default_backend(), hidden.shape, weight.shape,
                              dtype)
  if name.startswith("pallas") and hidden.dtype != weight.dtype:
    # The kernels feed both operands to one MXU / wgmma product; casting the [D, V] weight here
    # would copy it, so mixed dtypes take the xla path, which accumulates them in float32 directly.
    _log_once(f"hidden is {hidden.dtype} but weight is {weight.dtype}; the Pallas kernels need one "
              "dtype, falling back to 'xla'.")
    name = "xla"
  return IMPLEMENTATIONS[name](hidden, weight, targets, temperature)
