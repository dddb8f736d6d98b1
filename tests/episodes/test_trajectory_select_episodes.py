"""TraPO's trajectory selection (episodes/selection.py): the similarity by hand, the warm-up, the
top-k / threshold rule (a planted flip of the top-k direction fails), the database update, and
the labelled split / RL pool sources."""
from __future__ import annotations

import math

import numpy as np
import pytest

from rlvr_jax.data import sources
from rlvr_jax.episodes import selection
from rlvr_jax.episodes.record import RolloutRecord


def test_trajectory_similarity_by_hand():
  # Database (labelled, both rising): z(0, .5, 1) = (-1, 0, 1); z(0, 0, 1) = (-1, -1, 2)/sqrt(3).
  db = np.array([[0.0, 0.5, 1.0], [0.0, 0.0, 1.0]])
  queries = np.array([[0.2, 0.4, 0.6],    # z = (-1, 0, 1): cos 1 and 3/sqrt(12) = 0.866
                      [0.9, 0.5, 0.1],    # the mirror image: -1 and -0.866
                      [0.5, 0.5, 0.5]])   # constant: z = 0, cosine 0
  half = 3 / math.sqrt(12)
  np.testing.assert_allclose(selection.trajectory_similarity(queries, db),
                             [(1 + half) / 2, -(1 + half) / 2, 0.0], atol=1e-6)
  np.testing.assert_allclose(selection.trajectory_similarity(queries, db, "max"),
                             [1.0, -half, 0.0], atol=1e-6)
  with pytest.raises(ValueError, match="aggregate='median'"):
    selection.trajectory_similarity(queries, db, "median")


# Pass rates per visit (steps 1-3) of two labelled and four unlabelled prompts.
RATES = {"L1": (True, [0.0, 0.5, 1.0]), "L2": (True, [0.0, 0.0, 1.0]),
         "U1": (False, [0.2, 0.4, 0.6]), "U2": (False, [0.9, 0.5, 0.1]),
         "U3": (False, [0.5, 0.5, 0.5]), "U4": (False, [0.1, 0.1, 0.7])}


def _step_record(step: int, right=("U1",)) -> RolloutRecord:
  rows, groups, rewards, correct = [], [], [], []
  for g, (name, (labelled, rates)) in enumerate(RATES.items()):
    for _ in range(2):  # two samples per group, both with the visit's pass rate as reward
      rows.append({"id": name, "question": name, "answer": "1", "labelled": labelled})
      groups.append(g)
      rewards.append(rates[step])
      correct.append(name in right)  # the pseudo-label of U1 is right, of the others wrong
  n = len(rows)
  return RolloutRecord(prompts=[[1]] * n, completions=np.ones((n, 2), np.int32),
                       lengths=np.full(n, 2), group_ids=groups, rewards=rewards,
                       correct=correct, examples=rows)


def _run(**options):
  state, out = {}, []
  for step in range(3):
    ctx = selection.BuilderContext(rng=np.random.default_rng(0), state=state, step=step)
    rec = selection.trajectory_select(_step_record(step), ctx=ctx, **options)
    out.append(({rec.examples[i]["id"] for i in np.flatnonzero(rec.valid)}, ctx.stats))
  return state, out


def test_warmup_trains_only_labelled_then_selects_by_similarity():
  # U1 and U4 score (1 + 0.866) / 2 = 0.933 against the rising database, U2 -0.933, U3 0.
  state, out = _run(warmup=3, topk=0.25, threshold=0.9, update_db=True)
  assert out[0][0] == out[1][0] == {"L1", "L2"}  # warm-up: database shorter than 3 visits
  assert out[0][1]["warmup"] == 1.0 and out[2][1]["warmup"] == 0.0
  assert out[2][0] == {"L1", "L2", "U1", "U4"}  # threshold 0.9 keeps both rising ones
  assert out[2][1]["selected_frac"] == 0.5
  assert out[2][1]["selected_label_accuracy"] == 0.5  # U1 right, U4 wrong
  assert out[2][1]["rejected_label_accuracy"] == 0.0
  assert state["label_traj"]["L1"] == [0.0, 0.5, 1.0]
  assert set(state["db_unlabelled"]) == {"U1", "U4"}  # update_db: selected ones join the database


def test_topk_keeps_the_most_similar_not_the_least():
  # No threshold: the top 25% of 4 unlabelled groups is one group, a rising one (never U2).
  _, out = _run(warmup=3, topk=0.25, threshold=2.0)
  picked = out[2][0] - {"L1", "L2"}
  assert len(picked) == 1 and picked <= {"U1", "U4"}
  _, out = _run(warmup=3, topk=0.0, threshold=2.0)  # neither rule: only labelled groups train
  assert out[2][0] == {"L1", "L2"}


def test_trajectory_select_bad_input():
  ctx = selection.BuilderContext(rng=np.random.default_rng(0), state={}, step=0)
  rec = _step_record(0)
  with pytest.raises(ValueError, match="topk=1.5"):
    selection.trajectory_select(rec, ctx=ctx, topk=1.5)
  unflagged = rec.replace(examples=[{k: v for k, v in ex.items() if k != "labelled"}
                                    for ex in rec.examples])
  with pytest.raises(ValueError, match="labelled_fraction"):
    selection.trajectory_select(unflagged, ctx=ctx)


def test_labelled_split_and_rl_pool_sources():
  base = sources.ListSource([{"question": str(i), "answer": str(i), "metadata": {}}
                             for i in range(50)], "toy")
  split = sources.LabelledSplitSource(base, 0.1, seed=3)
  flags = [split[i]["labelled"] for i in range(len(split))]
  assert sum(flags) == 5 == split.num_labelled
  again = sources.LabelledSplitSource(base, 0.1, seed=3)
  assert flags == [again[i]["labelled"] for i in range(50)]  # fixed by the seed
  assert split[7]["answer"] == "7"  # the gold stays for diagnostics
  with pytest.raises(ValueError, match="labelled_fraction=1.5"):
    sources.LabelledSplitSource(base, 1.5)
  pool = sources.SubsetSource(base, 8)
  assert len(pool) == 8 and pool[7]["question"] == "7"
  with pytest.raises(IndexError):
    pool[8]  # pylint: disable=pointless-statement
  with pytest.raises(ValueError, match="rl_size=51"):
    sources.SubsetSource(base, 51)


def test_trapo_pieces_without_labelled_rows_are_refused_at_config_time():
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel
  from tests.training import rl_loop_helpers as helpers  # pylint: disable=import-outside-toplevel
  cfg = helpers.get_config("trapo", "cpu")
  loop.check_semi_supervised(cfg)  # labelled_fraction set: fine
  cfg.data.labelled_fraction = None
  with pytest.raises(ValueError, match=r"reward term 'trapo' and batch builder 'trajectory_select'"):
    loop.check_semi_supervised(cfg)
