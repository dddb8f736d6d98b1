"""Sharding constraints on activations by logical axis name, active only under `use_mesh`.

The model tags its main activations with logical names (``constrain(x, ("batch", "length",
"embed"))``). Outside a `use_mesh` block ``constrain`` returns its input unchanged, so the model runs
as plain JAX on one device with no mesh and no rules (all single-device tests and notebooks). Inside
one, the names are turned into a ``PartitionSpec`` with the block's rules (``rules.py``) and applied
with ``jax.lax.with_sharding_constraint``: GSPMD then keeps, e.g., the KV cache split over the batch
and kv-head axes instead of guessing.

The rules are read when a function is traced, so a jitted function must be called under the same
`use_mesh` it was first traced under (``jax.set_mesh`` makes the mesh shape part of jit's cache key;
the rules are not, so keep one rule set per process, as a run does).
"""
from __future__ import annotations

import contextlib
import functools
import threading
from typing import Any, Callable, Iterator, Sequence

import jax
from jax.sharding import Mesh, NamedSharding

from rlvr_jax.parallel import rules as rules_lib

_STATE = threading.local()


def current() -> tuple[Mesh, tuple[tuple[str, Any], ...]] | None:
  """The (mesh, rules) of the innermost `use_mesh` block on this thread, or None."""
  return getattr(_STATE, "value", None)


@contextlib.contextmanager
def use_mesh(mesh: Mesh, rules: Sequence[tuple[str, Any]] | None = None) -> Iterator[Mesh]:
  """Makes ``mesh`` the current mesh (``jax.set_mesh``) and ``rules`` the logical axis rules."""
  previous = current()
  _STATE.value = (mesh, rules_lib.as_rules(rules))
  try:
    with jax.set_mesh(mesh):
      yield mesh
  finally:
    _STATE.value = previous


def under_mesh(fn: Callable, mesh: Mesh, rules: Sequence[tuple[str, Any]] | None = None) -> Callable:
  """``fn`` wrapped so that every call runs inside ``use_mesh(mesh, rules)``."""

  @functools.wraps(fn)
  def wrapped(*args, **kwargs):
    with use_mesh(mesh, rules):
      return fn(*args, **kwargs)

  return wrapped


def constrain(x: jax.Array, names: Sequence[str | None]) -> jax.Array:
  """``x`` with its sharding pinned to the logical ``names`` (one per dimension); a no-op outside
  `use_mesh`. A dimension its mesh axes do not divide is left replicated (``rules.logical_to_spec``)."""
  ctx = current()
  if ctx is None:
    return x
  mesh, rules = ctx
  if len(names) != x.ndim:
    raise ValueError(f"constrain: {len(names)} axis names {tuple(names)} for an array of shape "
                     f"{x.shape}")
  spec = rules_lib.logical_to_spec(names, x.shape, rules, mesh)
  return jax.lax.with_sharding_constraint(x, NamedSharding(mesh, spec))
