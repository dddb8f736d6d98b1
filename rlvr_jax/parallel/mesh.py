"""Device mesh from the config, and named shardings for params and batches.

``config.mesh`` names the axes and their sizes, e.g. ``{"data": -1, "fsdp": 1, "tensor": 1}``;
-1 means "all remaining devices" (at most one axis may say so). ``config.sharding_rules`` maps the
logical axis names carried by every parameter (``rlvr_jax.models.transformer.logical_axes``) and by
the activations to mesh axes (see ``rules.py``). The same code then runs on one CPU, 8 fake CPU
devices, a GPU node or a TPU pod: only these two config entries change.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from rlvr_jax.parallel import rules as rules_lib


def mesh_shape(axes: Mapping[str, int], num_devices: int) -> dict[str, int]:
  """Resolves -1 in ``axes`` so the product equals ``num_devices``; ValueError if impossible."""
  axes = {str(k): int(v) for k, v in dict(axes).items()}
  if not axes:
    raise ValueError("config.mesh needs at least one axis, e.g. {'data': -1}")
  free = [k for k, v in axes.items() if v == -1]
  if len(free) > 1:
    raise ValueError(f"config.mesh: at most one axis may be -1, got {free}")
  bad = [k for k, v in axes.items() if v == 0 or v < -1]
  if bad:
    raise ValueError(f"config.mesh: axis sizes must be positive or -1, got {axes}")
  fixed = math.prod(v for v in axes.values() if v != -1)
  if free:
    if num_devices % fixed:
      raise ValueError(f"config.mesh {axes}: {num_devices} devices are not divisible by the fixed "
                       f"axes' product {fixed}")
    axes[free[0]] = num_devices // fixed
  elif fixed != num_devices:
    raise ValueError(f"config.mesh {axes} has {fixed} slots but there are {num_devices} devices; "
                     "use -1 for one axis to take the rest")
  return axes


def make_mesh(axes: Mapping[str, int], devices: Sequence[Any] | None = None) -> Mesh:
  """A mesh with the config's named axes (Auto axis types: classic GSPMD propagation)."""
  devices = list(devices) if devices is not None else jax.devices()
  shape = mesh_shape(axes, len(devices))
  names = tuple(shape)
  return jax.make_mesh(tuple(shape.values()), names, axis_types=(AxisType.Auto,) * len(names),
                       devices=devices)


def param_shardings(abstract_params: Any, logical_axes: Any, mesh: Mesh,
                    rules: Sequence[tuple[str, Any]] | None = None) -> Any:
  """NamedShardings for a params pytree, from each leaf's logical axis names.

  ``logical_axes`` has the structure of ``abstract_params`` with a tuple of names per leaf. A
  dimension whose size does not divide by its mesh axes is replicated instead (e.g. 2 kv heads on
  a tensor axis of 4).
  """
  rules = rules_lib.as_rules(rules)

  def one(names, x):
    spec = rules_lib.logical_to_spec(names, np.shape(x), rules, mesh)
    return NamedSharding(mesh, spec)

  # logical_axes leads: its leaves (tuples of names) sit where params has nnx.Variable nodes.
  return jax.tree.map(one, logical_axes, abstract_params,
                      is_leaf=lambda n: isinstance(n, tuple) and all(isinstance(a, str) for a in n))


def batch_sharding(mesh: Mesh, ndim: int, rules: Sequence[tuple[str, Any]] | None = None,
                   batch_size: int | None = None) -> NamedSharding:
  """Shards the leading (batch) dimension over the mesh axes that the 'batch' rule names."""
  rules = rules_lib.as_rules(rules)
  names = ("batch",) + (None,) * (ndim - 1)
  shape = (batch_size,) + (1,) * (ndim - 1) if batch_size is not None else None
  return NamedSharding(mesh, rules_lib.logical_to_spec(names, shape, rules, mesh))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def batch_divisor(mesh: Mesh, rules: Sequence[tuple[str, Any]] | None = None) -> int:
  """How many ways the batch dimension is split (the batch size must be a multiple of it)."""
  rules = rules_lib.as_rules(rules)
  axes = rules_lib.mesh_axes_for("batch", rules)
  return math.prod(mesh.shape[a] for a in axes if a in mesh.shape)
