"""Named sharding and multi-process support (one program for 1 CPU, 8 fake devices, a GPU node or a
TPU pod).

- ``mesh``: the device mesh from ``config.mesh`` and NamedShardings for params and batches;
- ``rules``: logical axis name -> mesh axes (``config.sharding_rules``);
- ``constraints``: ``use_mesh`` / ``constrain``, activation shardings by logical name (no-ops
  outside ``use_mesh``);
- ``sampler``: ``MeshSampler``, the rollout sampler jitted with explicit shardings;
- ``multihost``: ``jax.distributed`` start-up and the host-data helpers that keep every process's
  view of the global batch identical.
"""
