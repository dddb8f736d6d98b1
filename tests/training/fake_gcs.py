"""A fake ``gs://`` filesystem for tests: fsspec's local filesystem under a temporary root, with
the two object-store limits that matter to a trainer: no append mode and no partial objects.

`install(root)` registers it for the ``gs`` / ``gcs`` protocols, so ``etils.epath`` (and
therefore `rlvr_jax.training.storage`) reads and writes ``gs://bucket/x`` as ``<root>/bucket/x``.
"""
from __future__ import annotations

import os

import fsspec
from fsspec.implementations.local import LocalFileSystem


class FakeGCS(LocalFileSystem):
  protocol = ("gs", "gcs")
  root_marker = ""
  root = "/nonexistent"          # set by install()
  fail_with: Exception | None = None  # e.g. PermissionError: every call raises it (no credentials)
  calls: list = []

  def __init__(self, *args, **kwargs):
    kwargs.pop("finalize_on_close", None)  # a gcsfs option epath passes
    super().__init__(*args, auto_mkdir=True, **kwargs)  # objects need no parent "directory"

  @classmethod
  def _strip_protocol(cls, path):
    path = os.fspath(path) if not isinstance(path, list) else path
    if isinstance(path, list):
      return [cls._strip_protocol(p) for p in path]
    for prefix in ("gs://", "gcs://"):
      if path.startswith(prefix):
        return os.path.join(cls.root, path[len(prefix):])
    return LocalFileSystem._strip_protocol(path)

  def _check(self, what):
    FakeGCS.calls.append(what)
    if FakeGCS.fail_with is not None:
      raise FakeGCS.fail_with

  def _open(self, path, mode="rb", **kwargs):
    self._check(("open", path, mode))
    if "a" in mode:
      raise NotImplementedError("object stores cannot append to an object (fake gs://)")
    return super()._open(path, mode=mode, **kwargs)

  def exists(self, path, **kwargs):
    self._check(("exists", path))
    return super().exists(path, **kwargs)

  def ls(self, path, detail=False, **kwargs):
    self._check(("ls", path))
    return super().ls(path, detail=detail, **kwargs)


def install(root: str) -> type[FakeGCS]:
  """Points ``gs://`` at ``root`` for this process; returns the class (set ``fail_with`` on it)."""
  FakeGCS.root = str(root)
  FakeGCS.fail_with = None
  FakeGCS.calls = []
  for name in ("gs", "gcs"):
    fsspec.register_implementation(name, FakeGCS, clobber=True)
  # epath caches one filesystem per protocol: drop a real one made earlier in this process.
  from etils.epath import backend
  backend.fsspec_backend._get_filesystem.cache_clear()  # pylint: disable=protected-access
  FakeGCS.clear_instance_cache()
  return FakeGCS
