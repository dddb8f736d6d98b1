"""Host-side validation (errors name the row), bucketing and packing helpers, config checks."""
import numpy as np
import pytest

from rlvr_jax.sampling import (SamplerConfig, bucket_batch_size, bucket_prompt_length, check_prompts, generate,
                               pack_prompts)
from rlvr_jax.sampling.sampler import phase_ends
from tests.sampling.sampling_helpers import tiny_model


@pytest.fixture(scope="module")
def model():
  return tiny_model(max_position_embeddings=32)


@pytest.mark.parametrize("prompts, match", [
    ([[1, 2], []], r"prompt 1 is empty"),
    ([[1, 2], [3], [4, 256]], r"prompt 2 has token id 256 at position 1, outside the vocabulary \[0, 256\)"),
    ([[-1]], r"prompt 0 has token id -1 at position 0"),
    ([[1], list(range(1, 30))], r"prompt 1 has 29 tokens; with max_new_tokens=4 it needs 33 positions "
                                r"but the cache holds max_len=32"),
    ([[1], [[1, 2]]], r"prompt 1 has shape \(1, 2\)"),
    ([[1.5]], r"prompt 0 has dtype float64"),
    ([], r"prompts is empty"),
])
def test_bad_prompts_raise_naming_the_row(model, prompts, match):
  with pytest.raises(ValueError, match=match):
    generate(model, prompts, max_new_tokens=4)


def test_bad_options_raise(model):
  with pytest.raises(ValueError, match=r"eos_ids\[1\]=300 is outside the vocabulary"):
    generate(model, [[1]], max_new_tokens=2, eos_ids=(2, 300))
  with pytest.raises(ValueError, match=r"pad_id=-1"):
    generate(model, [[1]], max_new_tokens=2, pad_id=-1)
  with pytest.raises(ValueError, match=r"max_len=8"):
    generate(model, [[1] * 5], max_new_tokens=4, max_len=8)
  for kw, match in [(dict(max_new_tokens=0), "max_new_tokens=0"), (dict(num_samples=0), "num_samples=0"),
                    (dict(temperature=-1.0), "temperature=-1.0"), (dict(top_p=0.0), "top_p=0.0"),
                    (dict(top_k=-2), "top_k=-2"), (dict(min_p=1.5), "min_p=1.5"),
                    (dict(decode_phases=-1), "decode_phases=-1")]:
    with pytest.raises(ValueError, match=match):
      SamplerConfig(**{"max_new_tokens": 4, **kw})


def test_check_prompts_returns_int32_rows():
  rows = check_prompts([[3, 4], np.array([5], np.int64)], vocab_size=8, max_new_tokens=2, max_len=16)
  assert [r.dtype for r in rows] == [np.int32, np.int32]
  assert [r.tolist() for r in rows] == [[3, 4], [5]]


def test_buckets_are_powers_of_two():
  assert [bucket_prompt_length(n) for n in (1, 8, 9, 16, 17, 100)] == [8, 8, 16, 16, 32, 128]
  assert bucket_prompt_length(3, minimum=1) == 4
  assert [bucket_batch_size(n) for n in (1, 2, 3, 5, 8, 9)] == [1, 2, 4, 8, 8, 16]


def test_pack_prompts_left_pads_and_adds_dummy_rows():
  tokens, mask = pack_prompts([np.array([1, 2, 3]), np.array([4])], num_rows=3, length=4, pad_id=9)
  np.testing.assert_array_equal(tokens, [[9, 1, 2, 3], [9, 9, 9, 4], [9, 9, 9, 9]])
  np.testing.assert_array_equal(mask, [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 1]])


def test_decode_phases_auto_and_ends():
  assert SamplerConfig(max_new_tokens=12).decode_phases == 1
  assert SamplerConfig(max_new_tokens=64).decode_phases == 2
  assert SamplerConfig(max_new_tokens=4096).decode_phases == 4
  assert SamplerConfig(max_new_tokens=64, decode_phases=3).decode_phases == 3
  assert phase_ends(12, 3) == [4, 8, 12]
  assert phase_ends(10, 4) == [3, 5, 8, 10]
  assert phase_ends(2, 4) == [1, 2]  # never more phases than steps
  assert phase_ends(128, 1) == [128]


def test_config_is_hashable_and_normalised():
  a = SamplerConfig(max_new_tokens=4, eos_ids=[2, np.int64(3)], temperature=1)
  b = SamplerConfig(max_new_tokens=4, eos_ids=(2, 3), temperature=1.0)
  assert a == b and hash(a) == hash(b) and a.eos_ids == (2, 3)
