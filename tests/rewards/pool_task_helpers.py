"""Module-level tasks for the process-pool tests (workers import this module by name)."""
import os
import time


def add(a, b):
  return a + b


def fail(message):
  raise RuntimeError(message)


def sleep_then_return(seconds):
  time.sleep(seconds)  # interruptible: the worker's own timer stops it
  return seconds


def spin_in_c(n):
  # One C call that never returns to the bytecode loop, so the worker's signal-based timer cannot
  # interrupt it: only the parent's hard kill can.
  return sum(range(n))


def crash(code):
  os._exit(code)


def worker_pid():
  return os.getpid()
