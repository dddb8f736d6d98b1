"""Per-test cleanup for the RL-loop tests."""
import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage():
  """Frees each run's compiled programs and arrays right after the test. Left to interpreter
  exit, JAX's gc callback can still be running when pytest-xdist stops the worker, which prints a
  spurious KeyboardInterrupt warning."""
  yield
  gc.collect()
