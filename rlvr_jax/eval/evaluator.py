"""Held-out evaluation of a policy: greedy accuracy, unbiased pass@k and maj@k.

Correctness of a completion comes from a registered reward (``rlvr_jax.rewards.REWARDS``, e.g.
``reasoning_gym`` or ``math_verify``) thresholded at ``threshold`` (1.0: fully correct; reasoning-gym
tasks such as countdown give partial credit below 1). Answers for majority voting come from
``rlvr_jax.rewards.extract_answer`` with the configured extractor.
"""
from __future__ import annotations

import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from absl import logging

from rlvr_jax import rewards as rewards_lib
from rlvr_jax import sampling
from rlvr_jax.eval import passk


def decode_completions(tokenizer: Any, tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
  return [tokenizer.decode(tokens[i, :lengths[i]].tolist(), skip_special_tokens=True)
          for i in range(tokens.shape[0])]


def score(completions: Sequence[str], examples: Sequence[Mapping], *, reward: str,
          reward_options: Mapping[str, Any] | None = None, threshold: float = 1.0) -> np.ndarray:
  """Boolean correctness [N] of completions against their examples' gold answers."""
  if reward not in rewards_lib.REWARDS:
    raise ValueError(f"eval correctness reward {reward!r} is not registered; "
                     f"choose one of {sorted(rewards_lib.REWARDS)}")
  out = rewards_lib.REWARDS[reward](list(completions), list(examples), **dict(reward_options or {}))
  values = np.asarray(out.scores if isinstance(out, rewards_lib.RewardOutput) else out, np.float32)
  return np.nan_to_num(values, nan=0.0) >= threshold - 1e-6  # NaN marks a failed item: incorrect


def generate_all(model: Any, prompts: Sequence[Sequence[int]], *, batch_size: int,
                 generate_fn: Callable | None = None, **kwargs):
  """``sampling.generate`` (or ``generate_fn``, same signature) over a long prompt list in batches;
  concatenated numpy fields."""
  generate_fn = generate_fn or sampling.generate
  toks, lens = [], []
  for start in range(0, len(prompts), batch_size):
    out = generate_fn(model, list(prompts[start:start + batch_size]), **kwargs)
    toks.append(np.asarray(out.tokens))
    lens.append(np.asarray(out.lengths))
  width = max(t.shape[1] for t in toks)
  toks = [np.pad(t, ((0, 0), (0, width - t.shape[1]))) for t in toks]
  return np.concatenate(toks), np.concatenate(lens)


def evaluate(model: Any, tokenizer: Any, examples: Sequence[Mapping], *,
             prompt_fn: Callable[[Mapping], list[int]], max_new_tokens: int, num_samples: int = 8,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             ks: Sequence[int] | None = None, reward: str = "reasoning_gym",
             reward_options: Mapping[str, Any] | None = None, threshold: float = 1.0,
             answer_extractor: str = "auto", batch_size: int = 64, seed: int = 0,
             greedy: bool = True, generate_fn: Callable | None = None) -> dict:
  """Greedy accuracy and pass@k / maj@k (k up to ``num_samples``) on ``examples``.

  ``prompt_fn(example) -> token ids`` applies the run's template and tokenizer, so evaluation sees
  exactly the training prompt format. ``generate_fn`` replaces ``sampling.generate`` (the RL loop
  passes ``parallel.MeshSampler.generate`` to sample under its mesh).
  """
  t0 = time.time()
  prompts = [prompt_fn(ex) for ex in examples]
  eos = tuple(tokenizer.eos_ids)
  gen = dict(max_new_tokens=max_new_tokens, eos_ids=eos, pad_id=tokenizer.pad_id,
             generate_fn=generate_fn)
  result: dict[str, Any] = {}
  greedy_correct = None
  if greedy:
    toks, lens = generate_all(model, prompts, batch_size=batch_size, num_samples=1,
                              temperature=0.0, seed=seed, **gen)
    texts = decode_completions(tokenizer, toks, lens)
    greedy_correct = score(texts, examples, reward=reward, reward_options=reward_options,
                           threshold=threshold)
    result["greedy_response_len"] = float(np.mean(lens))
  correct = answers = None
  if num_samples > 0:
    per_batch = max(1, batch_size // num_samples)
    toks, lens = generate_all(model, prompts, batch_size=per_batch, num_samples=num_samples,
                              temperature=temperature, top_p=top_p, top_k=top_k, seed=seed + 1,
                              **gen)
    texts = decode_completions(tokenizer, toks, lens)
    rep = [ex for ex in examples for _ in range(num_samples)]
    correct = score(texts, rep, reward=reward, reward_options=reward_options,
                    threshold=threshold).reshape(len(examples), num_samples)
    answers = [[rewards_lib.normalize_answer(rewards_lib.extract_answer(t, answer_extractor))
                for t in texts[i * num_samples:(i + 1) * num_samples]] for i in range(len(examples))]
    result["sampled_response_len"] = float(np.mean(lens))
  if correct is not None:
    gold = [ex.get("answer", "") for ex in examples]
    result.update(passk.summarize(correct, answers, gold, ks=ks, greedy_correct=greedy_correct))
  elif greedy_correct is not None:
    result["greedy_accuracy"] = float(np.mean(greedy_correct))
    result["num_problems"] = len(examples)
  if greedy_correct is not None:
    n = len(greedy_correct)
    p = float(np.mean(greedy_correct))
    result["greedy_accuracy_stderr"] = float(np.sqrt(max(p * (1 - p), 1e-12) / max(n, 1)))
  result["temperature"] = float(temperature)
  result["eval_time_s"] = time.time() - t0
  logging.info("eval on %d problems: %s", len(examples),
               {k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
  return result
