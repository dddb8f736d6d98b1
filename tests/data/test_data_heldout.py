"""Held-out sources: derived configs, zero question overlap with training, removal counts."""
import json

import pytest

from rlvr_jax.data import heldout, rows, sources

# 2-term 2-digit chain_sum has ~16k distinct questions: a 1500-item training set collides with
# some held-out items, so de-duplication has work to do.
TRAIN = {"source": "reasoning_gym", "name": "chain_sum", "size": 1500, "seed": 3,
         "kwargs": {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}}


def _questions(src):
    return [rows.normalize_question(src[i]["question"]) for i in range(len(src))]


def test_nearby_seeds_overlap_which_is_why_seeds_are_shifted():
    # docs/environment.md fact the design rests on: item i of seed s is item i-1 of seed s+1.
    a = sources.make_source(dict(TRAIN, size=50))
    b = sources.make_source(dict(TRAIN, size=50, seed=4))
    assert a[1]["question"] == b[0]["question"]


def test_reasoning_gym_heldout_is_disjoint_and_counts_removals():
    train = sources.make_source(TRAIN)
    held = heldout.make_eval_source(TRAIN, size=300, train_source=train)
    train_q = set(_questions(train))
    held_q = _questions(held)
    assert len(held) == 300
    assert not train_q & set(held_q)
    # Oracle for the removal count: scan the shifted-seed dataset by hand.
    shifted = sources.make_source(dict(TRAIN, seed=3 + heldout.SEED_OFFSET, size=1000))
    removed, kept = 0, 0
    for i in range(len(shifted)):
        if kept == 300:
            break
        if rows.normalize_question(shifted[i]["question"]) in train_q:
            removed += 1
        else:
            kept += 1
    assert removed > 0
    assert held.removed_overlap == removed and held.scanned == 300 + removed
    assert held[0]["id"].startswith(f"chain_sum:{3 + heldout.SEED_OFFSET}:")


def test_mixture_heldout_shifts_every_component_seed():
    train = {"source": "mixture", "seed": 1, "weights": [1, 1], "sources": [
        TRAIN, {"source": "reasoning_gym", "name": "basic_arithmetic", "size": 200, "seed": 9}]}
    derived = heldout.derive_eval_config(train, size=40)
    assert derived["seed"] == 1 + heldout.SEED_OFFSET and derived["size"] == 40
    assert [c["seed"] for c in derived["sources"]] == [3 + heldout.SEED_OFFSET,
                                                        9 + heldout.SEED_OFFSET]
    held = heldout.make_eval_source(train, size=40)
    assert len(held) == 40
    assert not set(_questions(sources.make_source(train))) & set(_questions(held))


def test_tiny_task_space_raises_naming_the_sources():
    tiny = dict(TRAIN, size=3000, kwargs={"min_terms": 2, "max_terms": 2, "min_digits": 1,
                                         "max_digits": 1})
    with pytest.raises(ValueError, match="chain_sum.*too small"):
        heldout.make_eval_source(tiny, size=20)


def test_file_heldout_via_hash_split_and_explicit_eval_config(tmp_path):
    path = tmp_path / "qa.jsonl"
    with open(path, "w", encoding="utf-8") as f:
        for i in range(120):
            f.write(json.dumps({"question": f"Q{i % 100}: what is {i % 100}?", "answer": str(i)}))
            f.write("\n")
    train = {"source": "jsonl", "path": str(path), "holdout_fraction": 0.2, "subset": "train"}
    held = heldout.make_eval_source(train)
    assert held.removed_overlap == 0  # the hash split already keeps duplicates on one side
    assert not set(_questions(sources.make_source(train))) & set(_questions(held))
    assert len(held) == sum(1 for i in range(120)
                            if rows.hash_fraction(f"Q{i % 100}: what is {i % 100}?") < 0.2)
    # An explicit eval file that repeats training questions: those are removed and counted.
    whole = {"source": "jsonl", "path": str(path)}
    explicit = heldout.make_eval_source(train, eval_config=whole)
    assert explicit.removed_overlap == 120 - len(held)
    assert len(explicit) == len(held)
    with pytest.raises(ValueError, match="holdout_fraction"):
        heldout.make_eval_source(whole)
