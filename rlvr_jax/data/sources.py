"""Task sources: random-access sequences of prompt examples, selected by name from ``SOURCES``.

A task source has ``__len__`` and ``__getitem__(i) -> dict`` (so grain's ``MapDataset.source`` takes it
as a ``RandomAccessDataSource``) and a ``name`` used in messages. Every example is a plain dict::

    {'question': str, 'answer': str,   # gold final answer ('' when the task has no single one)
     'metadata': dict,                 # everything else the verifier may need
     'task': str | None,               # reasoning-gym dataset name, so rewards can call its scorer
     'id': str}                        # stable and unique within the source

Sources are built from a config mapping (plain dict or ``ml_collections.ConfigDict``) whose
``'source'`` key picks the builder and whose other keys are that builder's keyword arguments::

    make_source({'source': 'reasoning_gym', 'name': 'chain_sum', 'size': 10_000, 'seed': 0,
                 'kwargs': {'min_terms': 2, 'max_terms': 2}})
    make_source({'source': 'mixture', 'seed': 0, 'weights': [3, 1],
                 'sources': [{'source': 'reasoning_gym', 'name': 'chain_sum', 'size': 1000},
                             {'source': 'jsonl', 'path': '/data/gsm8k/train.jsonl'}]})
    make_source({'source': 'tfds', 'name': 'gsm8k', 'split': 'train', 'data_dir': '/data/tfds'})
    make_source({'source': 'arrow', 'path': '/data/gsm8k_saved', 'split': 'train'})  # save_to_disk

Task families: reasoning-gym (Stojanovski et al., 2025, arXiv:2505.24760) procedural tasks, GSM8K,
MATH, TRL-conversational and verl files (see ``rows.py`` for their layouts) as JSONL, Parquet or
``datasets`` save_to_disk directories (``hf_disk.py``), TFDS ``data_source`` datasets, and
``judge_pairs`` (scoring questions over an arithmetic source, for self-judging warm starts).
Wrappers the trainer applies: ``SubsetSource`` (``config.data.rl_size``) and
``LabelledSplitSource`` (``config.data.labelled_fraction``).
"""
from __future__ import annotations

import glob
import hashlib
import inspect
import json
import os
import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from absl import logging

from rlvr_jax import optional
from rlvr_jax.data import hf_disk
from rlvr_jax.data import rows as rows_lib


def _example(question, answer, metadata, task, example_id) -> dict:
    return {"question": question, "answer": answer, "metadata": metadata, "task": task,
            "id": example_id}


class ListSource:
    """An in-memory source (file rows, held-out sets); ``skipped`` maps reason -> bad row locations."""

    def __init__(self, examples: Sequence[dict], name: str,
                 skipped: Mapping[str, list] | None = None):
        if not examples:
            raise ValueError(f"task source {name} is empty")
        self._examples = list(examples)
        self.name = name
        self.skipped = dict(skipped or {})

    @property
    def num_skipped(self) -> int:
        return sum(len(v) for v in self.skipped.values())

    def __len__(self) -> int:
        return len(self._examples)

    def __getitem__(self, index: int) -> dict:
        # A copy, so a consumer that edits an example cannot change later epochs.
        example = self._examples[index]
        return dict(example, metadata=dict(example["metadata"]))

    def __repr__(self) -> str:
        return f"ListSource({self.name}, len={len(self)})"


class ReasoningGymSource:
    """A reasoning-gym procedural dataset; item i is generated on access from Random(seed + i).

    docs/environment.md: datasets built with nearby seeds overlap almost completely, so held-out
    sets shift the seed by ~1e8 (``heldout.make_eval_source``). Tasks without a single oracle
    answer (e.g. ``graph_color``, ``rush_hour``) have answer None in reasoning-gym; it becomes ''
    here and their ``score_answer`` checks the metadata instead.
    """

    def __init__(self, name: str, size: int, seed: int = 0, kwargs: Mapping[str, Any] | None = None):
        import reasoning_gym  # pylint: disable=import-outside-toplevel
        from reasoning_gym import factory  # pylint: disable=import-outside-toplevel

        if name not in factory.DATASETS:
            raise ValueError(f"reasoning_gym source: unknown dataset name={name!r}; available: "
                             f"{', '.join(sorted(factory.DATASETS))}")
        if int(size) < 1:
            raise ValueError(f"reasoning_gym source {name!r}: size must be >= 1 (got {size})")
        kwargs = dict(kwargs or {})
        try:
            self._dataset = reasoning_gym.create_dataset(name, size=int(size), seed=int(seed),
                                                         **kwargs)
        except TypeError as err:  # an unknown field of the dataset's config class
            raise ValueError(f"reasoning_gym source {name!r}: bad kwargs {sorted(kwargs)}: {err}") from err
        self.task = name
        self.seed = int(seed)
        self.size = int(size)
        self.kwargs = kwargs
        self.name = f"reasoning_gym:{name}(seed={seed}, size={size})"

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self.size:
            raise IndexError(f"{self.name}: index {index} out of range")
        entry = self._dataset[index]
        answer = entry.get("answer")
        return _example(str(entry["question"]), "" if answer is None else str(answer),
                        dict(entry.get("metadata") or {}), self.task,
                        f"{self.task}:{self.seed}:{index}")

    def __repr__(self) -> str:
        return f"ReasoningGymSource({self.name})"


