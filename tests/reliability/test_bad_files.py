"""Bad input files and data: each error names the file (and line / tensor), or the row is counted
and skipped; a data source whose prompts never fit stops with the key and the lengths seen."""
from __future__ import annotations

import itertools
import json
import types

import pytest
from absl import logging as absl_logging

from rlvr_jax.data import sources
from rlvr_jax.models import load_hf
from rlvr_jax.models import tokenizer as tokenizer_lib
from rlvr_jax.training import collect
from tests.models.test_hf_load_errors_models import _copy, saved  # noqa: F401  (fixture)


def test_a_non_utf8_line_is_a_counted_bad_row_naming_file_and_line(tmp_path, monkeypatch):
  path = tmp_path / "data.jsonl"
  good = json.dumps({"question": "1 + 1 =", "answer": "2"}).encode()
  path.write_bytes(good + b"\n" + b'{"question": "caf\xe9", "answer": "1"}\n' + good + b"\n")
  warnings = []
  monkeypatch.setattr(absl_logging, "warning", lambda msg, *a: warnings.append(msg % a))
  src = sources.make_source({"source": "jsonl", "path": str(path)})
  assert len(src) == 2 and src.num_skipped == 1
  assert str(path) in warnings[0]
  assert "not valid UTF-8: line 2 (byte 0xe9 at column 18)" in warnings[0]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_corrupt_safetensors_file_is_named(saved, tmp_path, damage):
  path = _copy(saved, tmp_path)
  weights = path / "model.safetensors"
  data = weights.read_bytes()
  weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x00garbage" * 64)
  with pytest.raises(ValueError, match=f"{weights}.* the file is truncated or corrupt") as e:
    load_hf(path)
  assert "\n" not in str(e.value)


def test_a_corrupt_config_json_is_named(saved, tmp_path):
  path = _copy(saved, tmp_path)
  (path / "config.json").write_text('{"model_type": "qwen2", ')
  with pytest.raises(ValueError, match=f"{path / 'config.json'} is not valid JSON"):
    load_hf(path)


@pytest.mark.parametrize("name,text", [("tokenizer.json", '{"version": "1.0", "model": '),
                                       ("tokenizer_config.json", "{not json")])
def test_a_corrupt_tokenizer_file_is_named(tmp_path, name, text):
  tokenizer_lib.char_level("0123456789+-= ").save(tmp_path)
  (tmp_path / name).write_text(text)
  with pytest.raises(ValueError, match=f"{tmp_path / name} is not (a )?valid"):
    tokenizer_lib.Tokenizer.from_pretrained(tmp_path)


def _env(prompt_lengths, max_prompt=10, num_prompts=2):
  batches = itertools.cycle([[{"question": f"q{i}", "id": f"data.jsonl:line {i + 1}", "n": n}
                              for i, n in enumerate(prompt_lengths)]])
  return types.SimpleNamespace(num_prompts=num_prompts, it=batches, max_prompt=max_prompt,
                               prompt_fn=lambda ex: [1] * ex["n"])


def test_too_long_prompts_are_skipped_counted_and_named(monkeypatch):
  warnings = []
  monkeypatch.setattr(collect.logging, "warning", lambda msg, *a: warnings.append(msg % a))
  monkeypatch.setattr(collect, "_too_long_named", [0])
  counters = {}
  examples, prompts = collect.next_examples(_env([50, 4, 12, 6]), counters)
  assert [len(p) for p in prompts] == [4, 6]
  assert counters["prompts_skipped_too_long"] == 2
  assert warnings[0] == ("skipped a training prompt of 50 tokens (> config.data.max_prompt_len=10): "
                         "data.jsonl:line 1")
  assert "data.jsonl:line 3" in warnings[1] and len(examples) == 2


def test_no_usable_prompt_stops_naming_the_key_and_the_lengths(monkeypatch):
  monkeypatch.setattr(collect, "_too_long_named", [5])  # quiet
  with pytest.raises(ValueError, match=r"10\d\d training prompts in a row are longer than "
                     r"config.data.max_prompt_len=10 .*\(their lengths: 40 to 70 tokens\)"):
    collect.next_examples(_env([40, 70, 55]), {})


def test_a_hanging_reward_times_out_is_counted_and_the_run_goes_on():
  import threading  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel
  from rlvr_jax import rewards  # pylint: disable=import-outside-toplevel
  release = threading.Event()
  if "test_hangs" not in rewards.REWARDS:
    @rewards.register_reward("test_hangs")
    def _hangs(completions, examples, **options):  # pylint: disable=unused-variable
      del examples, options
      release.wait(60)  # a verifier stuck on one input
      return np.ones(len(completions), np.float32)
  spec = [{"name": "test_hangs", "timeout_s": 0.5}, {"name": "exact_match"}]
  completions, examples = ["4", "5"], [{"question": "2+2", "answer": "4"}] * 2
  try:
    scores, metrics = rewards.compute_rewards(spec, completions, examples, group_size=2)
  finally:
    release.set()
  np.testing.assert_array_equal(scores, [1.0, 0.0])  # exact_match alone: the hung term scores 0
  assert metrics["reward_fail/test_hangs"] == 2 and metrics["reward_timeout/test_hangs"] == 2
  with pytest.raises(ValueError, match=r"timeout_s=0 must be a number of seconds > 0"):
    rewards.parse_spec([{"name": "exact_match", "timeout_s": 0}])
  assert rewards.parse_spec(["exact_match"])[0]["timeout_s"] == 600.0
