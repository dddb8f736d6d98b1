"""grain input pipeline over a task source: shuffled, sharded, batched prompt examples.

Order of operations (why it is this order)::

    MapDataset.source(task_source).seed(seed).shuffle()    # one global permutation per epoch
      .repeat(num_epochs)                                  # a fresh permutation each epoch
      [shard_index::shard_count]                           # process i takes every S-th example
      .batch(batch_size)                                   # lists of example dicts

Every process builds the same global stream (same seed) and takes a strided slice of it, so within
each epoch the shards are disjoint and cover the data, all shards yield the same number of batches
when ``num_epochs`` is None (no process runs dry and hangs a collective), and the union of the S
per-process batches at step t is exactly the batch a single process with ``batch_size * S`` would
see at step t: results do not depend on how many hosts feed the run.

The iterator's ``get_state() -> dict`` / ``set_state(dict)`` (grain ``DatasetIterator``) round-trip
exactly; the state is a small JSON-serialisable dict to store with each checkpoint, so a resumed
run continues with the same data order. ``worker_count`` is 0 (docs/environment.md: grain worker
processes are slower on 2 cores, and the procedural sources are cheap).
"""
from __future__ import annotations

from typing import Any, Callable

import grain

_NO_PREFETCH = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)


def _check_args(source, batch_size: int, seed: int, shard_index: int, shard_count: int,
                num_epochs: int | None) -> None:
    name = getattr(source, "name", type(source).__name__)
    if len(source) == 0:
        raise ValueError(f"task source {name} is empty")
    if int(batch_size) < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if not 0 <= int(seed) < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}")
    if int(shard_count) < 1 or not 0 <= int(shard_index) < int(shard_count):
        raise ValueError(f"need 0 <= shard_index < shard_count, got shard_index={shard_index}, "
                         f"shard_count={shard_count}")
    if num_epochs is not None and int(num_epochs) < 1:
        raise ValueError(f"num_epochs must be None (repeat forever) or >= 1, got {num_epochs}")


def make_prompt_dataset(source, *, batch_size: int, seed: int, shard_index: int = 0,
                        shard_count: int = 1, num_epochs: int | None = None,
                        drop_remainder: bool = False,
                        map_fn: Callable[[dict], Any] | None = None) -> grain.MapDataset:
    """The batched ``grain.MapDataset`` behind ``make_prompt_iterator`` (same arguments).

    With a finite ``num_epochs`` and ``drop_remainder=True`` the global stream is cut to a multiple
    of ``batch_size * shard_count`` first, so every shard yields the same number of full batches.
    """
    _check_args(source, batch_size, seed, shard_index, shard_count, num_epochs)
    ds = grain.MapDataset.source(source).seed(int(seed)).shuffle()
    ds = ds.repeat(None if num_epochs is None else int(num_epochs))
    if num_epochs is not None and drop_remainder:
        per_step = int(batch_size) * int(shard_count)
        ds = ds[: (len(ds) // per_step) * per_step]
    if int(shard_count) > 1:
        ds = ds[int(shard_index)::int(shard_count)]
    if map_fn is not None:
        ds = ds.map(map_fn)
    return ds.batch(int(batch_size), drop_remainder=drop_remainder, batch_fn=list)


def make_prompt_iterator(source, *, batch_size: int, seed: int, shard_index: int = 0,
                         shard_count: int = 1, num_epochs: int | None = None,
                         drop_remainder: bool = False,
                         map_fn: Callable[[dict], Any] | None = None,
                         read_options: grain.ReadOptions | None = None) -> grain.DatasetIterator:
    """Iterator over batches (lists of ``batch_size`` example dicts) of this process's shard.

    Args:
      source: a task source (``len`` and ``[i]``), e.g. from ``sources.make_source``.
      batch_size: examples per batch on this process (the global batch is ``batch_size *
        shard_count``).
      seed: shuffle seed, identical on every process.
      shard_index, shard_count: this process's shard, usually ``jax.process_index()`` and
        ``jax.process_count()``.
      num_epochs: None repeats forever (reshuffling each epoch); otherwise stops after that many.
      drop_remainder: drop a final partial batch (finite epochs only matter).
      map_fn: optional per-example transform, e.g. ``functools.partial(templates.apply_template,
        template)``.
      read_options: grain read options; default reads on the calling thread without prefetch.

    Returns a grain ``DatasetIterator``; checkpoint it with ``get_state()``, resume with
    ``set_state(state)`` on a freshly built iterator with the same arguments.
    """
    ds = make_prompt_dataset(source, batch_size=batch_size, seed=seed, shard_index=shard_index,
                             shard_count=shard_count, num_epochs=num_epochs,
                             drop_remainder=drop_remainder, map_fn=map_fn)
    return iter(ds.to_iter_dataset(read_options or _NO_PREFETCH))


def make_eval_iterator(source, *, batch_size: int, shard_index: int = 0, shard_count: int = 1,
                       map_fn: Callable[[dict], Any] | None = None) -> grain.DatasetIterator:
    """One ordered pass (no shuffle) over this process's strided shard of an evaluation source."""
    _check_args(source, batch_size, 0, shard_index, shard_count, 1)
    ds = grain.MapDataset.source(source)
    if int(shard_count) > 1:
        ds = ds[int(shard_index)::int(shard_count)]
    if map_fn is not None:
        ds = ds.map(map_fn)
    ds = ds.batch(int(batch_size), drop_remainder=False, batch_fn=list)
    return iter(ds.to_iter_dataset(_NO_PREFETCH))