class MixtureSource:
    """A deterministic weighted mixture: position i holds one item of component c(i).

    Exactly round(w_c * size) positions (largest remainder) go to component c, in an order shuffled
    by ``seed``; component c's items are taken in order and wrap around only when its share exceeds
    its length. The default size is the largest one at which no component wraps.
    """

    def __init__(self, sources: Sequence[Any], weights: Sequence[float] | None = None,
                 size: int | None = None, seed: int = 0):
        if not sources:
            raise ValueError("mixture source: 'sources' is empty")
        weights = np.ones(len(sources)) if weights is None else np.asarray(weights, np.float64)
        if weights.shape != (len(sources),):
            raise ValueError(f"mixture source: {len(weights)} weights for {len(sources)} sources")
        for i, w in enumerate(weights):
            if not np.isfinite(w) or w <= 0:
                raise ValueError(f"mixture source: weights[{i}]={w} must be a positive number")
        probs = weights / weights.sum()  # [C]
        lengths = np.array([len(s) for s in sources])  # [C]
        if size is None:
            size = int(np.floor(np.min(lengths / probs) + 1e-9))
        if int(size) < 1:
            raise ValueError(f"mixture source: size must be >= 1 (got {size})")
        size = int(size)
        # Largest-remainder rounding so the counts sum to size exactly.
        exact = probs * size  # [C]
        counts = np.floor(exact).astype(np.int64)
        order = np.argsort(-(exact - counts), kind="stable")
        counts[order[: size - counts.sum()]] += 1
        labels = np.repeat(np.arange(len(sources)), counts)  # [size]
        np.random.default_rng(seed).shuffle(labels)
        offsets = np.zeros(size, np.int64)  # [size] index within the component
        for c in range(len(sources)):
            where = labels == c
            offsets[where] = np.arange(where.sum()) % lengths[c]
        self._sources = list(sources)
        self._labels = labels
        self._offsets = offsets
        self.counts = counts
        self.seed = int(seed)
        self.name = "mixture(" + ", ".join(
            f"{getattr(s, 'name', type(s).__name__)}:{p:.3g}" for s, p in zip(sources, probs)) + ")"

    @property
    def sources(self) -> list:
        return list(self._sources)

    def __len__(self) -> int:
        return len(self._labels)

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        return self._sources[self._labels[index]][int(self._offsets[index])]

    def __repr__(self) -> str:
        return f"MixtureSource({self.name}, len={len(self)})"


# ----------------------------------------------------------------------------- builders


def unlabelled_source(examples: Sequence[Mapping[str, Any]], name: str = "test-time") -> ListSource:
    """The examples with their labels removed: ``answer`` "" and ``metadata`` {} (reasoning-gym
    metadata can hold the solution); question, task and id are kept. Test-time RL trains on these
    (``config.data.test_time``), so no reward or trainer code can read a gold answer."""
    rows = [_example(ex["question"], "", {}, ex.get("task"), ex.get("id")) for ex in examples]
    return ListSource(rows, name)


class SubsetSource:
    """The first ``size`` rows of a source (``config.data.rl_size``: RL on a small pool, visited
    for several epochs, while the warm start uses the whole source)."""

    def __init__(self, source, size: int):
        if not 1 <= int(size) <= len(source):
            raise ValueError(f"config.data.rl_size={size}: need 1 <= rl_size <= {len(source)} (the "
                             f"rows of {getattr(source, 'name', type(source).__name__)})")
        self._source = source
        self._size = int(size)
        self.name = f"{getattr(source, 'name', type(source).__name__)}[:{self._size}]"

    def __len__(self) -> int:
        return self._size

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if not 0 <= index < self._size:
            raise IndexError(index)
        return self._source[index]

    def __repr__(self) -> str:
        return f"SubsetSource({self.name})"


