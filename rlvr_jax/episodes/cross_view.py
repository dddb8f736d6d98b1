"""``cross_view``: Co-Reward's cross-view voting (Co-rewarding-I, arXiv 2508.00410;
docs/papers.md 2.2).

Every question x has a second view x' with the same answer (a rephrasing). G samples are drawn for
each view; each view's pseudo-label is the majority answer of the *other* view's samples,

    y*(x) = mode(ans(y'_1 .. y'_G)),   y*(x') = mode(ans(y_1 .. y_G)),
    r(y_i) = 1[ans(y_i) = y*(x)],      r(y'_i) = 1[ans(y'_i) = y*(x')],

(0 when the other view has no parseable answer). Both views are trained: view-1 rows of prompt p
form group p and view-2 rows group P + p (role id 1), so group-baseline advantages (GRPO) stay
inside each view, as in the paper. No reward term and no gold answer is used for the reward; the
gold, when the rows have one, only feeds the logged diagnostics: ``label_accuracy_view1/2`` (the
pseudo-labels against the gold; ``label_accuracy`` over both), ``reward_accuracy`` (reward 1 exactly
when the sample is correct, both views), ``cross_view_agreement`` (y*(x) = y*(x')) and
``accuracy_view1/2``.

Second views come from ``REPHRASERS`` by name: ``field`` (a column of the data rows holding the
rewritten question, e.g. the paper's offline rewrites; a row without it is an error naming the
field) and ``commute`` (procedural ``a + b`` -> ``b + a`` and ``a - b`` -> ``-b + a``, keeping any
text before the expression).
"""
from __future__ import annotations

import re
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from rlvr_jax import rewards as rewards_lib
from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode

Rephraser = Callable[..., str]
REPHRASERS: dict[str, Rephraser] = {}


def register_rephraser(name: str):
  def wrap(fn: Rephraser) -> Rephraser:
    if name in REPHRASERS:
      raise ValueError(f"rephraser {name!r} is already registered")
    REPHRASERS[name] = fn
    return fn
  return wrap


@register_rephraser("field")
def field_view(example: Mapping[str, Any], *, field: str = "question_rewrite") -> str:
  """The second view stored with the data: ``example[field]``."""
  value = example.get(field)
  if not value:
    raise ValueError(f"cross_view: example {example.get('id')!r} has no second view in field "
                     f"{field!r} (fields: {sorted(example)}); add the rewritten questions or pick "
                     f"another rephraser ({sorted(REPHRASERS)})")
  return str(value)


_TAIL = re.compile(r"^(.*?)(\d+)\s*([+-])\s*(\d+)(\s*=?\s*)$", re.S)


@register_rephraser("commute")
def commute_view(example: Mapping[str, Any]) -> str:
  """``a + b`` -> ``b + a``, ``a - b`` -> ``-b + a`` at the end of the question (same answer)."""
  question = str(example["question"])
  m = _TAIL.match(question)
  if m is None:
    raise ValueError(f"cross_view commute: question {question!r} of example {example.get('id')!r} "
                     "does not end in '<int> + <int>' or '<int> - <int>'")
  head, a, op, b, tail = m.groups()
  return f"{head}{b} + {a}{tail}" if op == "+" else f"{head}-{b} + {a}{tail}"


def cross_votes(answers1: Sequence[Sequence[str | None]], answers2: Sequence[Sequence[str | None]]
                ) -> tuple[list[str | None], list[str | None], np.ndarray, np.ndarray]:
  """Per prompt, each view's pseudo-label from the other view's answers, and the rewards.

  Returns (labels1, labels2, rewards1 [P, G1], rewards2 [P, G2]); a None label rewards nothing.
  """
  labels1 = [rewards_lib.majority_answers(a2)[0] for a2 in answers2]
  labels2 = [rewards_lib.majority_answers(a1)[0] for a1 in answers1]
  reward = lambda answers, labels: np.array(
      [[float(lab is not None and a == lab) for a in row] for row, lab in zip(answers, labels)],
      np.float32)
  return labels1, labels2, reward(answers1, labels1), reward(answers2, labels2)


@register_episode("cross_view")
def cross_view(ctx: EpisodeContext, examples: Sequence[Mapping], prompts: Sequence[Sequence[int]],
               counts: Sequence[int] | None = None, *, rephraser: str = "field",
               rephraser_options: Mapping[str, Any] | None = None,
               extract: str = "auto") -> RolloutRecord:
  """See the module docstring. ``counts`` must be uniform (every prompt G samples per view)."""
  if rephraser not in REPHRASERS:
    raise ValueError(f"cross_view: rephraser {rephraser!r} is not registered; choose from "
                     f"{sorted(REPHRASERS)}")
  rephrase = REPHRASERS[rephraser]
  views = [dict(ex, question=rephrase(ex, **dict(rephraser_options or {}))) for ex in examples]
  prompts2 = [ctx.prompt_fn(ex) for ex in views]
  if counts is not None and len(set(int(c) for c in counts)) > 1:
    raise ValueError("cross_view needs the same number of samples for every prompt (an "
                     "allocator with ragged counts cannot be combined with it)")
  num = len(prompts)
  records, answers, correct = [], [], []
  for view, (rows_in, view_prompts) in enumerate(((examples, prompts), (views, prompts2))):
    s = ctx.sample(view_prompts, counts=counts)
    texts = ctx.decode(s.tokens, s.lengths)
    rows = [rows_in[p] for p in s.prompt_index]
    parsed = [rewards_lib.normalize_answer(rewards_lib.extract_answer(t, extract)) for t in texts]
    per_prompt = [[a for a, p in zip(parsed, s.prompt_index) if p == q] for q in range(num)]
    answers.append(per_prompt)
    correct.append(ctx.correct(texts, rows))
    records.append(RolloutRecord(
        prompts=[view_prompts[p] for p in s.prompt_index], completions=s.tokens,
        lengths=s.lengths, group_ids=s.prompt_index + view * num,
        rewards=np.zeros(len(rows), np.float32), behaviour_logp=s.logprobs, finish=s.finish,
        role_ids=np.full(len(rows), view, np.int32), examples=rows))
  labels1, labels2, r1, r2 = cross_votes(answers[0], answers[1])
  records = [rec.replace(rewards=r.reshape(-1), correct=np.asarray(c, bool))
             for rec, r, c in zip(records, (r1, r2), correct)]
  golds = [rewards_lib.normalize_answer(str(ex.get("answer") or "")) for ex in examples]
  if all(golds):
    hits1 = [l == g for l, g in zip(labels1, golds)]
    hits2 = [l == g for l, g in zip(labels2, golds)]
    ctx.log("label_accuracy_view1", np.mean(hits1))
    ctx.log("label_accuracy_view2", np.mean(hits2))
    ctx.log("label_accuracy", np.mean(hits1 + hits2))  # the key TTRL's runs log too
  if ctx.grades_training:
    # TTRL's collapse detector: does the cross-view reward agree with the ground truth?
    rewarded = np.concatenate([r1.reshape(-1), r2.reshape(-1)]) > 0.5
    ctx.log("reward_accuracy", np.mean(rewarded == np.concatenate([np.asarray(c, bool)
                                                                   for c in correct])))
  ctx.log("cross_view_agreement", np.mean([l1 is not None and l1 == l2
                                           for l1, l2 in zip(labels1, labels2)]))
  ctx.log("accuracy_view1", records[0].correct.mean())
  ctx.log("accuracy_view2", records[1].correct.mean())
  return RolloutRecord.concat(records, renumber_groups=False)
