"""Shared pieces of the sampler tests: tiny models and an independent reference decoder."""
import jax.numpy as jnp
import numpy as np
from flax import nnx

from rlvr_jax.models import ModelConfig, Transformer


def tiny_model(vocab_size: int = 256, seed: int = 0, **kw) -> Transformer:
  """A 2-layer width-64 Qwen2-style decoder; init_std 0.1 gives O(1) logits (non-trivial argmax)."""
  config = ModelConfig.tiny_qwen2(vocab_size=vocab_size, init_std=0.1, **kw)
  return Transformer(config, rngs=nnx.Rngs(seed))


@nnx.jit
def _forward(model, tokens):
  return model(tokens)


def naive_greedy(model, prompts, max_new_tokens, eos_ids=()):
  """Greedy decoding by full recomputation: no KV cache, no padding tricks, one prompt per row.

  Each row is right-padded into a fixed [P, T] buffer (causal attention makes the padding after a
  row's end invisible to it), so the forward compiles once. Returns (tokens, lengths) with 0-padding.
  """
  p, n = len(prompts), max_new_tokens
  width = max(len(x) for x in prompts) + n
  buf = np.zeros((p, width), np.int32)
  cur = np.array([len(x) for x in prompts])
  for i, x in enumerate(prompts):
    buf[i, :len(x)] = x
  out = np.zeros((p, n), np.int32)
  lengths = np.full(p, n)
  done = np.zeros(p, bool)
  for t in range(n):
    logits = np.asarray(_forward(model, jnp.asarray(buf)))  # [P, T, V]
    nxt = logits[np.arange(p), cur - 1].argmax(-1)
    for i in range(p):
      if done[i]:
        continue
      out[i, t] = nxt[i]
      buf[i, cur[i]] = nxt[i]
      if nxt[i] in eos_ids:
        done[i], lengths[i] = True, t + 1
    cur = cur + 1
  return out, lengths


def last_logits(model, sequences) -> np.ndarray:
  """Next-token logits [R, V] after each sequence (right padded into one jitted forward)."""
  lens = np.array([len(s) for s in sequences])
  buf = np.zeros((len(sequences), lens.max()), np.int32)
  for i, s in enumerate(sequences):
    buf[i, :len(s)] = s
  logits = np.asarray(_forward(model, jnp.asarray(buf)), np.float64)
  return logits[np.arange(len(sequences)), lens - 1]