class LabelledSplitSource:
    """A source whose rows carry ``labelled`` (bool): a fixed, seeded ``fraction`` of the rows is
    labelled, the rest is not (TraPO's semi-supervised split, ``config.data.labelled_fraction``).

    Unlabelled rows keep their ``answer`` for the logged diagnostics (accuracy, label accuracy);
    rewards that honour the flag (``trapo``) never read it. Rows that already have a ``labelled``
    field (a column of a data file) keep it."""

    def __init__(self, source, fraction: float, seed: int = 0):
        fraction = float(fraction)
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"config.data.labelled_fraction={fraction}: need a value in [0, 1]")
        n = len(source)
        order = np.random.default_rng([int(seed), 7331]).permutation(n)
        self._labelled = np.zeros(n, bool)
        self._labelled[order[:int(round(fraction * n))]] = True
        self._source = source
        self.fraction = fraction
        self.name = f"{getattr(source, 'name', type(source).__name__)}[labelled {fraction:.3g}]"

    @property
    def num_labelled(self) -> int:
        return int(self._labelled.sum())

    def __len__(self) -> int:
        return len(self._source)

    def __getitem__(self, index: int) -> dict:
        row = dict(self._source[int(index)])
        row.setdefault("labelled", bool(self._labelled[int(index)]))
        return row

    def __repr__(self) -> str:
        return f"LabelledSplitSource({self.name}, len={len(self)}, labelled={self.num_labelled})"


def reasoning_gym_source(*, name: str, size: int, seed: int = 0,
                         kwargs: Mapping[str, Any] | None = None) -> ReasoningGymSource:
    """Any reasoning-gym dataset by name; ``kwargs`` go to its config class."""
    return ReasoningGymSource(name, size, seed, kwargs)


def mixture_source(*, sources: Sequence[Mapping[str, Any]], weights: Sequence[float] | None = None,
                   size: int | None = None, seed: int = 0) -> MixtureSource:
    """Weighted mixture of sub-source configs (each a config accepted by ``make_source``)."""
    if not isinstance(sources, (list, tuple)) or not sources:
        raise ValueError("mixture source: 'sources' must be a non-empty list of source configs")
    return MixtureSource([make_source(c) for c in sources], weights, size, seed)


def _expand_paths(path: str | Sequence[str], kind: str) -> list[str]:
    patterns = [path] if isinstance(path, str) else list(path)
    paths = []
    for pattern in patterns:
        found = sorted(glob.glob(os.path.expanduser(pattern)))
        if not found:
            raise FileNotFoundError(f"{kind} source: no file matches path={pattern!r}")
        paths.extend(found)
    return paths


def _jsonl_rows(path: str):
    # Bytes, decoded line by line: one line that is not UTF-8 is a counted bad row, not a dead run.
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start:e.start + 1].hex()
                yield (f"line {line_no} (byte 0x{bad} at column {e.start + 1})",
                       rows_lib.UnreadableRow("not valid UTF-8"))
                continue
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = line  # row_to_example reports it as "not an object"
            yield f"line {line_no}", row


def _parquet_rows(path: str):
    import pyarrow.parquet as pq  # pylint: disable=import-outside-toplevel

    for row_no, row in enumerate(pq.read_table(path).to_pylist()):
        yield f"row {row_no}", row


def _file_source(kind: str, reader: Callable, paths: Sequence[str], question_key, answer_key,
                 answer_format, holdout_fraction, subset, limit,
                 name: str | None = None) -> ListSource:
    spec = rows_lib.RowSpec(question_key, answer_key, answer_format)
    examples, skipped = [], {}
    for p in paths:
        ex, sk = rows_lib.rows_to_examples(reader(p), spec, origin=f"{kind} {p}",
                                           holdout_fraction=holdout_fraction, subset=subset)
        examples.extend(ex)
        for reason, locs in sk.items():
            skipped.setdefault(reason, []).extend(f"{p} {loc}" for loc in locs)
    if limit is not None:
        examples = examples[: int(limit)]
    if name is None:
        name = f"{kind}:{paths[0]}" + (f" (+{len(paths) - 1} files)" if len(paths) > 1 else "")
    if subset != "all":
        name += f"[{subset}]"
    return ListSource(examples, name, skipped)


