"""Reading ``datasets.Dataset.save_to_disk`` directories with pyarrow alone (no ``datasets``).

What ``save_to_disk`` writes, and what is read here::

  <dir>/state.json              {"_data_files": [{"filename": "data-00000-of-00002.arrow"}, ...],
                                 "_split": "train", "_fingerprint": ..., "_format_*": ...}
  <dir>/dataset_info.json       features, description, sizes (not needed: the Arrow schema has them)
  <dir>/data-0000k-of-0000n.arrow   the rows, Arrow IPC *stream* format, in state.json's order

A ``DatasetDict`` directory holds ``dataset_dict.json`` (``{"splits": ["train", "test"]}``) and one
such directory per split; the split is picked with ``split=`` (optional when there is only one).
Bare ``.arrow`` files (stream or file format) are read too. Format settings (``set_format``) are
ignored: rows come back as plain Python values.
"""
from __future__ import annotations

import glob
import json
import os
from typing import Any, Iterator

STATE_FILE = "state.json"
DICT_FILE = "dataset_dict.json"
_SAVE_TO_DISK = ("a directory written by datasets' save_to_disk (state.json, dataset_info.json, "
                 "data-*.arrow)")


def _read_json(file: str) -> Any:
  try:
    with open(file, encoding="utf-8") as f:
      return json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{file} is not valid JSON ({e}); the file is truncated or corrupt") from e


def _split_dir(path: str, split: str | None) -> str:
  """The directory of one dataset: ``path`` itself, or its split of a DatasetDict."""
  dict_file = os.path.join(path, DICT_FILE)
  if os.path.isfile(dict_file):
    splits = _read_json(dict_file).get("splits")
    if not isinstance(splits, list) or not splits:
      raise ValueError(f"{dict_file} has no 'splits' list")
    if split is None:
      if len(splits) > 1:
        raise ValueError(f"{path} is a DatasetDict with splits {splits}: pass split=<one of them>")
      split = splits[0]
    if split not in splits:
      raise ValueError(f"{path}: no split {split!r} in {dict_file} (splits: {splits})")
    return os.path.join(path, split)
  if split is not None:
    if os.path.isfile(os.path.join(path, split, STATE_FILE)):
      return os.path.join(path, split)
    if not os.path.isfile(os.path.join(path, STATE_FILE)):
      raise ValueError(f"{path} has neither {DICT_FILE} nor a {split!r} subdirectory with "
                       f"{STATE_FILE}; expected {_SAVE_TO_DISK}, or a DatasetDict directory")
    # A single saved split: split= names it (checked against state.json below).
  return path


def arrow_files(path: str, split: str | None = None) -> list[str]:
  """The Arrow files of a save_to_disk directory (of ``split`` for a DatasetDict), in order; a
  path or glob of ``.arrow`` files is returned as it is. Errors name the file at fault."""
  path = os.path.expanduser(path)
  if not os.path.isdir(path):
    found = sorted(glob.glob(path))
    if not found:
      raise FileNotFoundError(f"arrow source: no file or directory matches path={path!r}")
    if split is not None:
      raise ValueError(f"arrow source: split={split!r} needs a save_to_disk directory, not "
                       f"the file(s) {path!r}")
    return found
  directory = _split_dir(path, split)
  state_file = os.path.join(directory, STATE_FILE)
  if not os.path.isfile(state_file):
    subdirs = sorted(d for d in os.listdir(directory)
                     if os.path.isfile(os.path.join(directory, d, STATE_FILE)))
    hint = f"; it has split subdirectories {subdirs}: pass split=" if subdirs else ""
    raise FileNotFoundError(f"{state_file} does not exist: expected {_SAVE_TO_DISK}{hint}")
  state = _read_json(state_file)
  entries = state.get("_data_files") if isinstance(state, dict) else None
  if not isinstance(entries, list) or not entries or not all(
      isinstance(e, dict) and isinstance(e.get("filename"), str) for e in entries):
    raise ValueError(f"{state_file} has no '_data_files' list of {{'filename': ...}} entries")
  if split is not None and state.get("_split") not in (None, split) and directory == path:
    raise ValueError(f"{path} holds split {state['_split']!r} (per {state_file}), not {split!r}")
  if state.get("_indices_data_files"):
    # Old `datasets` versions saved a shuffle / select as an indices mapping beside the data.
    raise ValueError(f"{state_file} lists an indices mapping (_indices_data_files), which this "
                     "reader does not apply; re-save with dataset.flatten_indices().save_to_disk")
  files = [os.path.join(directory, e["filename"]) for e in entries]
  for file in files:
    if not os.path.isfile(file):
      raise FileNotFoundError(f"{state_file} lists {os.path.basename(file)!r}, but {file} does "
                              "not exist")
  return files


def read_table(file: str):
  """One Arrow file as a ``pyarrow.Table``: IPC stream format (save_to_disk) or file format."""
  import pyarrow as pa  # pylint: disable=import-outside-toplevel

  errors = []
  for open_reader in (pa.ipc.open_stream, pa.ipc.open_file):
    try:
      with pa.memory_map(file) as source:
        return open_reader(source).read_all()
    except (pa.ArrowInvalid, OSError) as e:
      errors.append(str(e))
  raise ValueError(f"{file} is not a readable Arrow IPC file (stream format: {errors[0]}; file "
                   f"format: {errors[1]}); it is truncated or was not written by save_to_disk")


def arrow_rows(file: str) -> Iterator[tuple[str, dict]]:
  """(location, row dict) pairs of one Arrow file."""
  for row_no, row in enumerate(read_table(file).to_pylist()):
    yield f"row {row_no}", row
