"""Logical axis name -> mesh axes rules (``config.sharding_rules``).

A rule list is a sequence of ``(logical_name, mesh_axes)`` where mesh_axes is None (replicate), a
mesh axis name, or a tuple of names. The first rule naming a logical axis wins. Logical names used
by the model's parameters (``rlvr_jax.models.transformer``): vocab, embed, q_heads, kv_heads,
head_dim, mlp, norm; by its activations (``constraints.constrain``) and the batches: batch, length,
embed, q_heads, kv_heads, head_dim, mlp, vocab, and layer (the KV cache's leading axis).

The defaults give FSDP over ``fsdp`` (parameters split along the model dimension), Megatron-style
tensor parallelism over ``tensor`` (heads, MLP hidden and vocab split), and data parallelism over
``data`` and ``fsdp`` for the batch. Mesh axes that the mesh does not have are ignored, so the same
rules serve a data-only mesh.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

from jax.sharding import Mesh, PartitionSpec

DEFAULT_RULES: tuple[tuple[str, Any], ...] = (
    ("batch", ("data", "fsdp")),
    ("vocab", "tensor"),
    ("embed", "fsdp"),
    ("q_heads", "tensor"),
    ("kv_heads", "tensor"),
    ("mlp", "tensor"),
    ("head_dim", None),
    ("norm", None),
    ("length", None),
    ("layer", None),
)


def as_rules(rules: Any) -> tuple[tuple[str, Any], ...]:
  """Normalises rules from a config (lists of lists, ConfigDict-friendly) to tuples."""
  if rules is None:
    return DEFAULT_RULES
  out = []
  for item in rules:
    if len(item) != 2:
      raise ValueError(f"sharding rule {item!r} must be (logical_name, mesh_axes)")
    name, axes = item
    if isinstance(axes, list):
      axes = tuple(axes)
    out.append((str(name), axes))
  return tuple(out)


def mesh_axes_for(name: str | None, rules: Sequence[tuple[str, Any]]) -> tuple[str, ...]:
  if name is None:
    return ()
  for rule_name, axes in rules:
    if rule_name == name:
      if axes is None:
        return ()
      return (axes,) if isinstance(axes, str) else tuple(axes)
  return ()


def logical_to_spec(names: Sequence[str | None], shape: Sequence[int] | None,
                    rules: Sequence[tuple[str, Any]], mesh: Mesh) -> PartitionSpec:
  """PartitionSpec for one array. A mesh axis is used at most once per array; a dimension that
  its mesh axes do not divide keeps the longest prefix of them that does divide it (e.g. a batch of
  2 on ("data", "fsdp") = (2, 4) is split over data only), or is replicated (so odd head counts or
  tiny test shapes still run)."""
  used: set[str] = set()
  spec = []
  for i, name in enumerate(names):
    axes = [a for a in mesh_axes_for(name, rules) if a in mesh.shape and a not in used]
    while axes and shape is not None and shape[i] % math.prod(mesh.shape[a] for a in axes):
      axes = axes[:-1]
    used.update(axes)
    spec.append(None if not axes else axes[0] if len(axes) == 1 else tuple(axes))
  return PartitionSpec(*spec)
