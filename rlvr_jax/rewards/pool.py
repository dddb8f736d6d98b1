"""A small process pool for reward functions that may hang or crash (math-verify, user scorers).

Why not ``concurrent.futures.ProcessPoolExecutor``: it cannot stop one hung task (only the whole
pool, and its exit handler joins workers, so a task stuck in C code hangs interpreter exit) and a
crashed worker breaks every pending future. Here each worker is a process with its own pipe, so:

* per-call timeout: the worker arms ``setitimer`` around each task (math-verify's own
  ``signal.alarm`` needs the main thread, which a pool worker's task runs in); a task stuck in C
  code that ignores the signal is killed by the parent at ``timeout + grace`` and the worker
  replaced;
* a worker that dies (segfault, ``os._exit``, OOM-kill) costs only its current task;
* the pool is created lazily, reused across calls (``get_pool``), its workers are fresh
  interpreters (forking a process that runs JAX is unsafe), and it is terminated at exit.

Workers exit when the parent closes their pipe (at exit, or when it dies); one stuck in C code when
the parent is SIGKILLed lingers until that call returns. (``PR_SET_PDEATHSIG`` would fix that but
fires when the *thread* that started the worker exits, which would kill workers of a pool created
from a short-lived thread.)

Tasks are ``(fn, args)`` with ``fn`` a module-level (picklable) function. Each result is a
``(status, value)`` pair with status ``ok`` / ``error`` / ``timeout`` / ``crash``.
"""
from __future__ import annotations

import atexit
import collections
import multiprocessing as mp
import multiprocessing.connection
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from typing import Any, Callable, Sequence

from absl import logging

# Seconds the parent waits beyond the per-call timeout before killing a worker; the worker's own
# timer normally fires first and reports a clean "timeout".
_KILL_GRACE_S = 2.0
_STARTUP_TIMEOUT_S = 120.0


class _TaskTimeout(BaseException):
  """Raised by the worker's timer. A BaseException so library code's ``except Exception`` (which
  math-verify uses to turn errors into False) cannot swallow it."""


def _on_timer(signum, frame):
  del signum, frame
  raise _TaskTimeout()


def _worker_main(conn) -> None:
  """Worker loop: receive the initializer, report ready, then run tasks until EOF or None."""
  # The parent handles Ctrl-C; workers ignore it and exit when the parent closes the pipe.
  signal.signal(signal.SIGINT, signal.SIG_IGN)
  signal.signal(signal.SIGALRM, _on_timer)
  try:
    initializer = conn.recv()
    if initializer is not None:
      initializer()
  except BaseException as e:  # pylint: disable=broad-except
    conn.send(("failed", f"{type(e).__name__}: {e}"))
    return
  conn.send(("ready", os.getpid()))
  while True:
    try:
      message = conn.recv()
    except (EOFError, OSError):
      return
    if message is None:
      return
    index, fn, args, timeout = message
    try:
      signal.setitimer(signal.ITIMER_REAL, timeout)
      try:
        result = ("ok", fn(*args))
      finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    except _TaskTimeout:
      result = ("timeout", None)
    except BaseException as e:  # pylint: disable=broad-except
      result = ("error", f"{type(e).__name__}: {e}")
    try:
      conn.send((index, *result))
    except Exception as e:  # pylint: disable=broad-except
      # The value did not pickle: report that instead of dying.
      conn.send((index, "error", f"unpicklable result: {type(e).__name__}: {e}"))


class _Worker:
  """One worker process talking pickled messages over a socketpair.

  Started with ``subprocess`` rather than a multiprocessing context: ``spawn`` re-imports the
  parent's ``__main__`` in every worker (slow for a trainer script, and impossible for code run
  from stdin), and ``fork`` is unsafe in a process running JAX threads.
  """

  def __init__(self, initializer):
    parent_sock, child_sock = socket.socketpair()
    env = dict(os.environ)
    # Same import path as the parent, so pickled functions of any importable module resolve.
    env["PYTHONPATH"] = os.pathsep.join(p or os.getcwd() for p in sys.path)
    self.process = subprocess.Popen(
        [sys.executable, "-c", _BOOT, str(child_sock.fileno())],
        pass_fds=(child_sock.fileno(),),
        stdin=subprocess.DEVNULL,
        env=env,
    )
    child_sock.close()  # so that the parent sees EOF when the child dies
    self.conn = mp.connection.Connection(parent_sock.detach())
    self.conn.send(initializer)
    self.ready = False
    self.started = time.monotonic()

  def kill(self) -> None:
    try:
      self.process.kill()
      self.process.wait(timeout=5)
    except (OSError, subprocess.TimeoutExpired):
      pass
    finally:
      self.conn.close()


_BOOT = (
    "import sys, multiprocessing.connection as c; from rlvr_jax.rewards import pool; "
    "pool._worker_main(c.Connection(int(sys.argv[1])))"
)


