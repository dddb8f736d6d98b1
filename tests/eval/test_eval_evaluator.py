"""rlvr_jax.eval.evaluator: per-problem results, the comparison of two evaluations, and the
eval-time token entropy of a tiny Qwen2 against a direct softmax of its logits.

A scripted ``generate_fn`` stands in for the sampler, so the completions (and hence every count)
are known exactly; the entropy forward runs the real model on them.
"""
import json
import types

import jax
import numpy as np
import pytest
from flax import nnx

from rlvr_jax import models
from rlvr_jax.eval import evaluator

EOS, PAD = 1, 0
EXAMPLES = [{"question": "a", "answer": "5"}, {"question": "b", "answer": "7"},
            {"question": "c", "answer": "9"}]
# Prompt token ids per problem (any lengths; they are left padded together).
PROMPTS = {"a": [2, 3, 4], "b": [5, 6], "c": [7, 8, 9, 10, 11]}


class _Tokenizer:
  """Tokens 10..19 decode to the digits 0..9, tokens >= 20 to "x", so [20, 15, EOS] reads "x5"."""
  eos_ids = (EOS,)
  pad_id = PAD

  def decode(self, ids, skip_special_tokens=True):
    del skip_special_tokens
    return "".join(str(t - 10) if t < 20 else "x" for t in ids if t > 1)


def _completion(answer_digit: int, right: bool, length: int) -> list[int]:
  """``length`` tokens: filler, then the right answer digit or a wrong one, then EOS (length 1:
  the digit alone)."""
  digit = 10 + (answer_digit if right else (answer_digit + 1) % 10)
  return [digit] if length == 1 else [20 + i for i in range(length - 2)] + [digit, EOS]


# Sampled: problem "a" right on 3 of 4 samples, "b" on 1 of 4, "c" never; greedy right on "a" only.
SAMPLED = {"a": [(True, 2), (True, 5), (False, 3), (True, 1)],
           "b": [(False, 4), (True, 2), (False, 6), (False, 2)],
           "c": [(False, 3), (False, 1), (False, 5), (False, 4)]}
GREEDY = {"a": True, "b": False, "c": False}


def _scripted_generate(model, prompts, *, max_new_tokens, num_samples, temperature, seed, pad_id,
                       eos_ids, top_p=1.0, top_k=0):
  del model, seed, eos_ids, top_p, top_k
  by_prompt = {tuple(v): k for k, v in PROMPTS.items()}
  rows = []
  for prompt in prompts:
    q = by_prompt[tuple(prompt)]
    answer = int(next(ex["answer"] for ex in EXAMPLES if ex["question"] == q))
    if temperature == 0.0:
      rows.append(_completion(answer, GREEDY[q], 2))
    else:
      rows += [_completion(answer, right, n) for right, n in SAMPLED[q][:num_samples]]
  tokens = np.full((len(rows), max_new_tokens), pad_id, np.int32)
  for i, r in enumerate(rows):
    tokens[i, :len(r)] = r
  return types.SimpleNamespace(tokens=tokens, lengths=np.array([len(r) for r in rows], np.int32))


def _evaluate(model=None, **kw):
  return evaluator.evaluate(model, _Tokenizer(), EXAMPLES,
                            prompt_fn=lambda ex: PROMPTS[ex["question"]], max_new_tokens=8,
                            num_samples=4, temperature=0.7, reward="exact_match",
                            generate_fn=_scripted_generate, **kw)


def test_evaluate_writes_every_sample(tmp_path):
  path = tmp_path / "eval_samples.jsonl"
  out = _evaluate(samples_path=str(path))
  rows = [json.loads(line) for line in path.read_text().splitlines()]
  assert not (tmp_path / "eval_samples.jsonl.tmp").exists()
  greedy = [r for r in rows if r["kind"] == "greedy"]
  sampled = [r for r in rows if r["kind"] == "sampled"]
  assert len(greedy) == 3 and len(sampled) == 12
  # Greedy on "a" is [15, EOS], which reads "5"; prompt [2, 3, 4] reads "-8-7-6" (token - 10).
  assert [r["correct"] for r in greedy] == [True, False, False]
  assert greedy[0] == {"problem_id": evaluator.problem_id(EXAMPLES[0]), "kind": "greedy",
                       "sample": 0, "prompt": "-8-7-6", "gold": "5",
                       "completion": "5", "extracted_answer": "5", "score": 1.0, "correct": True}
  per_problem = [sum(r["correct"] for r in sampled if r["problem_id"] == pid)
                 for pid in out["per_problem"]["problem_ids"]]
  assert per_problem == out["per_problem"]["correct_counts"] == [3, 1, 0]
  assert [r["sample"] for r in sampled[:4]] == [0, 1, 2, 3]
  assert sampled[4]["prompt"] == "-5-4"  # problem "b": prompt tokens [5, 6]


def test_evaluate_returns_per_problem_results():
  out = _evaluate()
  pp = out["per_problem"]
  assert pp["correct_counts"] == [3, 1, 0] and pp["num_samples"] == 4
  assert pp["greedy_correct"] == [1, 0, 0]
  assert pp["problem_ids"] == [evaluator.problem_id(ex) for ex in EXAMPLES]
  assert len(set(pp["problem_ids"])) == 3 and all(len(i) == 12 for i in pp["problem_ids"])
  assert out["mean_accuracy"] == pytest.approx(4 / 12)  # (3 + 1 + 0) / 12 samples
  assert "eval_token_entropy" not in out


