"""DPH-RL's rehearsal episode with a scripted context: pi_0 is sampled once per prompt, solved
prompts train only through their stored pi_0 samples (role 1, zero advantage), the others train
normally."""
from __future__ import annotations

import numpy as np

from rlvr_jax.episodes import rehearsal as rehearsal_lib
from rlvr_jax.episodes.context import Samples, Scores


class ScriptedContext:
  """Prompt q's answer is the token q + 10: the reference policy always answers prompt 0 right and
  prompt 1 wrong; the current policy answers both wrong."""

  def __init__(self):
    self.state, self.stats, self.calls = {}, {}, []

  def sample(self, prompts, *, counts=None, num_samples=2, policy="current"):
    self.calls.append((policy, len(prompts)))
    rows = [(q, (p[0] + 10) if (policy == "reference" and p[0] == 0) else 99)
            for q, p in enumerate(prompts) for _ in range(num_samples)]
    n = len(rows)
    return Samples(tokens=np.array([[t, 2] for _, t in rows], np.int32),
                   lengths=np.full(n, 2, np.int32), logprobs=np.zeros((n, 2), np.float32),
                   finish=np.zeros(n, np.int8), prompt_index=np.array([q for q, _ in rows], np.int32),
                   prefix_lengths=np.zeros(n, np.int32))

  def decode(self, tokens, lengths):
    del lengths
    return [str(t[0]) for t in tokens]

  def correct(self, texts, examples):
    return np.array([t == ex["answer"] for t, ex in zip(texts, examples)])

  def score(self, texts, rows, **_):
    c = self.correct(texts, rows)
    return Scores(c.astype(np.float32), c, None, {})

  def log(self, key, value):
    self.stats[key] = value


def test_rehearsal_splits_by_the_initial_pass_rate_and_samples_pi0_once():
  ctx = ScriptedContext()
  examples = [{"id": "p0", "question": "q0", "answer": "10"},
              {"id": "p1", "question": "q1", "answer": "11"}]
  prompts = [[0], [1]]
  rec = rehearsal_lib.rehearsal(ctx, examples, prompts, rehearsal_samples=3)
  assert ctx.calls == [("reference", 2), ("current", 2)]
  assert ctx.state["rehearsal"]["p0"]["pass"] == 1.0 and ctx.state["rehearsal"]["p1"]["pass"] == 0.0
  policy = rec.role_ids == 0
  # Prompt 0 (solved by pi_0) is not trained on the policy's samples; prompt 1 is.
  np.testing.assert_array_equal(rec.valid[policy], [False, False, True, True])
  # Three stored pi_0 samples of prompt 0 join as role-1 rows with a constant reward.
  reh = rec.role_ids == 1
  assert reh.sum() == 3 and rec.valid[reh].all() and (rec.rewards[reh] == 1.0).all()
  np.testing.assert_array_equal(rec.completions[reh][:, 0], [10, 10, 10])
  assert ctx.stats == {"pef_frac": 0.5, "rehearsal_rows": 3.0, "new_prompts": 2.0}
  # A second visit reuses the stored samples: no reference call.
  rehearsal_lib.rehearsal(ctx, examples, prompts, rehearsal_samples=3)
  assert ctx.calls[2:] == [("current", 2)]
