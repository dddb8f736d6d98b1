"""Held-out evaluation sources that share no question with the training source.

Two safeguards, both needed (docs/environment.md, "What a tiny RL run here taught us"):

1. Disjoint generation. reasoning-gym builds item i from ``Random(seed + i)``, so two datasets whose
   seeds differ by less than their size share most items. The derived held-out config shifts every
   reasoning-gym seed by ``SEED_OFFSET`` = 1e8, far beyond any training size. File and TFDS sources
   use a held-out split: an explicit ``eval_split`` (TFDS) or a hash split of the question text
   (``holdout_fraction`` with ``subset='train'`` in the training config).
2. De-duplication. Small task spaces repeat questions whatever the seed (2-term 2-digit chain_sum has
   ~8k distinct questions), so every held-out question whose normalised text occurs in the training
   source is dropped and the count is logged and stored on the result (``removed_overlap``).
   Procedural held-out sets are regenerated larger to make up the requested size.
"""
from __future__ import annotations

import copy
from typing import Any

from absl import logging

from rlvr_jax.data import rows as rows_lib
from rlvr_jax.data import sources as sources_lib

SEED_OFFSET = 100_000_000
_PROCEDURAL = ("reasoning_gym", "mixture")
_GROW_ATTEMPTS = 4


def derive_eval_config(train_config: Any, *, size: int | None = None,
                       seed_offset: int = SEED_OFFSET) -> dict:
    """The held-out counterpart of a training source config (see the module docstring)."""
    config = copy.deepcopy(sources_lib.config_to_dict(train_config))
    kind = config.get("source")
    if kind == "reasoning_gym":
        config["seed"] = int(config.get("seed", 0)) + seed_offset
        if size is not None:
            config["size"] = int(size)
    elif kind == "mixture":
        config["sources"] = [derive_eval_config(c, seed_offset=seed_offset)
                             for c in config.get("sources", [])]
        config["seed"] = int(config.get("seed", 0)) + seed_offset
        if size is not None:
            config["size"] = int(size)
    elif kind in ("jsonl", "parquet", "arrow", "tfds"):
        if kind == "tfds" and config.get("eval_split"):
            config["split"] = config["eval_split"]
        elif config.get("subset", "all") == "train":
            config["subset"] = "eval"
        else:
            where = config.get("path", config.get("name"))
            raise ValueError(
                f"{kind} source {where!r} has no held-out split: set holdout_fraction and "
                f"subset='train' in the training config"
                f"{' (or eval_split)' if kind == 'tfds' else ''}, or pass eval_config")
        if size is not None:
            config["limit"] = int(size)
    else:
        raise ValueError(f"cannot derive a held-out config for source={kind!r}; pass eval_config")
    return config


def question_keys(source) -> set[str]:
    """Normalised question texts of every example of a source."""
    return {rows_lib.normalize_question(source[i]["question"]) for i in range(len(source))}


def _filter(source, seen: set[str], target: int) -> tuple[list[dict], int, int]:
    """First ``target`` examples whose question is not in ``seen``; (kept, removed, scanned)."""
    kept, removed, scanned = [], 0, 0
    for i in range(len(source)):
        if len(kept) == target:
            break
        example = source[i]
        scanned += 1
        if rows_lib.normalize_question(example["question"]) in seen:
            removed += 1
        else:
            kept.append(example)
    return kept, removed, scanned


def make_eval_source(train_config: Any, *, eval_config: Any = None, size: int | None = None,
                     seed_offset: int = SEED_OFFSET, train_source=None) -> sources_lib.ListSource:
    """A held-out source with no question in common with the training source.

    Args:
      train_config: the training source config (as for ``make_source``).
      eval_config: an explicit held-out config (e.g. a test.jsonl); derived when None.
      size: number of held-out examples wanted (default: the derived source's length).
      seed_offset: added to reasoning-gym / mixture seeds of the derived config.
      train_source: the already built training source, to avoid building it twice.

    Returns a ``ListSource`` with attributes ``removed_overlap`` (held-out questions dropped because
    training has them) and ``scanned``. Raises ValueError when nothing is left.
    """
    derived = eval_config is None
    config = (derive_eval_config(train_config, size=size, seed_offset=seed_offset) if derived
              else sources_lib.config_to_dict(eval_config))
    if train_source is None:
        train_source = sources_lib.make_source(train_config)
    seen = question_keys(train_source)
    source = sources_lib.make_source(config)
    target = len(source) if size is None else min(int(size), len(source))
    kept, removed, scanned = _filter(source, seen, target)
    # Procedural sets can be regenerated larger to make up for what the overlap removed.
    attempt = 0
    while (derived and len(kept) < target and config.get("source") in _PROCEDURAL
           and attempt < _GROW_ATTEMPTS):
        attempt += 1
        config["size"] = len(source) + 2 * removed + 16
        source = sources_lib.make_source(config)
        kept, removed, scanned = _filter(source, seen, target)
    name = f"heldout {source.name}"
    if not kept:
        raise ValueError(
            f"{name}: all {scanned} held-out questions also occur in training source "
            f"{train_source.name}; the task space is too small for a disjoint held-out set "
            f"(use a harder task config or a smaller training size)")
    if len(kept) < target:
        logging.warning("%s: only %d of %d requested held-out examples are disjoint from training",
                        name, len(kept), target)
    logging.info("%s: removed %d of %d scanned held-out questions that occur in training source %s",
                 name, removed, scanned, train_source.name)
    result = sources_lib.ListSource(kept, name)
    result.removed_overlap = removed
    result.scanned = scanned
    return result