class VerifierPool:
  """Worker processes running picklable tasks with a per-call timeout (see module docstring)."""

  def __init__(self, num_workers: int | None = None, initializer: Callable[[], None] | None = None):
    self.num_workers = num_workers or max(1, min(4, os.cpu_count() or 1))
    self._initializer = initializer
    self._workers: list[_Worker] = []
    self._lock = threading.Lock()  # one map() at a time; the pipes are not shared safely
    self.restarts = 0  # workers replaced after a timeout kill or a crash

  def _spawn(self) -> _Worker:
    return _Worker(self._initializer)

  def _replace(self, worker: _Worker) -> None:
    if not worker.ready:
      # Died before it could report ready: a broken environment, not a bad item. Do not respawn
      # forever; the caller (compute_rewards) turns the error into a counted failure.
      worker.kill()
      self._workers.remove(worker)
      raise RuntimeError(
          "a reward worker exited during startup (see its stderr above); check that "
          f"`{sys.executable} -c 'import rlvr_jax.rewards'` works"
      )
    worker.kill()
    self._workers[self._workers.index(worker)] = self._spawn()
    self.restarts += 1

  def map(self, fn: Callable[..., Any], items: Sequence[tuple], timeout: float) -> list[tuple[str, Any]]:
    """Runs ``fn(*items[i])`` for every i; returns ``[(status, value)]`` in the order of ``items``."""
    if timeout <= 0:
      raise ValueError(f"timeout must be > 0 seconds, got {timeout}")
    with self._lock:
      while len(self._workers) < self.num_workers:
        self._workers.append(self._spawn())
      try:
        return self._map_locked(fn, items, float(timeout))
      except BaseException:
        # Busy workers would deliver stale results into the next call: start afresh next time.
        for worker in self._workers:
          worker.kill()
        self._workers = []
        raise

  def _map_locked(self, fn, items, timeout):
    results: list[tuple[str, Any] | None] = [None] * len(items)
    pending = collections.deque(range(len(items)))
    busy: dict[_Worker, tuple[int, float]] = {}  # worker -> (item index, kill deadline)
    while pending or busy:
      for worker in list(self._workers):
        if not pending:
          break
        if worker.ready and worker not in busy:
          index = pending.popleft()
          try:
            worker.conn.send((index, fn, items[index], timeout))
          except (OSError, ValueError):  # died while idle: replace it, retry the item
            pending.appendleft(index)
            self._replace(worker)
            continue
          busy[worker] = (index, time.monotonic() + timeout + _KILL_GRACE_S)
      now = time.monotonic()
      deadlines = [d for _, d in busy.values()]
      deadlines += [w.started + _STARTUP_TIMEOUT_S for w in self._workers if not w.ready]
      wait_s = max(0.0, min(deadlines) - now) if deadlines else None
      watched = [w.conn for w in self._workers if w in busy or not w.ready]
      ready_conns = set(mp.connection.wait(watched, timeout=wait_s))
      for worker in list(self._workers):
        if worker.conn not in ready_conns:
          continue
        try:
          message = worker.conn.recv()
        except (EOFError, OSError):
          message = None
        if message is None:  # the process died
          if worker in busy:
            index, _ = busy.pop(worker)
            results[index] = ("crash", None)
            logging.warning("reward worker died while scoring item %d; replacing it", index)
          self._replace(worker)
        elif message[0] == "ready":
          worker.ready = True
        elif message[0] == "failed":
          raise RuntimeError(f"reward worker initializer failed: {message[1]}")
        else:
          index, status, value = message
          busy.pop(worker, None)
          results[index] = (status, value)
      now = time.monotonic()
      for worker in list(self._workers):
        if worker in busy and now >= busy[worker][1]:
          index, _ = busy.pop(worker)
          results[index] = ("timeout", None)
          logging.warning("reward item %d ignored its %.1fs timeout; killing the worker", index, timeout)
          self._replace(worker)
        elif not worker.ready and now >= worker.started + _STARTUP_TIMEOUT_S:
          raise RuntimeError(f"reward worker did not start within {_STARTUP_TIMEOUT_S:.0f}s")
    return results  # type: ignore[return-value]

  def close(self) -> None:
    """Stops every worker (politely, then by force). The pool restarts lazily if used again."""
    with self._lock:
      for worker in self._workers:
        try:
          worker.conn.send(None)
        except (OSError, ValueError):
          pass
      deadline = time.monotonic() + 1.0
      for worker in self._workers:
        try:
          worker.process.wait(timeout=max(0.01, deadline - time.monotonic()))
          worker.conn.close()
        except subprocess.TimeoutExpired:
          worker.kill()
      self._workers = []


_POOLS: dict[str, VerifierPool] = {}
_POOLS_LOCK = threading.Lock()


def get_pool(name: str = "default", num_workers: int | None = None, initializer=None) -> VerifierPool:
  """The shared pool called ``name``, created on first use and closed at interpreter exit."""
  with _POOLS_LOCK:
    if name not in _POOLS:
      _POOLS[name] = VerifierPool(num_workers=num_workers, initializer=initializer)
    return _POOLS[name]


@atexit.register
def shutdown_pools() -> None:
  """Closes every shared pool (registered with ``atexit``; safe to call more than once)."""
  with _POOLS_LOCK:
    for pool in _POOLS.values():
      pool.close()
    _POOLS.clear()