def jsonl_source(*, path: str | Sequence[str], question_key: str | None = None,
                 answer_key: str | None = None, answer_format: str = "auto",
                 holdout_fraction: float = 0.0, subset: str = "all",
                 limit: int | None = None) -> ListSource:
    """JSON-lines file(s) (glob patterns allowed), GSM8K / MATH / TRL / verl / plain layouts (see
    rows.py); ``question_key`` / ``answer_key`` may be dotted to reach nested fields.

    ``holdout_fraction`` with ``subset`` in {'train', 'eval'} carves a held-out split by question hash.
    """
    return _file_source("jsonl", _jsonl_rows, _expand_paths(path, "jsonl"), question_key,
                        answer_key, answer_format, holdout_fraction, subset, limit)


def parquet_source(*, path: str | Sequence[str], question_key: str | None = None,
                   answer_key: str | None = None, answer_format: str = "auto",
                   holdout_fraction: float = 0.0, subset: str = "all",
                   limit: int | None = None) -> ListSource:
    """Parquet file(s) (e.g. verl's prepared RL files), same columns and options as
    ``jsonl_source``."""
    return _file_source("parquet", _parquet_rows, _expand_paths(path, "parquet"), question_key,
                        answer_key, answer_format, holdout_fraction, subset, limit)


def arrow_source(*, path: str, split: str | None = None, question_key: str | None = None,
                 answer_key: str | None = None, answer_format: str = "auto",
                 holdout_fraction: float = 0.0, subset: str = "all",
                 limit: int | None = None) -> ListSource:
    """A ``datasets`` ``save_to_disk`` directory read with pyarrow (``hf_disk.py``): a saved
    Dataset, or a saved DatasetDict with ``split`` naming one of its splits (needed when it has
    several); also bare ``.arrow`` files. Row layouts and options as ``jsonl_source``."""
    if not path or not isinstance(path, str):
        raise ValueError(f"arrow source: path must be a save_to_disk directory or .arrow file "
                         f"(got {path!r})")
    files = hf_disk.arrow_files(path, split)
    name = f"arrow:{path}" + (f"[{split}]" if split is not None else "")
    return _file_source("arrow", hf_disk.arrow_rows, files, question_key, answer_key,
                        answer_format, holdout_fraction, subset, limit, name=name)


def tfds_source(*, name: str, split: str = "train", data_dir: str | None = None,
                builder_dir: str | None = None, question_key: str | None = None,
                answer_key: str | None = None, answer_format: str = "auto",
                eval_split: str | None = None, holdout_fraction: float = 0.0,
                subset: str = "all", limit: int | None = None) -> ListSource:
    """A prepared TFDS dataset read through ``tfds.data_source`` (array_record; never downloads).

    Give ``data_dir`` (looked up by ``name``) or ``builder_dir`` (the versioned folder holding
    dataset_info.json). Rows are decoded and validated once up front: RLVR prompt sets are small.
    ``eval_split`` names the split ``make_eval_source`` uses for held-out evaluation.
    """
    del eval_split  # only read by heldout.make_eval_source
    tfds = optional.require("tensorflow_datasets", f"data source 'tfds' ({name})")

    if builder_dir is not None:
        data = tfds.builder_from_directory(builder_dir).as_data_source(split=split)
    elif data_dir is not None:
        data = tfds.data_source(name, split=split, data_dir=data_dir, download=False)
    else:
        raise ValueError(f"tfds source {name!r}: give data_dir or builder_dir (nothing is downloaded)")
    origin = f"tfds {name}[{split}]"
    rows = ((f"record {i}", data[i]) for i in range(len(data)))
    spec = rows_lib.RowSpec(question_key, answer_key, answer_format)
    examples, skipped = rows_lib.rows_to_examples(rows, spec, origin=origin,
                                                  holdout_fraction=holdout_fraction, subset=subset)
    if limit is not None:
        examples = examples[: int(limit)]
    return ListSource(examples, origin + ("" if subset == "all" else f"[{subset}]"), skipped)


_TAIL_BINARY = re.compile(r"(\d+)\s*([+-])\s*(\d+)\s*=?\s*$")


