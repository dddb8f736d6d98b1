"""EAD's run-time schedule (episodes.context.ead_schedule): d_s = min(d0 + growth * s, d_max)."""
import types

import pytest

from rlvr_jax.episodes.context import ead_schedule


def test_decay_grows_with_the_step_and_saturates():
  r = types.SimpleNamespace(schedule_options=dict(decay0=10.0, decay_growth=5.0, decay_max=30.0,
                                                  offset=2))
  assert ead_schedule(r, 0) == {"temperature_decay": 10.0, "temperature_offset": 2}
  assert ead_schedule(r, 3)["temperature_decay"] == 25.0
  assert ead_schedule(r, 100)["temperature_decay"] == 30.0
  constant = types.SimpleNamespace(schedule_options=dict(decay0=7.0))
  assert ead_schedule(constant, 50) == {"temperature_decay": 7.0, "temperature_offset": 0}


@pytest.mark.parametrize("options, match", [
    (dict(), "needs decay0"), (dict(decay0=1.0, growth=2.0), r"unknown: \['growth'\]"),
    (dict(decay0=0.0), "EAD decay 0.0 at step 0; need > 0")])
def test_bad_options_raise(options, match):
  with pytest.raises(ValueError, match=match):
    ead_schedule(types.SimpleNamespace(schedule_options=options), 0)
