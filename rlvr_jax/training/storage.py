"""Run I/O for local and object-store workdirs (``gs://``, ``s3://``, ``az://``) alike.

Every file a run writes outside its orbax checkpoints goes through this module: config.json and
its history, metrics.jsonl, eval files, run_info.json, the tokenizer cache, the warm-start
settings, the metrics plot and the export. Paths are plain strings; local ones are made absolute,
remote ones are left as URLs and handled by ``etils.epath`` (its fsspec backend: ``gcsfs`` for
``gs://``, the ``gcs`` extra).

What differs on an object store, and how it is handled here:

- No rename-into-place: an upload becomes visible whole when it finishes, so ``write_text`` writes
  directly there, and through a temporary file plus ``os.replace`` on a local disk.
- No append: an `AppendLog` (metrics.jsonl) keeps the file's lines in memory and re-uploads the
  whole object on ``flush`` (at most every ``flush_every_s`` seconds on its own, and whenever the
  trainer saves a checkpoint or stops), so a resumed run finds the rows of every checkpointed step.
- Libraries that only write local files (tokenizers, safetensors, TensorBoard, matplotlib) write
  into a local staging directory that ``staged_dir`` uploads when the block ends without error;
  ``local_copy`` downloads a remote directory for readers that need local files.
- A missing client library or missing credentials fail at start (``check_access``), naming the
  path, not at the first checkpoint an hour later.
"""
from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import socket
import tempfile
import time
from typing import Iterator

from etils import epath

REMOTE_SCHEMES = ("gs://", "s3://", "az://")
_COPY_CHUNK = 16 << 20


class StorageError(OSError):
  """A workdir that cannot be read or written (missing client library, credentials, bucket)."""


def is_remote(path: str | os.PathLike) -> bool:
  return os.fspath(path).startswith(REMOTE_SCHEMES)


def resolve(path: str | os.PathLike) -> str:
  """An absolute local path, or the URL of a remote one without a trailing slash."""
  path = os.fspath(path)
  if is_remote(path):
    scheme, rest = path.split("://", 1)
    return f"{scheme}://{rest.rstrip('/')}"
  return os.path.abspath(os.path.expanduser(path))


def join(base: str | os.PathLike, *parts: str) -> str:
  base = os.fspath(base)
  return posixpath.join(base, *parts) if is_remote(base) else os.path.join(base, *parts)


def dirname(path: str) -> str:
  return posixpath.dirname(path) if is_remote(path) else os.path.dirname(path)


def basename(path: str) -> str:
  return posixpath.basename(path.rstrip("/")) if is_remote(path) else os.path.basename(path)


def as_path(path: str | os.PathLike) -> epath.Path:
  return epath.Path(os.fspath(path))


def exists(path: str | os.PathLike) -> bool:
  return os.path.exists(path) if not is_remote(path) else as_path(path).exists()


def isdir(path: str | os.PathLike) -> bool:
  return os.path.isdir(path) if not is_remote(path) else as_path(path).is_dir()


def isfile(path: str | os.PathLike) -> bool:
  return os.path.isfile(path) if not is_remote(path) else as_path(path).is_file()


def makedirs(path: str | os.PathLike) -> None:
  """Creates a local directory (and parents); a no-op on object stores, which have no directories
  (a "folder" exists once an object is written under it)."""
  if not is_remote(path):
    os.makedirs(path, exist_ok=True)


def listdir(path: str | os.PathLike) -> list[str]:
  if not is_remote(path):
    return sorted(os.listdir(path))
  return sorted(p.name for p in as_path(path).iterdir())


def read_text(path: str | os.PathLike, encoding: str = "utf-8") -> str:
  if not is_remote(path):
    with open(path, encoding=encoding) as f:
      return f.read()
  return as_path(path).read_text(encoding=encoding)


def read_bytes(path: str | os.PathLike) -> bytes:
  if not is_remote(path):
    with open(path, "rb") as f:
      return f.read()
  return as_path(path).read_bytes()


def write_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
  """Writes ``path`` whole: readers see the old content or the new, never a half-written file."""
  path = os.fspath(path)
  if is_remote(path):
    as_path(path).write_text(text, encoding=encoding)
    return
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  tmp = f"{path}.tmp.{os.getpid()}"
  with open(tmp, "w", encoding=encoding) as f:
    f.write(text)
  os.replace(tmp, path)


def append_text(path: str | os.PathLike, text: str, encoding: str = "utf-8") -> None:
  """Appends ``text`` (a few lines: config_changes.jsonl); on an object store the object is read
  and rewritten, fine for small files written rarely (use `AppendLog` for per-step rows)."""
  if not is_remote(path):
    with open(path, "a", encoding=encoding) as f:
      f.write(text)
    return
  old = read_text(path, encoding) if exists(path) else ""
  write_text(path, old + text, encoding)


def remove(path: str | os.PathLike) -> None:
  if not is_remote(path):
    os.remove(path)
  else:
    as_path(path).unlink()


def rmtree(path: str | os.PathLike) -> None:
  """Removes a directory tree if it exists."""
  if not is_remote(path):
    shutil.rmtree(path, ignore_errors=True)
  elif exists(path):
    as_path(path).rmtree()


def replace(src: str, dst: str) -> None:
  """Moves a file (a rename on disk; copy then delete on an object store)."""
  if not is_remote(src) and not is_remote(dst):
    os.replace(src, dst)
    return
  copy_file(src, dst)
  remove(src)


