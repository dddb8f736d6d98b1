"""``rehearsal``: DPH-RL's split of the prompts by the initial policy's pass rate (arXiv 2509.07430;
docs/papers.md 2.4 "DPH-RL").

The first time a prompt is seen, the frozen reference policy pi_0 (the initial checkpoint) answers
it ``rehearsal_samples`` times; its pass rate and those samples are stored in the episode state
(checkpointed), so they are drawn once, as the paper pre-draws them, and never again. Then:

* D_exp (pass rate below ``perfect_threshold``): the policy's G samples are trained with the
  configured advantage (GRPO in the paper, no KL);
* D_pef (pass rate at or above it): the policy's samples are not trained (weight 0); instead the
  stored pi_0 samples enter the batch as role-1 rows with a constant reward (zero advantage), and
  the auxiliary loss ``forward_kl`` with ``roles: [1]`` (config.algo.aux_losses) applies the
  mass-covering penalty D(pi_0 || pi_theta) on them: ``divergence="k1"`` (forward KL, i.e.
  likelihood of pi_0's samples) or ``"js"``. The reference log-probs of those rows are the
  trainer's reference forward (the same pi_0).

Logged: ``pef_frac`` (prompts of the step in D_pef), ``rehearsal_rows`` and ``new_prompts`` (first
visits, which cost the reference samples).
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np

from rlvr_jax.episodes.context import EpisodeContext
from rlvr_jax.episodes.record import RolloutRecord
from rlvr_jax.episodes.registry import register_episode
from rlvr_jax.episodes.selection import example_key
from rlvr_jax.episodes.single_turn import single_turn


@register_episode("rehearsal")
def rehearsal(ctx: EpisodeContext, examples: Sequence[Mapping], prompts: Sequence[Sequence[int]],
              counts: Sequence[int] | None = None, *, rehearsal_samples: int = 4,
              perfect_threshold: float = 1.0) -> RolloutRecord:
  """See the module docstring."""
  if int(rehearsal_samples) < 1 or not 0.0 < float(perfect_threshold) <= 1.0:
    raise ValueError(f"rehearsal: rehearsal_samples={rehearsal_samples} must be >= 1 and "
                     f"perfect_threshold={perfect_threshold} in (0, 1]")
  store = ctx.state.setdefault("rehearsal", {})
  keys = [example_key(ex) for ex in examples]
  new = [q for q, k in enumerate(keys) if k not in store]
  if new:
    ref = ctx.sample([prompts[q] for q in new], num_samples=int(rehearsal_samples),
                     policy="reference")
    texts = ctx.decode(ref.tokens, ref.lengths)
    correct = np.asarray(ctx.correct(texts, [examples[new[p]] for p in ref.prompt_index]), bool)
    for j, q in enumerate(new):
      rows = np.flatnonzero(ref.prompt_index == j)
      store[keys[q]] = {"pass": float(correct[rows].mean()),
                        "samples": [ref.tokens[i, :ref.lengths[i]].tolist() for i in rows]}
  record = single_turn(ctx, examples, prompts, counts)  # group id = prompt index
  pef = np.array([store[k]["pass"] >= float(perfect_threshold) for k in keys])
  parts = [record.replace(valid=~pef[record.group_ids])]
  extra = 0
  for q in np.flatnonzero(pef):
    samples = store[keys[q]]["samples"]
    width = max(max((len(t) for t in samples), default=1), 1)
    tokens = np.zeros((len(samples), width), np.int32)
    for i, t in enumerate(samples):
      tokens[i, :len(t)] = t
    parts.append(RolloutRecord(
        prompts=[prompts[q]] * len(samples), completions=tokens,
        lengths=np.asarray([max(len(t), 1) for t in samples]),
        group_ids=np.full(len(samples), len(prompts) + int(q)),
        rewards=np.ones(len(samples), np.float32), correct=np.ones(len(samples), bool),
        role_ids=np.ones(len(samples), np.int32), examples=[examples[q]] * len(samples)))
    extra += len(samples)
  ctx.log("pef_frac", float(pef.mean()) if len(pef) else 0.0)
  ctx.log("rehearsal_rows", float(extra))
  ctx.log("new_prompts", float(len(new)))
  return RolloutRecord.concat(parts, renumber_groups=False)


rehearsal.needs_reference = True