def test_evaluate_cot_pass_from_a_step_checker():
  # The checker accepts only completions of at most 2 tokens. Right AND short: problem "a"
  # samples (True, 2) and (True, 1) -> c = 2; "b" (True, 2) -> c = 1; "c" none.
  # cot_pass@1 = (2/4 + 1/4 + 0) / 3 = 1/4.
  out = _evaluate(steps_ok_fn=lambda texts, exs: [len(t) <= 1 for t in texts], ks=[1])
  assert out["cot_pass@1"] == pytest.approx(0.25)


def test_problem_id_is_stable_and_content_based():
  assert evaluator.problem_id({"question": "a", "answer": "5", "id": 3}) == \
      evaluator.problem_id({"answer": "5", "question": "a", "metadata": {"x": 1}})
  assert evaluator.problem_id({"question": "a", "answer": "5"}) != \
      evaluator.problem_id({"question": "a", "answer": "6"})
  assert evaluator.problem_id({"prompt": "x"}) == evaluator.problem_id({"prompt": "x"})


def _record(counts, n, greedy, ids=("p0", "p1", "p2", "p3")):
  return {"per_problem": {"problem_ids": list(ids), "num_samples": n, "correct_counts": counts,
                          "greedy_correct": greedy}}


def test_compare_hand_case():
  base = _record([0, 2, 4, 1], 4, [0, 1, 1, 0])  # accuracies 0, 0.5, 1, 0.25
  new = _record([4, 4, 7, 2], 8, [1, 1, 0, 0])   # accuracies 0.5, 0.5, 0.875, 0.25
  out = evaluator.compare(base, new)
  s = out["sampled"]
  # deltas +0.5, 0, -0.125, 0 -> 1 win, 1 loss, 2 ties, mean 0.375 / 4 = 0.09375.
  assert (s["wins"], s["losses"], s["ties"]) == (1, 1, 2)
  assert s["mean_delta"] == pytest.approx(0.09375)
  assert s["base_mean_acc"] == pytest.approx(1.75 / 4)  # (0 + 0.5 + 1 + 0.25) / 4
  assert s["new_mean_acc"] == pytest.approx(2.125 / 4)  # (0.5 + 0.5 + 0.875 + 0.25) / 4
  assert (s["n_base"], s["n_new"]) == (4, 8)
  rows = {r["bin"]: r for r in out["winner_take_all"]}
  assert rows["=0"]["count"] == 1 and rows["=0"]["mean_delta"] == 0.5
  assert rows["=1"]["count"] == 1 and rows["=1"]["mean_delta"] == -0.125
  # greedy 0/1 verdicts: p0 0 -> 1 (win), p2 1 -> 0 (loss), p1 and p3 unchanged.
  g = out["greedy"]
  assert (g["wins"], g["losses"], g["ties"], g["mean_delta"]) == (1, 1, 2, 0.0)


def test_compare_refuses_different_problems():
  base = _record([0, 2, 4, 1], 4, [0, 1, 1, 0])
  with pytest.raises(ValueError, match="problem 2 differs"):
    evaluator.compare(base, _record([0, 2, 4, 1], 4, [0] * 4, ids=("p0", "p1", "x", "p3")))
  with pytest.raises(ValueError, match="4 problems, the new evaluation 3"):
    evaluator.compare(base, _record([0, 2, 4], 4, [0] * 3, ids=("p0", "p1", "p2")))
  with pytest.raises(ValueError, match="evaluate that checkpoint again"):
    evaluator.compare({"pass@1": 0.5}, base)


def test_eval_token_entropy_matches_a_direct_softmax():
  config = models.ModelConfig.tiny_qwen2(vocab_size=64, hidden_size=32, intermediate_size=64,
                                         num_layers=2, num_heads=4, num_kv_heads=2, head_dim=8,
                                         init_std=0.3)
  model = models.Transformer(config, rngs=nnx.Rngs(0))
  temperature = 0.7
  # batch_size 8 with 4 samples: 2 prompts per forward, so the last forward holds 1 real prompt.
  out = _evaluate(model, entropy=True, batch_size=8)
  seqs = _scripted_generate(None, list(PROMPTS.values()), max_new_tokens=8, num_samples=4,
                            temperature=temperature, seed=0, pad_id=PAD, eos_ids=(EOS,))
  # The oracle: each prompt + completion unpadded at the left (positions 0..), right padded, which
  # a causal model ignores, in one forward of the logits.
  rows = [(list(PROMPTS.values())[r // 4], seqs.tokens[r, :seqs.lengths[r]].tolist())
          for r in range(12)]
  width = max(len(p) + len(c) for p, c in rows)
  tokens = np.array([p + c + [PAD] * (width - len(p) - len(c)) for p, c in rows], np.int32)
  logits = np.asarray(model(jax.numpy.asarray(tokens)), np.float64)  # [12, width, V]
  total, count = 0.0, 0
  for r, (prompt, completion) in enumerate(rows):
    # Position j predicts token j + 1: the completion's tokens come from positions
    # len(prompt) - 1 .. len(prompt) + len(completion) - 2.
    z = logits[r, len(prompt) - 1:len(prompt) + len(completion) - 1] / temperature  # [L, V]
    p = np.exp(z - z.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    total += float(-(p * np.log(p)).sum())
    count += len(completion)
  assert count == sum(n for rows in SAMPLED.values() for _, n in rows)
  assert out["eval_token_entropy"] == pytest.approx(total / count, rel=1e-4)
  assert 0.1 < out["eval_token_entropy"] < np.log(64)  # not a uniform softmax