class JudgePairsSource:
    """Judging examples made from an ``a + b`` / ``a - b`` source (SSR-Zero's self-judge at tiny
    scale): row i takes base row i, proposes a candidate answer (the gold one on a fixed
    ``correct_frac`` of rows, chosen by hashing, else the careless carry / borrow slip of
    `rlvr_jax.training.sft`, nudged by one when the slip changes nothing) and asks for a score:
    ``question`` = ``f"{base question} {candidate}{suffix}"``, ``answer`` = ``high`` if the
    candidate is right else ``low``. ``metadata["reference_target"]`` makes every SFT teacher
    write the reference answer for these rows."""

    def __init__(self, base, *, seed: int, correct_frac: float, suffix: str, high: str, low: str):
        if not 0.0 <= float(correct_frac) <= 1.0:
            raise ValueError(f"judge_pairs correct_frac={correct_frac}: need a value in [0, 1]")
        self._base = base
        self._seed, self._frac = int(seed), float(correct_frac)
        self._suffix, self._high, self._low = suffix, str(high), str(low)
        self.name = f"judge_pairs({getattr(base, 'name', type(base).__name__)})"

    def __len__(self) -> int:
        return len(self._base)

    def __getitem__(self, index: int) -> dict:
        from rlvr_jax.training import sft  # pylint: disable=import-outside-toplevel
        ex = self._base[int(index)]
        m = _TAIL_BINARY.search(str(ex["question"]))
        if m is None:
            raise ValueError(f"judge_pairs: base row {ex.get('id')!r} question {ex['question']!r} "
                             "does not end in '<int> + <int>' or '<int> - <int>'")
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        gold = a + b if op == "+" else a - b
        u = int.from_bytes(hashlib.sha256(f"{self._seed}:{index}".encode()).digest()[:8],
                           "little") / 2.0**64
        if u < self._frac:
            candidate = gold
        else:
            candidate = sft.careless_add(a, b) if op == "+" else sft.careless_sub(a, b)
            if candidate == gold:
                candidate = gold + (1 if (index % 2) else -1)
        question = f"{str(ex['question']).rstrip()} {candidate}{self._suffix}"
        label = self._high if candidate == gold else self._low
        return {"question": question, "answer": label,
                "metadata": {"reference_target": True, "candidate": str(candidate),
                             "gold": str(gold)},
                "task": "judge_pairs", "id": f"judge-{ex.get('id', index)}"}

    def __repr__(self) -> str:
        return f"JudgePairsSource({self.name}, len={len(self)})"


def judge_pairs_source(*, base: Mapping[str, Any], seed: int = 0, correct_frac: float = 0.5,
                       suffix: str = " score:", high: str = "100", low: str = "0"):
    """Judging examples over an arithmetic source config ``base`` (see `JudgePairsSource`)."""
    return JudgePairsSource(make_source(base), seed=seed, correct_frac=correct_frac,
                            suffix=suffix, high=high, low=low)


SOURCES: dict[str, Callable[..., Any]] = {
    "judge_pairs": judge_pairs_source,
    "reasoning_gym": reasoning_gym_source,
    "mixture": mixture_source,
    "jsonl": jsonl_source,
    "parquet": parquet_source,
    "arrow": arrow_source,
    "tfds": tfds_source,
}


def config_to_dict(config: Any) -> dict:
    """A plain dict from a mapping or ``ml_collections.ConfigDict`` (recursively)."""
    if hasattr(config, "to_dict"):
        config = config.to_dict()
    if not isinstance(config, Mapping):
        raise ValueError(f"a source config must be a mapping with a 'source' key, got {config!r}")
    return dict(config)


def make_source(config: Any):
    """Builds the task source named by ``config['source']`` with the remaining keys as arguments."""
    config = config_to_dict(config)
    if "source" not in config:
        raise ValueError(f"source config {config} has no 'source' key; one of {sorted(SOURCES)}")
    kind = config.pop("source")
    if kind not in SOURCES:
        raise ValueError(f"unknown source={kind!r}; registered: {sorted(SOURCES)}")
    builder = SOURCES[kind]
    params = inspect.signature(builder).parameters
    unknown = sorted(set(config) - set(params))
    if unknown:
        raise ValueError(f"{kind} source: unknown config key(s) {unknown}; accepted: {sorted(params)}")
    missing = sorted(k for k, p in params.items()
                     if p.default is inspect.Parameter.empty and k not in config)
    if missing:
        raise ValueError(f"{kind} source: missing required config key(s) {missing}")
    source = builder(**config)
    logging.info("task source %s: %d examples", source.name, len(source))
    return source
