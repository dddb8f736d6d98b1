"""Held-out evaluation of a policy: greedy accuracy, unbiased pass@k and maj@k.

Correctness of a completion comes from a registered reward (``rlvr_jax.rewards.REWARDS``, e.g.
``reasoning_gym`` or ``math_verify``) thresholded at ``threshold`` (1.0: fully correct; reasoning-gym
tasks such as countdown give partial credit below 1). Answers for majority voting come from
``rlvr_jax.rewards.extract_answer`` with the configured extractor.

The result also holds ``per_problem``: each problem's stable id (``problem_id``), its number of
correct samples and its greedy verdict, so that ``compare`` can set two evaluations of the same
problems side by side (a base model and its RL-trained policy: wins / losses per problem and the
winner-take-all split of ``metrics``). With ``entropy=True`` it also holds ``eval_token_entropy``,
the policy's mean token entropy over the sampled completions.
"""
from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
from absl import logging
from flax import nnx

from rlvr_jax import rewards as rewards_lib
from rlvr_jax import sampling
from rlvr_jax.eval import metrics, passk
from rlvr_jax.training import batch as batch_lib
from rlvr_jax.training import step as step_lib
from rlvr_jax.training import storage


def decode_completions(tokenizer: Any, tokens: np.ndarray, lengths: np.ndarray) -> list[str]:
  return [tokenizer.decode(tokens[i, :lengths[i]].tolist(), skip_special_tokens=True)
          for i in range(tokens.shape[0])]


def reward_values(completions: Sequence[str], examples: Sequence[Mapping], *, reward: str,
                  reward_options: Mapping[str, Any] | None = None) -> np.ndarray:
  """The correctness reward's raw values [N] (float32; NaN marks an item that failed or timed out)."""
  if reward not in rewards_lib.REWARDS:
    raise ValueError(f"eval correctness reward {reward!r} is not registered; "
                     f"choose one of {sorted(rewards_lib.REWARDS)}")
  out = rewards_lib.REWARDS[reward](list(completions), list(examples), **dict(reward_options or {}))
  return np.asarray(out.scores if isinstance(out, rewards_lib.RewardOutput) else out, np.float32)


def is_correct(values: np.ndarray, threshold: float = 1.0) -> np.ndarray:
  return np.nan_to_num(values, nan=0.0) >= threshold - 1e-6  # NaN marks a failed item: incorrect


def score(completions: Sequence[str], examples: Sequence[Mapping], *, reward: str,
          reward_options: Mapping[str, Any] | None = None, threshold: float = 1.0) -> np.ndarray:
  """Boolean correctness [N] of completions against their examples' gold answers."""
  return is_correct(reward_values(completions, examples, reward=reward,
                                  reward_options=reward_options), threshold)


def write_samples(path: str, rows: Sequence[Mapping[str, Any]]) -> None:
  """One JSON object per line, written whole (never half-written; ``path`` may be gs://)."""
  storage.write_text(path, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))


def _sample_rows(kind: str, examples: Sequence[Mapping], ids: Sequence[str],
                 prompt_texts: Sequence[str], texts: Sequence[str], values: np.ndarray,
                 correct: np.ndarray, answer_extractor: str, per_problem: int) -> list[dict]:
  rows = []
  for j, text in enumerate(texts):
    i = j // per_problem
    answer = rewards_lib.extract_answer(text, answer_extractor)
    rows.append({"problem_id": ids[i], "kind": kind, "sample": j % per_problem,
                 "prompt": prompt_texts[i], "gold": str(examples[i].get("answer", "")),
                 "completion": text, "extracted_answer": answer,
                 "score": None if np.isnan(values[j]) else float(values[j]),
                 "correct": bool(correct[j])})
  return rows


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


