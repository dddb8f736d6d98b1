"""``collective_vote``: RLCCF's collective-consistency reward (Wisdom of the Crowd;
docs/papers.md 2.2).

RLCCF trains K different models together; each question's pseudo-label is a vote over the
collective's answers in which model k's votes weigh its self-consistency,

    freq_k(a) = share of model k's samples answering a,   SC_k = max_a freq_k(a),
    y* = argmax_a  sum_k SC_k * freq_k(a),                r = 1[ans(y) = y*].

This trainer optimises one policy, so the collective here is the trained policy plus a frozen
peer: the reference policy (the initial checkpoint). Both sample each question; only the policy's
samples are trained, rewarded against the collective label. (RLCCF's joint training of several
distinct models is not reproduced: the peer does not learn.)

Logged: ``label_accuracy`` (y* against the gold, when rows have one; diagnostics only),
``policy_label_accuracy`` / ``peer_label_accuracy`` (each member's own majority against the gold),
``self_consistency_policy`` / ``self_consistency_peer`` (mean SC_k), ``reward_accuracy`` (reward 1
exactly when the sample is correct) and ``no_label_frac`` (questions where no sample parsed).
"""
from __future__ import annotations

import collections
from typing import Mapping, Sequence

import numpy as np

from rlvr_jax import rewards as rewards_lib
from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode


def collective_label(members: Sequence[Sequence[str | None]]) -> tuple[str | None, list[float]]:
  """The self-consistency-weighted vote over the members' answers (None = unparsed, no vote).

  Returns (label, [SC_k]). freq_k counts over all of member k's samples (an unparsed sample
  dilutes its member's votes); ties go to the answer seen first, the members in order.
  """
  scores: dict[str, float] = {}
  consistency = []
  for answers in members:
    counts = collections.Counter(a for a in answers if a is not None)
    n = max(len(answers), 1)
    sc = max(counts.values(), default=0) / n
    consistency.append(sc)
    for a in dict.fromkeys(a for a in answers if a is not None):
      scores[a] = scores.get(a, 0.0) + sc * counts[a] / n
  if not scores:
    return None, consistency
  best = max(scores.values())
  return next(a for a, v in scores.items() if v == best), consistency


@register_episode("collective_vote")
def collective_vote(ctx: EpisodeContext, examples: Sequence[Mapping],
                    prompts: Sequence[Sequence[int]], counts: Sequence[int] | None = None, *,
                    peer_samples: int | None = None, extract: str = "auto") -> RolloutRecord:
  """See the module docstring. ``peer_samples``: the reference policy's samples per question
  (default: the config's G)."""
  s = ctx.sample(prompts, counts=counts)
  peer = ctx.sample(prompts, num_samples=peer_samples, policy="reference")
  parse = lambda texts: [rewards_lib.normalize_answer(rewards_lib.extract_answer(t, extract))
                         for t in texts]
  texts = ctx.decode(s.tokens, s.lengths)
  mine = parse(texts)
  theirs = parse(ctx.decode(peer.tokens, peer.lengths))
  rows = [examples[p] for p in s.prompt_index]
  rewards = np.zeros(len(rows), np.float32)
  hits, own_hits, peer_hits, graded, no_label, sc_mine, sc_peer = 0, 0, 0, 0, 0, [], []
  for q in range(len(prompts)):
    idx = np.flatnonzero(s.prompt_index == q)
    a_mine = [mine[i] for i in idx]
    a_peer = [theirs[i] for i in np.flatnonzero(peer.prompt_index == q)]
    label, (c_mine, c_peer) = collective_label([a_mine, a_peer])
    sc_mine.append(c_mine)
    sc_peer.append(c_peer)
    no_label += label is None
    if label is not None:
      rewards[idx] = [a == label for a in a_mine]
    gold = rewards_lib.normalize_answer(str(examples[q].get("answer") or ""))
    if gold:  # diagnostics only: the reward above never reads it
      graded += 1
      hits += label == gold
      own_hits += rewards_lib.majority_answers(a_mine)[0] == gold
      peer_hits += rewards_lib.majority_answers(a_peer)[0] == gold
  correct = np.asarray(ctx.correct(texts, rows), bool)
  if graded:
    ctx.log("label_accuracy", hits / graded)
    ctx.log("policy_label_accuracy", own_hits / graded)
    ctx.log("peer_label_accuracy", peer_hits / graded)
  ctx.log("self_consistency_policy", float(np.mean(sc_mine)))
  ctx.log("self_consistency_peer", float(np.mean(sc_peer)))
  ctx.log("no_label_frac", no_label / max(len(prompts), 1))
  if ctx.grades_training:
    ctx.log("reward_accuracy", float(np.mean((rewards > 0.5) == correct)))
  return RolloutRecord(
      prompts=[prompts[p] for p in s.prompt_index], completions=s.tokens, lengths=s.lengths,
      group_ids=s.prompt_index, rewards=rewards, behaviour_logp=s.logprobs, finish=s.finish,
      correct=correct, examples=rows)


collective_vote.needs_reference = True
