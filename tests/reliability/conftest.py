"""Per-test cleanup for the reliability tests that run the RL loop (as tests/training/conftest.py)."""
import gc

import pytest


@pytest.fixture(autouse=True)
def _collect_garbage():
  yield
  gc.collect()