def problem_id(example: Mapping) -> str:
  """A stable id of a problem (12 hex digits): the SHA-1 of its question and gold answer, or of the
  whole example as sorted JSON when it has neither. It does not depend on the tokenizer or the
  prompt template, so evaluations of a base model and of its RL policy share ids."""
  if "question" in example or "answer" in example:
    text = f"{example.get('question', '')}\x00{example.get('answer', '')}"
  else:
    text = json.dumps(dict(example), sort_keys=True, default=str)
  return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def sampled_token_entropy(model: Any, prompts: Sequence[Sequence[int]], tokens: np.ndarray,
                          lengths: np.ndarray, *, num_samples: int, temperature: float,
                          batch_size: int, pad_id: int, logprob_impl: str | None = None) -> dict:
  """Per-token entropy of ``model`` on its own sampled completions (``metrics.mean_token_entropy``).

  ``tokens`` [P*n, T] / ``lengths`` [P*n] are ``generate_all``'s output for ``prompts`` with n =
  ``num_samples`` samples each. One teacher-forced forward per ``batch_size`` prompts through the
  trainer's own ``training.step.batch_logprobs`` (``kernels.logprob`` on the final hidden states,
  no [tokens, vocab] logits), so the value is the trainer's entropy: that of the full softmax at
  ``temperature``, without the sampler's top-p / top-k truncation. Every forward has the same
  shape (the last batch is filled with empty rows), so it compiles once.
  """
  if temperature <= 0:
    raise ValueError(f"token entropy needs a sampling temperature > 0, got {temperature}")
  graphdef, params = nnx.split(model)
  batch_size = min(batch_size, len(prompts))
  prompt_len = batch_lib.bucket(max(len(p) for p in prompts))
  response_len = batch_lib.bucket(max(int(np.max(lengths)), 1))
  keys = ("tokens", "positions", "attn_mask", "response")
  ents, masks = [], []
  for start in range(0, len(prompts), batch_size):
    chunk = [list(p) for p in prompts[start:start + batch_size]]
    rows = slice(start * num_samples, (start + len(chunk)) * num_samples)
    toks, lens = tokens[rows], lengths[rows]
    fill = batch_size - len(chunk)
    if fill:  # dummy prompts with empty completions: masked out below
      chunk += [chunk[-1]] * fill
      empty = np.full((fill * num_samples, toks.shape[1]), pad_id, toks.dtype)
      toks = np.concatenate([toks, empty])
      lens = np.concatenate([lens, np.zeros(fill * num_samples, lens.dtype)])
    batch = batch_lib.rollout_batch(chunk, num_samples, toks, lens, pad_id=pad_id,
                                    prompt_len=prompt_len, response_len=response_len)
    _, ent = step_lib.batch_logprobs(params, {k: batch[k] for k in keys}, graphdef=graphdef,
                                     temperature=float(temperature), impl=logprob_impl,
                                     num_micro=1)  # [rows, response_len]
    ents.append(np.asarray(ent))
    masks.append(batch["mask"])
  n = len(prompts) * num_samples
  return metrics.mean_token_entropy(np.concatenate(ents)[:n], np.concatenate(masks)[:n])


