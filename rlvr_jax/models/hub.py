"""Model ids resolved to checkpoints already in the local Hugging Face cache; nothing is downloaded.

``resolve_model_path`` lets ``config.model.path`` / ``config.tokenizer.path`` (and ``experiments/
eval.py --checkpoint``) name a model as ``org/name`` or ``org/name@revision`` when it sits in the
hub cache, the same directory ``huggingface_hub.snapshot_download(..., local_files_only=True)``
returns::

  <cache>/models--org--name/refs/main              the commit hash "main" points to
  <cache>/models--org--name/snapshots/<commit>/    config.json, *.safetensors, tokenizer.json, ...

An existing directory is returned as it is, so checkpoint paths keep working. Cache directories
searched, in order: ``$HF_HUB_CACHE`` (or the older ``$HUGGINGFACE_HUB_CACHE``), ``$HF_HOME/hub``
(``$HF_HOME`` defaulting to ``$XDG_CACHE_HOME/huggingface``), and ``~/.cache/huggingface/hub``.
The revision is a branch or tag with a file under ``refs/`` or a full commit hash; without one,
``main`` is used, or the only snapshot when a copied cache has no ``refs/main``.
"""
from __future__ import annotations

import os
import re

_COMMIT = re.compile(r"^[0-9a-f]{40}$")
# Hub repo ids: "name" (legacy, e.g. gpt2) or "org/name"; letters, digits, '-', '_', '.'.
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(?:/[A-Za-z0-9][\w.-]*)?$")


def cache_dirs() -> list[str]:
  """The hub cache directories searched, in order, without duplicates (they need not exist)."""
  dirs = [os.environ.get(var) for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE")]
  xdg = os.environ.get("XDG_CACHE_HOME") or os.path.join("~", ".cache")
  home = os.environ.get("HF_HOME") or os.path.join(xdg, "huggingface")
  dirs += [os.path.join(home, "hub"), os.path.join("~", ".cache", "huggingface", "hub")]
  return list(dict.fromkeys(os.path.abspath(os.path.expanduser(d)) for d in dirs if d))


def parse_model_id(spec: str) -> tuple[str, str | None] | None:
  """``'org/name@rev'`` -> ``('org/name', 'rev')``; None when ``spec`` is not shaped like an id."""
  repo_id, _, revision = spec.partition("@")
  if not _REPO_ID.match(repo_id) or repo_id.endswith((".", "-")) or ".." in repo_id:
    return None
  return repo_id, (revision or None)


def _snapshot(repo_dir: str, revision: str | None) -> tuple[str | None, str]:
  """(snapshot directory or None, what was found instead) in one cached repo."""
  snapshots = os.path.join(repo_dir, "snapshots")
  have = sorted(os.listdir(snapshots)) if os.path.isdir(snapshots) else []
  wanted = revision or "main"
  if _COMMIT.match(wanted):
    commit = wanted
  elif os.path.isfile(os.path.join(repo_dir, "refs", wanted)):
    with open(os.path.join(repo_dir, "refs", wanted), encoding="utf-8") as f:
      commit = f.read().strip()
  elif revision is None and len(have) == 1:
    commit = have[0]  # a cache copied without refs/: its only snapshot
  else:
    return None, f"{repo_dir} has no refs/{wanted} (snapshots: {have or 'none'})"
  directory = os.path.join(snapshots, commit)
  if not os.path.isdir(directory):
    return None, f"{repo_dir}: revision {wanted!r} is commit {commit}, which has no snapshot"
  return directory, ""


def resolve_model_path(path: str | os.PathLike, *, search: list[str] | None = None) -> str:
  """A local directory for ``path``: the directory itself if it exists, else the cached snapshot
  of the model id ``org/name[@revision]`` (``search``: cache directories, default
  ``cache_dirs()``). Raises ValueError naming the cache directories searched."""
  path = os.fspath(path)
  if "://" in path:  # an object-store URL: left to the loader to read or refuse
    return path
  local = os.path.expanduser(path)
  if os.path.isdir(local):
    return local
  parsed = parse_model_id(path)
  if parsed is None:
    raise ValueError(f"model path {path!r} is not a directory (nor a Hugging Face model id "
                     "'org/name[@revision]' to look up in the local cache)")
  repo_id, revision = parsed
  search = cache_dirs() if search is None else list(search)
  notes = []
  for cache in search:
    repo_dir = os.path.join(cache, "models--" + repo_id.replace("/", "--"))
    if not os.path.isdir(repo_dir):
      continue
    directory, note = _snapshot(repo_dir, revision)
    if directory is not None:
      return directory
    notes.append(note)
  where = f" ({'; '.join(notes)})" if notes else ""
  raise ValueError(
      f"model {path!r} is not a local directory, and revision {revision or 'main'!r} of "
      f"{repo_id!r} is not in the local Hugging Face cache{where}; searched {search}. Nothing is "
      f"downloaded: fetch it where there is network access (`hf download {repo_id}`) into one of "
      "those directories (HF_HUB_CACHE / HF_HOME), or pass a checkpoint directory")