def copy_file(src: str, dst: str) -> None:
  """Streams one file between any two locations (local or remote), 16 MiB at a time."""
  src_open = open if not is_remote(src) else (lambda p, m: as_path(p).open(m))
  if not is_remote(dst):
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
  dst_open = open if not is_remote(dst) else (lambda p, m: as_path(p).open(m))
  with src_open(src, "rb") as fin, dst_open(dst, "wb") as fout:
    shutil.copyfileobj(fin, fout, _COPY_CHUNK)


def _files_under(root: str) -> list[str]:
  """Relative paths (with "/") of every file under ``root``, recursively. Remote trees are listed
  directory by directory (no ``**`` globbing, which epath refuses on object stores)."""
  if not is_remote(root):
    out = []
    for d, _, files in os.walk(root):
      out += [os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/") for f in files]
    return sorted(out)
  out, pending = [], [""]
  while pending:
    rel = pending.pop()
    for name in listdir(join(root, rel) if rel else root):
      child = f"{rel}/{name}" if rel else name
      (pending if isdir(join(root, child)) else out).append(child)
  return sorted(out)


def copy_tree(src: str, dst: str) -> list[str]:
  """Copies every file under ``src`` to the same relative path under ``dst``; returns them."""
  files = _files_under(src)
  for rel in files:
    copy_file(join(src, *rel.split("/")), join(dst, *rel.split("/")))
  return files


@contextlib.contextmanager
def staged_dir(dest: str) -> Iterator[str]:
  """A local directory to write ``dest``'s files into: ``dest`` itself when local; otherwise a
  temporary directory uploaded to ``dest`` when the block ends without an error (and removed)."""
  if not is_remote(dest):
    os.makedirs(dest, exist_ok=True)
    yield dest
    return
  tmp = tempfile.mkdtemp(prefix="rlvr_jax_stage_")
  try:
    yield tmp
    copy_tree(tmp, dest)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def local_copy(src: str) -> Iterator[str]:
  """A local directory with ``src``'s files (``src`` itself when local; a temporary download,
  removed after the block, when remote)."""
  if not is_remote(src):
    yield src
    return
  tmp = tempfile.mkdtemp(prefix="rlvr_jax_fetch_")
  try:
    copy_tree(src, tmp)
    yield tmp
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def _access_hint(path: str) -> str:
  if path.startswith("gs://"):
    return ("gs:// needs the gcsfs package (pip install 'rlvr_jax[gcs]') and credentials: "
            "`gcloud auth application-default login`, GOOGLE_APPLICATION_CREDENTIALS, or a VM "
            "service account with write access to the bucket")
  if path.startswith("s3://"):
    return "s3:// needs the s3fs package and AWS credentials with write access to the bucket"
  if path.startswith("az://"):
    return "az:// needs the adlfs package and Azure credentials with write access"
  return "check that the directory exists or can be created and is writable"


def check_access(workdir: str) -> None:
  """Writes, reads back and deletes a small probe file in ``workdir``; a failure raises
  `StorageError` naming the workdir and what it needs. Every process calls it at start (each
  writes its own checkpoint shards), with a probe name of its own."""
  probe = join(workdir, f".access_check.{socket.gethostname()}.{os.getpid()}")
  token = f"rlvr_jax {time.time()}"
  try:
    makedirs(workdir)
    write_text(probe, token)
    if read_text(probe) != token:
      raise StorageError(f"read back different content from {probe}")
    remove(probe)
  except ImportError as e:
    raise StorageError(f"cannot use workdir {workdir}: {e}. {_access_hint(workdir)}") from e
  except Exception as e:  # pylint: disable=broad-except  (auth, permission, missing bucket, ...)
    raise StorageError(f"cannot write to workdir {workdir} ({type(e).__name__}: "
                       f"{' '.join(str(e).split())[:300]}). {_access_hint(workdir)}") from e


class AppendLog:
  """A text file that grows by lines (metrics.jsonl). Local: an append-mode file, line-buffered.
  Remote: the lines are kept in memory and the object is rewritten whole by ``flush`` — called
  by the writer at most every ``flush_every_s`` seconds, and by the trainer at every checkpoint
  and at exit, so the rows of every checkpointed step are in the bucket."""

  def __init__(self, path: str, *, flush_every_s: float = 60.0):
    self.path = path
    self.remote = is_remote(path)
    self.flush_every_s = flush_every_s
    self._file = None
    self._lines: list[str] = []
    self._dirty = False
    self._last_flush = time.monotonic()
    if self.remote:
      if exists(path):
        self._lines = read_text(path).splitlines(keepends=True)
        if self._lines and not self._lines[-1].endswith("\n"):
          self._lines[-1] += "\n"
    else:
      os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
      self._file = open(path, "a", buffering=1, encoding="utf-8")

  def write_line(self, line: str) -> None:
    line = line if line.endswith("\n") else line + "\n"
    if self._file is not None:
      self._file.write(line)
      return
    self._lines.append(line)
    self._dirty = True
    if time.monotonic() - self._last_flush >= self.flush_every_s:
      self.flush()

  def flush(self) -> None:
    if self._file is not None:
      self._file.flush()
    elif self._dirty:
      write_text(self.path, "".join(self._lines))
      self._dirty = False
      self._last_flush = time.monotonic()

  def close(self) -> None:
    self.flush()
    if self._file is not None:
      self._file.close()
      self._file = None
