"""Greedy parity (naive full-recompute decoder, transformers' generate), fan-out, determinism, recompiles."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from rlvr_jax.sampling import (FINISH_LENGTH, FINISH_STOP, TRACE_COUNTS, SamplerConfig, generate,
                               sample_padded)
from tests.sampling.sampling_helpers import naive_greedy, tiny_model

PROMPTS = [[5, 17, 3], list(range(30, 41)), [200, 7, 7, 9, 100, 2]]  # lengths 3, 11, 6


def _pick_eos(tokens):
  """A token that row 1 emits early and row 0 never emits: eos then lands inside the batch."""
  for tok in tokens[1, 2:8]:
    if tok not in tokens[0]:
      return int(tok)
  raise AssertionError("no usable eos id; change the prompts")


def test_greedy_matches_naive_full_recompute():
  model = tiny_model()
  n = 12
  free, _ = naive_greedy(model, PROMPTS, n)
  eos = _pick_eos(free)
  want, want_len = naive_greedy(model, PROMPTS, n, eos_ids=(eos, 255))
  # Three decode phases (cache grown at steps 4 and 8); a row stops inside a phase.
  got = generate(model, PROMPTS, max_new_tokens=n, temperature=0.0, eos_ids=(eos, 255), num_samples=2,
                 decode_phases=3)
  assert got.tokens.shape == (6, n) and got.tokens.dtype == np.int32
  np.testing.assert_array_equal(got.tokens[::2], want)
  np.testing.assert_array_equal(got.tokens[1::2], want)  # greedy samples of one prompt agree
  np.testing.assert_array_equal(got.lengths[::2], want_len)
  stopped = want_len < n
  assert stopped.any() and not stopped.all()
  assert got.num_steps == n  # one row runs to the end
  np.testing.assert_array_equal(got.finish_reason[::2], np.where(stopped, FINISH_STOP, FINISH_LENGTH))
  for row, length in zip(got.tokens[::2], want_len):
    assert (row[length:] == 0).all()
  live = np.arange(n)[None] < got.lengths[:, None]
  assert (got.logprobs[live] < 0).all() and (got.logprobs[~live] == 0).all()


def test_greedy_matches_transformers_generate(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  from rlvr_jax.models import load_hf
  torch.manual_seed(0)
  config = transformers.Qwen2Config(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
  hf = transformers.Qwen2ForCausalLM(config).eval()
  with torch.no_grad():  # unit-scale weights: O(1) logits, so the argmax is not decided by rounding
    for name, p in hf.named_parameters():
      p.copy_(1 + 0.3 * torch.randn_like(p) if "norm" in name else torch.randn_like(p) / p.shape[-1] ** 0.5)
  hf.save_pretrained(tmp_path)
  model, _ = load_hf(tmp_path)
  n = 10
  tp = max(map(len, PROMPTS))
  ids = np.zeros((len(PROMPTS), tp), np.int64)
  mask = np.zeros_like(ids)
  for i, x in enumerate(PROMPTS):
    ids[i, tp - len(x):], mask[i, tp - len(x):] = x, 1
  kw = dict(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), do_sample=False, max_new_tokens=n,
            pad_token_id=0)
  with torch.no_grad():
    eos = (_pick_eos(hf.generate(**kw, eos_token_id=None)[:, tp:].numpy()), 254)
    out = hf.generate(**kw, eos_token_id=list(eos), output_logits=True, return_dict_in_generate=True)
  want = out.sequences[:, tp:].numpy()  # [P, n_hf], HF stops when every row has stopped
  got = generate(model, PROMPTS, max_new_tokens=n, temperature=0.0, eos_ids=eos)
  np.testing.assert_array_equal(got.tokens[:, :want.shape[1]], want)
  assert (got.tokens[:, want.shape[1]:] == 0).all()
  assert FINISH_STOP in got.finish_reason and FINISH_LENGTH in got.finish_reason
  hf_logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1).numpy()  # [P, n_hf, V]
  hf_logp = np.take_along_axis(hf_logp, want[..., None], -1)[..., 0]
  live = np.arange(want.shape[1])[None] < got.lengths[:, None]
  np.testing.assert_allclose(got.logprobs[:, :want.shape[1]][live], hf_logp[live], atol=2e-4, rtol=0)


def test_fan_out_equals_repeated_prompts_and_is_deterministic():
  model = tiny_model()
  g, n = 4, 8
  kw = dict(max_new_tokens=n, temperature=1.0, top_k=20, eos_ids=(3,), seed=7)
  fan = generate(model, PROMPTS[:2], num_samples=g, **kw)
  rep = generate(model, [x for x in PROMPTS[:2] for _ in range(g)], num_samples=1, **kw)
  np.testing.assert_array_equal(fan.tokens, rep.tokens)
  np.testing.assert_array_equal(fan.lengths, rep.lengths)
  np.testing.assert_allclose(fan.logprobs, rep.logprobs, atol=1e-5, rtol=0)
  again = generate(model, PROMPTS[:2], num_samples=g, **kw)
  np.testing.assert_array_equal(fan.tokens, again.tokens)
  np.testing.assert_array_equal(fan.logprobs, again.logprobs)
  for p in range(2):  # the G samples of one prompt differ from each other
    assert len({tuple(r) for r in fan.tokens[p * g:(p + 1) * g]}) == g
  other = generate(model, PROMPTS[:2], num_samples=g, **{**kw, "seed": 8})
  assert (other.tokens != fan.tokens).any()


def test_bucketed_shapes_do_not_recompile():
  model = tiny_model()
  config = SamplerConfig(max_new_tokens=3, num_samples=2, temperature=0.0, eos_ids=(9,))
  kw = dict(max_new_tokens=3, num_samples=2, temperature=0.0, eos_ids=(9,))
  generate(model, [[1, 2, 3], [4, 5]], **kw)  # length bucket 8, batch bucket 2
  before = TRACE_COUNTS[config]
  a = generate(model, [[1, 2, 3, 4, 5, 6, 7], [8]], **kw)  # same buckets: no trace
  assert TRACE_COUNTS[config] == before
  b = generate(model, [[1, 2, 3, 4, 5, 6, 7], [8], [9, 9]], **kw)  # batch bucket 4: one new trace
  assert TRACE_COUNTS[config] == before + 1
  # Dummy rows of the bigger bucket do not change the real rows.
  np.testing.assert_array_equal(a.tokens, b.tokens[:4])
  np.testing.assert_array_equal(a.logprobs, b.logprobs[:4])


def test_sample_padded_inside_user_jit_exits_early():
  model = tiny_model()
  graphdef, state = nnx.split(model)
  # Every id is a stop id: all rows stop at their first token and the loop must exit after one step.
  config = SamplerConfig(max_new_tokens=4, num_samples=3, temperature=0.0, eos_ids=tuple(range(256)), pad_id=9)

  @jax.jit
  def step(state, tokens, mask, rng):  # the trainer's own jit around the core
    return sample_padded(graphdef, state, tokens, mask, rng, config)

  tokens = jnp.asarray([[0, 0, 5, 17, 3], [30, 31, 32, 33, 34]], jnp.int32)
  out = jax.device_get(step(state, tokens, tokens > 0, jax.random.key(0)))
  ref = generate(model, [[5, 17, 3], [30, 31, 32, 33, 34]], max_new_tokens=1, temperature=0.0)
  assert ref.num_steps == 1 and (ref.finish_reason == FINISH_LENGTH).all()
  assert out["tokens"].shape == (6, 4) and int(out["num_steps"]) == 1
  np.testing.assert_array_equal(out["tokens"][::3, :1], ref.tokens)
  np.testing.assert_array_equal(out["tokens"][:, 1:], 9)
  np.testing.assert_array_equal(out["lengths"], 1)
  np.testing.assert_array_equal(out["finish_reason"], FINISH_STOP)
  np.testing.assert_allclose(out["logprobs"][::3, 0], ref.logprobs[:, 0], atol=1e-5, rtol=0)
