"""``self_judge``: the policy scores its own responses through a judging prompt (SSR-Zero).

SSR-Zero (arXiv 2505.16637; docs/papers.md 2.2): the policy writes G responses to a question;
for each, the same policy is prompted, without a reference answer, to rate the response on a
0-100 scale, and the rating (scaled to [0, 1]) is the GRPO reward. Here:

    judge prompt  = ``judge_template`` filled with the question and the response (through the
                    run's prompt template, so a chat model sees its chat format),
    score         = the last number of each of ``judge_samples`` judge outputs, clipped to
                    [0, ``score_max``] and divided by it; an output with no number scores 0 and
                    is counted (``judge_unparsed_frac``),
    reward_i      = mean score of response i  (+ the config's reward terms, if any: SSR-X adds an
                    external metric, COMET in the paper, this way).

Only the responses are trained; the judge samples are not (as in the paper). The judge is the
current policy at this step. Logged: ``judge_score`` (mean), ``judge_unparsed_frac`` and, when
correctness is configured, ``judge_auroc`` (do higher self-scores go to correct responses?).
"""
from __future__ import annotations

import re
from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode
from rlvr_jax.eval import metrics as eval_metrics

DEFAULT_TEMPLATE = ("Score the following response to the question on a continuous scale from 0 to "
                    "100, where 0 means wrong or irrelevant and 100 means perfect.\n"
                    "Question: {question}\nResponse: {response}\nScore:")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def parse_score(text: str, score_max: float = 100.0) -> float | None:
  """The last number of ``text`` clipped to [0, score_max] and scaled to [0, 1]; None if none."""
  found = _NUMBER.findall(text or "")
  if not found:
    return None
  return float(min(max(float(found[-1]), 0.0), float(score_max)) / float(score_max))


@register_episode("self_judge")
def self_judge(ctx: EpisodeContext, examples: Sequence[Mapping], prompts: Sequence[Sequence[int]],
               counts: Sequence[int] | None = None, *, judge_template: str = DEFAULT_TEMPLATE,
               judge_samples: int = 1, judge_max_new_tokens: int | None = None,
               judge_temperature: float | None = None, score_max: float = 100.0,
               judge_weight: float = 1.0) -> RolloutRecord:
  """See the module docstring."""
  if "{response}" not in judge_template:
    raise ValueError("self_judge judge_template must contain '{response}' (and usually "
                     f"'{{question}}'); got {judge_template!r}")
  if int(judge_samples) < 1 or float(score_max) <= 0:
    raise ValueError(f"self_judge: judge_samples={judge_samples} must be >= 1 and "
                     f"score_max={score_max} > 0")
  s = ctx.sample(prompts, counts=counts)
  texts = ctx.decode(s.tokens, s.lengths)
  rows = [examples[p] for p in s.prompt_index]
  judge_prompts = [ctx.prompt_fn(dict(ex, question=judge_template.format(
      question=ex.get("question", ""), response=text))) for ex, text in zip(rows, texts)]
  j = ctx.sample(judge_prompts, num_samples=int(judge_samples),
                 max_new_tokens=judge_max_new_tokens, temperature=judge_temperature)
  parsed = [parse_score(t, score_max) for t in ctx.decode(j.tokens, j.lengths)]
  self_scores = np.zeros(len(rows), np.float32)
  for i in range(len(rows)):
    vals = [v if v is not None else 0.0 for v, p in zip(parsed, j.prompt_index) if p == i]
    self_scores[i] = float(np.mean(vals)) if vals else 0.0
  record = RolloutRecord(
      prompts=[prompts[p] for p in s.prompt_index], completions=s.tokens, lengths=s.lengths,
      group_ids=s.prompt_index, rewards=np.zeros(len(rows), np.float32),
      behaviour_logp=s.logprobs, finish=s.finish, examples=rows)
  scores = ctx.score(texts, rows, group_ids=s.prompt_index, lengths=s.lengths, record=record)
  rewards = float(judge_weight) * self_scores + scores.rewards
  ctx.log("judge_score", float(self_scores.mean()) if len(rows) else 0.0)
  ctx.log("judge_unparsed_frac", float(np.mean([v is None for v in parsed])) if parsed else 0.0)
  correct = np.asarray(scores.correct, bool)
  if correct.any() and not correct.all():
    ctx.log("judge_auroc", float(eval_metrics.auroc(self_scores, correct)))
  return record.replace(rewards=rewards.astype(np.float32), correct=correct,
                        token_rewards=scores.token_rewards)