def evaluate(model: Any, tokenizer: Any, examples: Sequence[Mapping], *,
             prompt_fn: Callable[[Mapping], list[int]], max_new_tokens: int, num_samples: int = 8,
             temperature: float = 1.0, top_p: float = 1.0, top_k: int = 0,
             ks: Sequence[int] | None = None, reward: str = "reasoning_gym",
             reward_options: Mapping[str, Any] | None = None, threshold: float = 1.0,
             answer_extractor: str = "auto", batch_size: int = 64, seed: int = 0,
             greedy: bool = True, generate_fn: Callable | None = None,
             entropy: bool = False, steps_ok_fn: Callable | None = None,
             samples_path: str | None = None) -> dict:
  """Greedy accuracy and pass@k / maj@k (k up to ``num_samples``) on ``examples``.

  ``prompt_fn(example) -> token ids`` applies the run's template and tokenizer, so evaluation sees
  exactly the training prompt format. ``generate_fn`` replaces ``sampling.generate`` (the RL loop
  passes ``parallel.MeshSampler.generate`` to sample under its mesh). ``entropy=True`` adds
  ``eval_token_entropy`` (``sampled_token_entropy``; one extra forward per batch).
  ``steps_ok_fn(completions, examples) -> bool [N]``, a task's reasoning-step checker, adds
  ``cot_pass@k`` (``passk.summarize(steps_ok=...)``). ``samples_path``: a JSONL file to write with
  one row per completion (greedy and sampled): problem id, prompt, gold, completion, extracted
  answer, the correctness reward's value and the verdict (``_sample_rows``).

  ``per_problem`` in the result: ``problem_ids`` [P] (``problem_id``), and ``num_samples`` with
  ``correct_counts`` [P] when sampling, ``greedy_correct`` [P] (0 / 1) when greedy.
  """
  t0 = time.time()
  prompts = [prompt_fn(ex) for ex in examples]
  eos = tuple(tokenizer.eos_ids)
  gen = dict(max_new_tokens=max_new_tokens, eos_ids=eos, pad_id=tokenizer.pad_id,
             generate_fn=generate_fn)
  result: dict[str, Any] = {}
  samples: list[dict] = []
  ids = [problem_id(ex) for ex in examples]
  prompt_texts = ([tokenizer.decode(list(p), skip_special_tokens=False) for p in prompts]
                  if samples_path else [])
  greedy_correct = None
  if greedy:
    toks, lens = generate_all(model, prompts, batch_size=batch_size, num_samples=1,
                              temperature=0.0, seed=seed, **gen)
    texts = decode_completions(tokenizer, toks, lens)
    values = reward_values(texts, examples, reward=reward, reward_options=reward_options)
    greedy_correct = is_correct(values, threshold)
    if samples_path:
      samples += _sample_rows("greedy", examples, ids, prompt_texts, texts, values,
                              greedy_correct, answer_extractor, 1)
    result["greedy_response_len"] = float(np.mean(lens))
  correct = answers = steps_ok = None
  if num_samples > 0:
    per_batch = max(1, batch_size // num_samples)
    toks, lens = generate_all(model, prompts, batch_size=per_batch, num_samples=num_samples,
                              temperature=temperature, top_p=top_p, top_k=top_k, seed=seed + 1,
                              **gen)
    texts = decode_completions(tokenizer, toks, lens)
    rep = [ex for ex in examples for _ in range(num_samples)]
    values = reward_values(texts, rep, reward=reward, reward_options=reward_options)
    flat_correct = is_correct(values, threshold)
    if samples_path:
      samples += _sample_rows("sampled", examples, ids, prompt_texts, texts, values,
                              flat_correct, answer_extractor, num_samples)
    correct = flat_correct.reshape(len(examples), num_samples)
    answers = [[rewards_lib.normalize_answer(rewards_lib.extract_answer(t, answer_extractor))
                for t in texts[i * num_samples:(i + 1) * num_samples]] for i in range(len(examples))]
    if steps_ok_fn is not None:
      steps_ok = np.asarray(steps_ok_fn(texts, rep), bool).reshape(len(examples), num_samples)
    result["sampled_response_len"] = float(np.mean(lens))
    if entropy:
      ent = sampled_token_entropy(model, prompts, toks, lens, num_samples=num_samples,
                                  temperature=temperature, batch_size=per_batch,
                                  pad_id=tokenizer.pad_id)
      result["eval_token_entropy"] = ent["token_mean"]
  if correct is not None:
    gold = [ex.get("answer", "") for ex in examples]
    result.update(passk.summarize(correct, answers, gold, ks=ks, greedy_correct=greedy_correct,
                                  steps_ok=steps_ok))
  elif greedy_correct is not None:
    result["greedy_accuracy"] = float(np.mean(greedy_correct))
    result["num_problems"] = len(examples)
  if greedy_correct is not None:
    n = len(greedy_correct)
    p = float(np.mean(greedy_correct))
    result["greedy_accuracy_stderr"] = float(np.sqrt(max(p * (1 - p), 1e-12) / max(n, 1)))
  per_problem: dict[str, Any] = {"problem_ids": ids}
  if correct is not None:
    per_problem.update(num_samples=int(num_samples),
                       correct_counts=correct.sum(axis=1).astype(int).tolist())
  if greedy_correct is not None:
    per_problem["greedy_correct"] = np.asarray(greedy_correct).astype(int).tolist()
  result["per_problem"] = per_problem
  if samples_path:
    write_samples(samples_path, samples)
  result["temperature"] = float(temperature)
  result["eval_time_s"] = time.time() - t0
  logging.info("eval on %d problems: %s", len(examples),
               {k: round(v, 4) for k, v in result.items() if isinstance(v, float)})
  return result


def compare(base: Mapping[str, Any], new: Mapping[str, Any], *,
            bins: Sequence[float] = metrics.DEFAULT_ACC_EDGES) -> dict:
  """Problem-by-problem comparison of two ``evaluate`` results (or eval json records) of the same
  problems: ``base`` (e.g. the base checkpoint) against ``new`` (the RL policy).

  ``sampled`` (when both sampled): ``metrics.per_problem_change`` of the per-problem sampled
  accuracies c / n (wins / losses / ties, mean delta and its standard error) and
  ``winner_take_all``, the split by base accuracy; ``greedy`` (when both ran greedy): the same
  change of the 0 / 1 greedy verdicts. Raises ValueError when the problems differ.
  """
  pb, pn = per_problem_record(base, "base"), per_problem_record(new, "new")
  check_same_problems(pb["problem_ids"], pn["problem_ids"])
  out: dict[str, Any] = {"num_problems": len(pb["problem_ids"])}
  if "correct_counts" in pb and "correct_counts" in pn:
    change = metrics.per_problem_change(_count_matrix(pb), _count_matrix(pn))
    out["sampled"] = dict(_change_summary(change), n_base=int(pb["num_samples"]),
                          n_new=int(pn["num_samples"]))
    out["winner_take_all"] = metrics.winner_take_all(change["base_acc"], change["delta"],
                                                     bins=bins)
  if "greedy_correct" in pb and "greedy_correct" in pn:
    change = metrics.per_problem_change(np.asarray(pb["greedy_correct"], bool)[:, None],
                                        np.asarray(pn["greedy_correct"], bool)[:, None])
    out["greedy"] = _change_summary(change)
  if len(out) == 1:
    raise ValueError("nothing to compare: the two evaluations share neither sampled "
                     "(num_samples > 0) nor greedy per-problem results")
  return out


def check_same_problems(base_ids: Sequence[str], new_ids: Sequence[str]) -> None:
  """Raises ValueError naming the first difference unless the two id lists are equal."""
  base_ids, new_ids = list(base_ids), list(new_ids)
  if base_ids == new_ids:
    return
  if len(base_ids) != len(new_ids):
    why = f"the base has {len(base_ids)} problems, the new evaluation {len(new_ids)}"
  else:
    i = next(j for j, (a, b) in enumerate(zip(base_ids, new_ids)) if a != b)
    why = f"problem {i} differs (id {base_ids[i]} vs {new_ids[i]})"
  raise ValueError(f"the two evaluations are not of the same problems: {why}; evaluate both "
                   "with the same held-out set (config.eval, --size)")


def per_problem_record(record: Mapping[str, Any], name: str = "base") -> Mapping[str, Any]:
  """``record["per_problem"]``, or a ValueError saying the record predates per-problem results."""
  pp = record.get("per_problem")
  if not isinstance(pp, Mapping) or "problem_ids" not in pp:
    raise ValueError(f"the {name} evaluation has no per-problem results (per_problem.problem_ids);"
                     " it was written by an older evaluator: evaluate that checkpoint again")
  return pp


def _count_matrix(pp: Mapping[str, Any]) -> np.ndarray:
  """[P, n] bool with the first c_p entries of row p true: the per-problem accuracies, which is all
  ``per_problem_change`` reads, from the counts stored in the eval json."""
  counts = np.asarray(pp["correct_counts"], np.int64)
  return np.arange(int(pp["num_samples"]))[None, :] < counts[:, None]


def _change_summary(change: Mapping[str, Any]) -> dict:
  se = change["mean_delta_se"]
  return {"base_mean_acc": float(np.mean(change["base_acc"])),
          "new_mean_acc": float(np.mean(change["new_acc"])),
          "wins": change["wins"], "losses": change["losses"], "ties": change["ties"],
          "mean_delta": change["mean_delta"], "mean_delta_se": None if np.isnan(se) else se}
