"""Task sources: reasoning-gym parity, mixtures, JSONL/Parquet (GSM8K, MATH), TFDS, bad rows."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import reasoning_gym
from absl import logging as absl_logging

from rlvr_jax.data import rows as rows_lib
from rlvr_jax.data import sources

RG = {"source": "reasoning_gym", "name": "chain_sum", "size": 40, "seed": 7,
      "kwargs": {"min_terms": 2, "max_terms": 3}}


def _write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(row if isinstance(row, str) else json.dumps(row))
            f.write("\n")
    return str(path)


def test_reasoning_gym_source_matches_create_dataset():
    src = sources.make_source(RG)
    oracle = reasoning_gym.create_dataset("chain_sum", size=40, seed=7, min_terms=2, max_terms=3)
    assert len(src) == 40
    for i in (0, 17, 39):
        ex = src[i]
        assert ex["question"] == oracle[i]["question"]
        assert ex["answer"] == oracle[i]["answer"]
        assert ex["metadata"] == oracle[i]["metadata"]
        assert ex["task"] == "chain_sum" and ex["id"] == f"chain_sum:7:{i}"
        # The verifier can score with the dataset's own scorer from the example alone.
        assert oracle.score_answer(ex["answer"], ex) == 1.0
    with pytest.raises(IndexError):
        src[40]


def test_reasoning_gym_none_answer_becomes_empty_string():
    src = sources.make_source({"source": "reasoning_gym", "name": "rush_hour", "size": 2})
    assert src[0]["answer"] == "" and isinstance(src[0]["question"], str)


@pytest.mark.parametrize("config, match", [
    ({"source": "reasoning_gym", "name": "no_such_task", "size": 3}, "no_such_task"),
    ({"source": "reasoning_gym", "name": "chain_sum", "size": 0}, "size"),
    ({"source": "reasoning_gym", "name": "chain_sum", "size": 3, "kwargs": {"bogus": 1}}, "bogus"),
    ({"source": "reasoning_gym", "name": "chain_sum", "size": 3, "sed": 1}, "sed"),
    ({"source": "reasoning_gym", "size": 3}, "name"),
    ({"source": "nope"}, "nope"),
    ({"name": "chain_sum"}, "'source'"),
])
def test_make_source_rejects_bad_config(config, match):
    with pytest.raises(ValueError, match=match):
        sources.make_source(config)


def test_make_source_accepts_configdict():
    import ml_collections  # pylint: disable=import-outside-toplevel

    src = sources.make_source(ml_collections.ConfigDict(RG))
    assert src[3]["question"] == sources.make_source(RG)[3]["question"]


def test_mixture_counts_order_and_determinism():
    a = {"source": "reasoning_gym", "name": "chain_sum", "size": 30, "seed": 1}
    b = {"source": "reasoning_gym", "name": "basic_arithmetic", "size": 30, "seed": 2}
    config = {"source": "mixture", "sources": [a, b], "weights": [3, 1], "seed": 5}
    mix = sources.make_source(config)
    # Default size: largest without wrapping = min(30 / 0.75, 30 / 0.25) = 40.
    assert len(mix) == 40 and list(mix.counts) == [30, 10]
    items = [mix[i] for i in range(len(mix))]
    tasks = [ex["task"] for ex in items]
    assert tasks.count("chain_sum") == 30 and tasks.count("basic_arithmetic") == 10
    # Each component is read in order, without repeats.
    src_a = sources.make_source(a)
    assert [ex["question"] for ex in items if ex["task"] == "chain_sum"] == \
        [src_a[i]["question"] for i in range(30)]
    again = sources.make_source(config)
    assert [again[i]["id"] for i in range(40)] == [ex["id"] for ex in items]
    other_seed = sources.make_source(dict(config, seed=6))
    assert [other_seed[i]["id"] for i in range(40)] != [ex["id"] for ex in items]
    # Explicit size: largest-remainder rounding, wrap-around when a share exceeds a component.
    big = sources.make_source(dict(config, size=101))
    assert list(big.counts) == [76, 25] and len(big) == 101
    with pytest.raises(ValueError, match=r"weights\[1\]"):
        sources.make_source(dict(config, weights=[1, 0]))
    with pytest.raises(ValueError, match="2 weights for 1 sources"):
        sources.make_source({"source": "mixture", "sources": [a], "weights": [1, 2]})


def test_jsonl_gsm8k_format_and_bad_rows(tmp_path, monkeypatch):
    path = _write_jsonl(tmp_path / "gsm8k.jsonl", [
        {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=7\n#### 7"},
        {"question": "Big?", "answer": "so 1,200 in all\n#### 1,200"},
        {"answer": "#### 3"},                                   # line 3: no question
        {"question": 12, "answer": "#### 4"},                   # line 4: non-string question
        "{not json",                                            # line 5
        {"question": "No marker?", "answer": "just text"},      # line 6: plain answer
        "",                                                     # blank lines are not rows
        {"question": "Null answer", "answer": None},            # line 8
    ])
    warnings = []
    monkeypatch.setattr(absl_logging, "warning", lambda msg, *a: warnings.append(msg % a))
    src = sources.make_source({"source": "jsonl", "path": path})
    assert [src[i]["answer"] for i in range(len(src))] == ["7", "1200", "just text"]
    assert src[0]["metadata"]["answer"] == "3+4=7\n#### 7"  # raw solution kept for SFT
    assert src[0]["id"] == f"jsonl {path}:line 1" and src[0]["task"] is None
    assert src.num_skipped == 4
    assert len(warnings) == 1
    assert path in warnings[0] and "skipped 4 of 7 rows" in warnings[0]
    for where in ("line 3", "line 4", "line 5", "line 8"):
        assert where in warnings[0]
    # Forcing the GSM8K format turns the marker-less row into a bad row.
    strict = sources.make_source({"source": "jsonl", "path": path, "answer_format": "gsm8k"})
    assert len(strict) == 2


def test_math_format_boxed_from_solution_and_parquet(tmp_path):
    rows = [
        {"problem": "Half of one?", "solution": "It is $\\boxed{\\frac{1}{2}}$.", "level": "Level 1"},
        {"problem": "Two answers", "solution": "First \\boxed{3}, finally \\boxed{4}"},
        {"problem": "No box", "solution": "The answer is 5."},
        {"problem": "Explicit", "solution": "\\boxed{9}", "answer": "10"},  # answer column wins
        {"problem": "fbox", "solution": "\\fbox{x+1}"},
    ]
    columns = ("problem", "solution", "level", "answer")
    table = pa.Table.from_pylist([{c: r.get(c) for c in columns} for r in rows])
    path = str(tmp_path / "math.parquet")
    pq.write_table(table, path)
    src = sources.make_source({"source": "parquet", "path": path})
    assert [src[i]["answer"] for i in range(len(src))] == ["\\frac{1}{2}", "4", "10", "x+1"]
    assert src[0]["question"] == "Half of one?" and src[0]["metadata"]["level"] == "Level 1"
    assert src.num_skipped == 1
    assert any("row 2" in loc for locs in src.skipped.values() for loc in locs)


@pytest.mark.parametrize("text, expected", [
    ("\\boxed{42}", "42"),
    ("a \\boxed{1} b \\boxed{\\sqrt{2}}", "\\sqrt{2}"),
    ("$\\boxed 7$", "7"),
    ("\\boxed{unclosed", None),
    ("no box", None),
    ("\\boxed{ \\{1,2\\} }", "\\{1,2\\}"),
])
def test_last_boxed(text, expected):
    assert rows_lib.last_boxed(text) == expected


def test_empty_source_raises_naming_the_file(tmp_path):
    path = _write_jsonl(tmp_path / "bad.jsonl", [{"q": "x", "a": "y"}])
    with pytest.raises(ValueError, match="bad.jsonl"):
        sources.make_source({"source": "jsonl", "path": path})
    with pytest.raises(FileNotFoundError, match="missing.jsonl"):
        sources.make_source({"source": "jsonl", "path": str(tmp_path / "missing.jsonl")})


def test_custom_keys_and_glob(tmp_path):
    _write_jsonl(tmp_path / "part-0.jsonl", [{"prompt": "p0", "target": 1}])
    _write_jsonl(tmp_path / "part-1.jsonl", [{"prompt": "p1", "target": 2.5}])
    src = sources.make_source({"source": "jsonl", "path": str(tmp_path / "part-*.jsonl"),
                               "question_key": "prompt", "answer_key": "target"})
    assert [(src[i]["question"], src[i]["answer"]) for i in range(2)] == [("p0", "1"), ("p1", "2.5")]


def test_hash_holdout_split_is_disjoint_and_covering(tmp_path):
    rows = [{"question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(200)]
    path = _write_jsonl(tmp_path / "all.jsonl", rows)
    base = {"source": "jsonl", "path": path, "holdout_fraction": 0.25}
    train = sources.make_source(dict(base, subset="train"))
    held = sources.make_source(dict(base, subset="eval"))
    train_q = {train[i]["question"] for i in range(len(train))}
    held_q = {held[i]["question"] for i in range(len(held))}
    assert not train_q & held_q and len(train_q | held_q) == 200
    expected = sum(rows_lib.hash_fraction(r["question"]) < 0.25 for r in rows)
    assert len(held) == expected and 25 <= expected <= 75


class _TinyQa:  # a TFDS builder is created lazily so importing this module stays cheap
    builder = None


def _tfds_dir(tmp_path_factory):
    import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel

    if _TinyQa.builder is None:
        class RlvrTestTinyQa(tfds.core.GeneratorBasedBuilder):
            """Four GSM8K-style rows in train, two in test."""
            VERSION = tfds.core.Version("1.0.0")
            # No checksum/metadata files beside the code: stops tfds from locating this module
            # (which needs the optional importlib_resources package for package modules).
            code_path = None

            def _info(self):
                return tfds.core.DatasetInfo(builder=self, features=tfds.features.FeaturesDict(
                    {"question": tfds.features.Text(), "answer": tfds.features.Text()}))

            def _split_generators(self, dl_manager):
                del dl_manager
                return {"train": self._generate_examples(0, 4),
                        "test": self._generate_examples(10, 12)}

            def _generate_examples(self, start, stop):
                for i in range(start, stop):
                    yield i, {"question": f"q{i}?", "answer": f"work\n#### {i * 3}"}
        _TinyQa.builder = RlvrTestTinyQa
    data_dir = tmp_path_factory.mktemp("tfds")
    _TinyQa.builder(data_dir=str(data_dir), file_format="array_record").download_and_prepare()
    return str(data_dir)


def test_tfds_source(tmp_path_factory):
    data_dir = _tfds_dir(tmp_path_factory)
    src = sources.make_source({"source": "tfds", "name": "rlvr_test_tiny_qa", "split": "train",
                               "data_dir": data_dir})
    got = sorted((src[i]["question"], src[i]["answer"]) for i in range(len(src)))
    assert got == [(f"q{i}?", str(i * 3)) for i in range(4)]
    test = sources.make_source({"source": "tfds", "name": "rlvr_test_tiny_qa", "split": "test",
                                "builder_dir": f"{data_dir}/rlvr_test_tiny_qa/1.0.0"})
    assert sorted(test[i]["answer"] for i in range(len(test))) == ["30", "33"]
    with pytest.raises(ValueError, match="data_dir"):
        sources.make_source({"source": "tfds", "name": "rlvr_test_tiny_qa"})


def test_list_source_returns_copies():
    src = sources.ListSource([{"question": "q", "answer": "a", "metadata": {"k": 1}, "task": None,
                               "id": "0"}], "mem")
    first = src[0]
    first["metadata"]["k"] = 2
    assert src[0]["metadata"]["k"] == 1
    assert len(src) == 1


def test_judge_pairs_by_hand():
  base = sources.ListSource([
      {"question": "Q: 78 + 45 =", "answer": "123", "metadata": {}, "id": "a"},
      {"question": "Q: 52 - 38 =", "answer": "14", "metadata": {}, "id": "b"},
      {"question": "Q: 12 + 3 =", "answer": "15", "metadata": {}, "id": "c"}], "toy")
  wrong = sources.JudgePairsSource(base, seed=0, correct_frac=0.0, suffix=" score:", high="100",
                                   low="0")
  # careless: 78 + 45 -> 113 (carries forgotten), 52 - 38 -> 26 (smaller digit from the larger);
  # 12 + 3 has no carry, so the slip changes nothing and the candidate is nudged to 15 - 1 = 14.
  assert [wrong[i]["question"] for i in range(3)] == [
      "Q: 78 + 45 = 113 score:", "Q: 52 - 38 = 26 score:", "Q: 12 + 3 = 14 score:"]
  assert all(wrong[i]["answer"] == "0" for i in range(3))
  right = sources.JudgePairsSource(base, seed=0, correct_frac=1.0, suffix=" score:", high="100",
                                   low="0")
  assert right[0]["question"] == "Q: 78 + 45 = 123 score:" and right[0]["answer"] == "100"
  assert right[0]["metadata"]["reference_target"] is True
  with pytest.raises(ValueError, match="correct_frac=2"):
    sources.JudgePairsSource(base, seed=0, correct_frac=2, suffix="", high="1", low="0")
  bad = sources.ListSource([{"question": "what?", "answer": "1", "metadata": {}}], "bad")
  with pytest.raises(ValueError, match="does not end in"):
    sources.JudgePairsSource(bad, seed=0, correct_frac=0.5, suffix="", high="1", low="0")[0]  # pylint: disable=expression-not-assigned


def test_every_teacher_gives_the_reference_for_rows_that_carry_their_target():
  import ml_collections  # pylint: disable=import-outside-toplevel

  from rlvr_jax.training import sft  # pylint: disable=import-outside-toplevel
  cfg = ml_collections.ConfigDict(dict(teacher="careless_arithmetic", target="{answer}",
                                       teacher_options=dict(error_rate=1.0)))
  teach = sft.make_teacher(cfg)
  assert teach({"question": "78 + 45", "answer": "123", "id": "x"}) == "113"  # the slip
  judged = {"question": "78 + 45 = 113 score:", "answer": "0", "id": "y",
            "metadata": {"reference_target": True}}
  assert teach(judged) == "0"  # not parsed as arithmetic, no error
