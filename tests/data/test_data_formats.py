"""Data formats: TRL / verl message-list prompts, dotted answer keys, save_to_disk directories read
with pyarrow, model ids from the local HF cache, and chat-template kwargs from the config. Every
test writes the small file or directory tree it reads."""
import copy
import json
import os
import pickle

import ml_collections
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from configs import common
from rlvr_jax import models
from rlvr_jax.data import heldout, rows, sources, templates
from rlvr_jax.data.pipeline import make_prompt_iterator
from rlvr_jax.models import hub


def _write_jsonl(path, rows_):
  with open(path, "w", encoding="utf-8") as f:
    for row in rows_:
      f.write(json.dumps(row) + "\n")
  return str(path)


def _user(text):
  return {"role": "user", "content": text}


SYSTEM = {"role": "system", "content": "Reason step by step."}
# Renders roles as tags; the Qwen3 branch: enable_thinking=False pre-fills an empty think block.
THINKING_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>"
    "{% if enable_thinking is defined and enable_thinking is false %}<think></think>{% endif %}"
    "{% endif %}")


@pytest.fixture(scope="module")
def chat_tokenizer():
  return models.char_level("abcdefghijklmnopqrstuvwxyz0123456789 +?.",
                           chat_template=THINKING_TEMPLATE)


# ------------------------------------------------------------------------------------------------
# Message-list prompts (TRL conversational format)
# ------------------------------------------------------------------------------------------------

def test_trl_message_prompts_become_conversations_and_bad_rows_are_counted(tmp_path):
  path = _write_jsonl(tmp_path / "trl.jsonl", [
      {"prompt": [SYSTEM, _user("What is 2+3?")], "answer": "5"},          # line 1
      {"prompt": [_user("What is 7*6?")], "solution": "So \\boxed{42}."},  # line 2
      {"prompt": [], "answer": "1"},                                       # line 3
      {"prompt": [_user("Hi"), {"role": "assistant", "content": "Yo"}], "answer": "1"},  # line 4
      {"prompt": [{"role": "user"}], "answer": "1"},                       # line 5
      {"prompt": ["just text"], "answer": "1"},                            # line 6
      {"prompt": "A plain string prompt?", "answer": "7"},                 # line 7
  ])
  src = sources.make_source({"source": "jsonl", "path": path})
  assert len(src) == 3 and src.num_skipped == 4
  first, second, plain = src[0], src[1], src[2]
  assert isinstance(first["question"], rows.Conversation)
  assert first["question"] == "What is 2+3?" and first["answer"] == "5"
  assert list(first["question"].messages) == [SYSTEM, _user("What is 2+3?")]
  assert second["question"] == "What is 7*6?" and second["answer"] == "42"
  assert plain["question"] == "A plain string prompt?" and not isinstance(plain["question"],
                                                                          rows.Conversation)
  assert "prompt" not in first["metadata"] and first["metadata"]["answer"] == "5"
  reasons = {reason: [loc.rsplit(" ", 2)[-2:] for loc in locs]
             for reason, locs in src.skipped.items()}
  assert reasons == {
      "question column 'prompt' is an empty message list": [["line", "3"]],
      "question column 'prompt': the last message has role 'assistant'; a prompt must end with a "
      "user turn": [["line", "4"]],
      "question column 'prompt': message 0 needs string 'role' and 'content' (got str, NoneType)":
          [["line", "5"]],
      "question column 'prompt': message 0 is a str, not a {'role', 'content'} object":
          [["line", "6"]],
  }


def test_conversation_survives_copies_and_the_grain_pipeline(tmp_path):
  path = _write_jsonl(tmp_path / "trl.jsonl", [
      {"prompt": [SYSTEM, _user(f"What is {i}+1?")], "answer": str(i + 1)} for i in range(4)])
  src = sources.make_source({"source": "jsonl", "path": path})
  question = src[0]["question"]
  for copied in (pickle.loads(pickle.dumps(question)), copy.deepcopy(question)):
    assert copied == question and copied.messages == question.messages
  assert json.dumps(question) == json.dumps(str(question))  # logs and sample files see the text
  batch = next(make_prompt_iterator(src, batch_size=4, seed=0))
  assert all(isinstance(ex["question"], rows.Conversation) for ex in batch)
  assert rows.normalize_question(question) == "what is 0+1?"  # overlap checks use the user turn


def test_chat_template_renders_whole_conversation(chat_tokenizer):
  with_system = rows.Conversation([SYSTEM, _user("What is 2+3?")])
  bare = rows.Conversation([_user("What is 2+3?")])
  fn = templates.make_template("chat", tokenizer=chat_tokenizer, system="Config system.",
                               suffix=" Box it.")
  # The row's own system message wins; the config's is used only when the row has none.
  assert fn(with_system) == ("<|system|>Reason step by step.\n<|user|>What is 2+3? Box it.\n"
                             "<|assistant|>")
  assert fn(bare) == "<|system|>Config system.\n<|user|>What is 2+3? Box it.\n<|assistant|>"
  assert bare.messages == (_user("What is 2+3?"),)  # rendering does not edit the example
  multi = rows.Conversation([_user("Hi"), {"role": "assistant", "content": "Hello."},
                             _user("2+2?")])
  assert templates.render_prompt("chat", multi, tokenizer=chat_tokenizer).count("<|user|>") == 2


def test_non_chat_templates_take_a_single_user_turn_and_refuse_more():
  bare = rows.Conversation([_user("What is 2+3?")])
  assert templates.render_prompt("plain", bare, format="Q: {question}") == "Q: What is 2+3?"
  assert templates.render_prompt("r1", bare).endswith("User: What is 2+3?. Assistant:")
  with pytest.raises(ValueError, match=r"conversation with roles \['system', 'user'\]; use "
                                       r"data.template='chat'"):
    templates.render_prompt("r1", rows.Conversation([SYSTEM, _user("What is 2+3?")]))


# ------------------------------------------------------------------------------------------------
# verl Parquet layout and dotted keys
# ------------------------------------------------------------------------------------------------

def _verl_row(i, question, ground_truth):
  return {"data_source": "openai/gsm8k",
          "prompt": [_user(question + " Let's think step by step and output the final answer after "
                                      "\"####\".")],
          "ability": "math",
          "reward_model": {"style": "rule", "ground_truth": ground_truth},
          "extra_info": {"split": "train", "index": i, "question": question,
                         "answer": f"work\n#### {ground_truth}"}}


def test_verl_parquet_is_detected_without_keys(tmp_path):
  table = pa.Table.from_pylist([_verl_row(0, "Tom has 3 and gets 4. How many?", "7"),
                                _verl_row(1, "Half of 10?", "5"),
                                _verl_row(2, "Nothing known?", None)])
  path = str(tmp_path / "train.parquet")
  pq.write_table(table, path)
  src = sources.make_source({"source": "parquet", "path": path})
  assert len(src) == 2
  ex = src[0]
  assert isinstance(ex["question"], rows.Conversation)
  assert ex["question"].startswith("Tom has 3 and gets 4.") and ex["answer"] == "7"
  assert ex["metadata"]["data_source"] == "openai/gsm8k" and ex["metadata"]["ability"] == "math"
  assert ex["metadata"]["extra_info"]["index"] == 0
  assert ex["metadata"]["reward_model"] == {"style": "rule", "ground_truth": "7"}
  assert list(src.skipped) == ["answer column 'reward_model.ground_truth' is null"]
  # Dotted keys reach into the nested columns: the raw question and the GSM8K-style answer.
  nested = sources.make_source({"source": "parquet", "path": path,
                                "question_key": "extra_info.question",
                                "answer_key": "extra_info.answer"})
  assert [nested[i]["question"] for i in range(3)] == [
      "Tom has 3 and gets 4. How many?", "Half of 10?", "Nothing known?"]
  assert [nested[i]["answer"] for i in range(3)] == ["7", "5", "None"]
  assert not isinstance(nested[0]["question"], rows.Conversation)


def test_dotted_keys_missing_and_literal_columns(tmp_path):
  path = _write_jsonl(tmp_path / "dots.jsonl", [
      {"question": "literal?", "a.b": "1", "a": {"b": "2"}},
      {"question": "nested only?", "a": {"b": "3"}},
      {"question": "no such key?", "a": {"c": "4"}},
      {"question": "list answer?", "a": {"b": ["5", "6"]}},
  ])
  src = sources.make_source({"source": "jsonl", "path": path, "answer_key": "a.b"})
  assert [src[i]["answer"] for i in range(len(src))] == ["1", "3"]  # a column named 'a.b' wins
  assert sorted(src.skipped) == ["answer column 'a.b' is a list, not a string or number",
                                 "missing answer column 'a.b'"]


# ------------------------------------------------------------------------------------------------
# datasets.save_to_disk directories, read with pyarrow
# ------------------------------------------------------------------------------------------------

FEATURES = {"question": {"dtype": "string", "_type": "Value"},
            "answer": {"dtype": "string", "_type": "Value"}}


def _save_to_disk(directory, rows_, *, split="train", num_files=1):
  """What datasets' Dataset.save_to_disk writes: Arrow stream shards, state.json,
  dataset_info.json (the features also go to the schema metadata under b'huggingface')."""
  os.makedirs(directory, exist_ok=True)
  info = {"citation": "", "description": "", "features": FEATURES, "homepage": "", "license": ""}
  schema = pa.schema([("question", pa.string()), ("answer", pa.string())],
                     metadata={"huggingface": json.dumps({"info": {"features": FEATURES}})})
  names = [f"data-{k:05d}-of-{num_files:05d}.arrow" for k in range(num_files)]
  per_file = -(-len(rows_) // num_files)
  for k, name in enumerate(names):
    table = pa.Table.from_pylist(rows_[k * per_file:(k + 1) * per_file], schema=schema)
    with pa.OSFile(os.path.join(directory, name), "wb") as sink:
      with pa.ipc.new_stream(sink, schema) as writer:
        writer.write_table(table, max_chunksize=2)
  state = {"_data_files": [{"filename": n} for n in names], "_fingerprint": "9b2f1c0e4d6a7b38",
           "_format_columns": None, "_format_kwargs": {}, "_format_type": None,
           "_output_all_columns": False, "_split": split}
  with open(os.path.join(directory, "state.json"), "w") as f:
    json.dump(state, f, indent=2)
  with open(os.path.join(directory, "dataset_info.json"), "w") as f:
    json.dump(info, f, indent=2)
  return str(directory)


def _gsm8k_rows(n, start=0):
  return [{"question": f"What is {i} + {i}?", "answer": f"{i}+{i}\n#### {2 * i}"}
          for i in range(start, start + n)]


def test_arrow_source_reads_a_saved_dataset_in_file_order(tmp_path):
  path = _save_to_disk(tmp_path / "gsm8k", _gsm8k_rows(5), num_files=2)
  src = sources.make_source({"source": "arrow", "path": path})
  assert [src[i]["question"] for i in range(5)] == [f"What is {i} + {i}?" for i in range(5)]
  assert [src[i]["answer"] for i in range(5)] == ["0", "2", "4", "6", "8"]
  assert src[3]["id"] == f"arrow {path}/data-00001-of-00002.arrow:row 0"
  assert src.name == f"arrow:{path}"
  # A bare .arrow file works too, and the held-out split of a file source applies.
  assert len(sources.make_source({"source": "arrow",
                                  "path": f"{path}/data-00000-of-00002.arrow"})) == 3
  train = {"source": "arrow", "path": path, "holdout_fraction": 0.5, "subset": "train"}
  assert heldout.derive_eval_config(train)["subset"] == "eval"


def test_arrow_source_dataset_dict_splits(tmp_path):
  root = tmp_path / "dd"
  _save_to_disk(root / "train", _gsm8k_rows(4), split="train")
  _save_to_disk(root / "test", _gsm8k_rows(2, start=10), split="test")
  (root / "dataset_dict.json").write_text(json.dumps({"splits": ["train", "test"]}))
  test = sources.make_source({"source": "arrow", "path": str(root), "split": "test"})
  assert [test[i]["answer"] for i in range(2)] == ["20", "22"] and test.name.endswith("[test]")
  with pytest.raises(ValueError, match=r"DatasetDict with splits \['train', 'test'\]: pass split="):
    sources.make_source({"source": "arrow", "path": str(root)})
  with pytest.raises(ValueError, match=r"no split 'validation' in .*dataset_dict.json"):
    sources.make_source({"source": "arrow", "path": str(root), "split": "validation"})
  # Without dataset_dict.json, the split subdirectories are named in the error.
  (root / "dataset_dict.json").unlink()
  with pytest.raises(FileNotFoundError, match=r"state.json does not exist.*subdirectories "
                                              r"\['test', 'train'\]: pass split="):
    sources.make_source({"source": "arrow", "path": str(root)})
  assert len(sources.make_source({"source": "arrow", "path": str(root), "split": "train"})) == 4


def test_arrow_source_errors_name_the_file(tmp_path):
  path = _save_to_disk(tmp_path / "ds", _gsm8k_rows(3))
  arrow = os.path.join(path, "data-00000-of-00001.arrow")
  data = open(arrow, "rb").read()
  with open(arrow, "wb") as f:
    f.write(data[: len(data) // 2])  # truncated mid-batch
  with pytest.raises(ValueError, match=f"{arrow} is not a readable Arrow IPC file"):
    sources.make_source({"source": "arrow", "path": path})
  with open(arrow, "wb") as f:
    f.write(b"question,answer\n1+1,2\n")  # not Arrow at all
  with pytest.raises(ValueError, match=f"{arrow} is not a readable Arrow IPC file"):
    sources.make_source({"source": "arrow", "path": path})
  os.remove(arrow)
  with pytest.raises(FileNotFoundError, match="lists 'data-00000-of-00001.arrow', but .* does not"):
    sources.make_source({"source": "arrow", "path": path})
  with open(os.path.join(path, "state.json"), "w") as f:
    f.write('{"_data_files": [')
  with pytest.raises(ValueError, match="state.json is not valid JSON"):
    sources.make_source({"source": "arrow", "path": path})
  os.remove(os.path.join(path, "state.json"))
  with pytest.raises(FileNotFoundError, match=f"{path}/state.json does not exist: expected a "
                                              "directory written by datasets' save_to_disk"):
    sources.make_source({"source": "arrow", "path": path})
  with pytest.raises(FileNotFoundError, match="no file or directory matches"):
    sources.make_source({"source": "arrow", "path": str(tmp_path / "nope")})


# ------------------------------------------------------------------------------------------------
# Model ids from the local Hugging Face cache
# ------------------------------------------------------------------------------------------------

COMMIT = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


def _fake_hub(cache, repo_id="tiny-org/tiny-model", refs=(("main", COMMIT),), snapshots=(COMMIT,)):
  """A hub cache tree as huggingface_hub lays it out; returns {commit: snapshot dir}."""
  repo = cache / ("models--" + repo_id.replace("/", "--"))
  for name, commit in refs:
    (repo / "refs" / name).parent.mkdir(parents=True, exist_ok=True)
    (repo / "refs" / name).write_text(commit)
  out = {}
  for commit in snapshots:
    snap = repo / "snapshots" / commit
    snap.mkdir(parents=True)
    (snap / "config.json").write_text(json.dumps({"max_position_embeddings": 77}))
    out[commit] = str(snap)
  return out


@pytest.fixture
def hf_env(tmp_path, monkeypatch):
  """No HF variables, HOME inside tmp_path: only the caches a test builds are searched."""
  for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_HOME", "XDG_CACHE_HOME"):
    monkeypatch.delenv(var, raising=False)
  monkeypatch.setenv("HOME", str(tmp_path / "home"))
  return monkeypatch


def test_model_id_resolves_from_each_cache_location(tmp_path, hf_env):
  home_snap = _fake_hub(tmp_path / "home/.cache/huggingface/hub")[COMMIT]
  assert hub.resolve_model_path("tiny-org/tiny-model") == home_snap
  hf_env.setenv("HF_HOME", str(tmp_path / "hf_home"))
  hf_home_snap = _fake_hub(tmp_path / "hf_home/hub", refs=(("main", OTHER),), snapshots=(OTHER,))
  assert hub.resolve_model_path("tiny-org/tiny-model") == hf_home_snap[OTHER]
  hf_env.setenv("HF_HUB_CACHE", str(tmp_path / "hub_cache"))
  explicit = _fake_hub(tmp_path / "hub_cache")[COMMIT]
  assert hub.resolve_model_path("tiny-org/tiny-model") == explicit
  assert hub.cache_dirs()[:3] == [str(tmp_path / "hub_cache"), str(tmp_path / "hf_home/hub"),
                                  str(tmp_path / "home/.cache/huggingface/hub")]
  # An existing directory is returned as it is, whatever the cache holds.
  assert hub.resolve_model_path(str(tmp_path)) == str(tmp_path)


def test_model_id_revisions(tmp_path, hf_env):
  cache = tmp_path / "cache"
  hf_env.setenv("HF_HUB_CACHE", str(cache))
  snaps = _fake_hub(cache, refs=(("main", COMMIT), ("v1", OTHER)), snapshots=(COMMIT, OTHER))
  assert hub.resolve_model_path("tiny-org/tiny-model") == snaps[COMMIT]
  assert hub.resolve_model_path("tiny-org/tiny-model@v1") == snaps[OTHER]
  assert hub.resolve_model_path(f"tiny-org/tiny-model@{OTHER}") == snaps[OTHER]
  with pytest.raises(ValueError, match=r"has no refs/v2 \(snapshots: \["):
    hub.resolve_model_path("tiny-org/tiny-model@v2")
  # A cache copied without refs/: its only snapshot; two snapshots are ambiguous.
  single = _fake_hub(cache, repo_id="org/copied", refs=(), snapshots=(COMMIT,))
  assert hub.resolve_model_path("org/copied") == single[COMMIT]
  _fake_hub(cache, repo_id="org/two", refs=(), snapshots=(COMMIT, OTHER))
  with pytest.raises(ValueError, match="has no refs/main"):
    hub.resolve_model_path("org/two")


def test_model_id_missing_names_the_caches_searched(tmp_path, hf_env):
  hf_env.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
  with pytest.raises(ValueError) as err:
    hub.resolve_model_path("Qwen/Qwen3-0.6B")
  text = str(err.value)
  assert "'Qwen/Qwen3-0.6B' is not a local directory" in text and "Nothing is downloaded" in text
  assert str(tmp_path / "cache") in text and str(tmp_path / "home/.cache/huggingface/hub") in text
  with pytest.raises(ValueError, match="is not a directory"):
    hub.resolve_model_path(str(tmp_path / "no" / "such" / "dir"))


def test_model_id_matches_huggingface_hub(tmp_path, hf_env):
  huggingface_hub = pytest.importorskip("huggingface_hub")
  cache = tmp_path / "cache"
  _fake_hub(cache, refs=(("main", COMMIT), ("v1", OTHER)), snapshots=(COMMIT, OTHER))
  for revision in (None, "v1", OTHER):
    theirs = huggingface_hub.snapshot_download("tiny-org/tiny-model", revision=revision,
                                               cache_dir=str(cache), local_files_only=True)
    spec = "tiny-org/tiny-model" + (f"@{revision}" if revision else "")
    assert hub.resolve_model_path(spec, search=[str(cache)]) == theirs


def test_builders_validate_and_eval_resolve_model_ids(tmp_path, hf_env):
  from experiments import eval as eval_entry  # pylint: disable=import-outside-toplevel
  from rlvr_jax.training import builders, validate  # pylint: disable=import-outside-toplevel

  cache = tmp_path / "cache"
  hf_env.setenv("HF_HUB_CACHE", str(cache))
  snap = _fake_hub(cache)[COMMIT]
  tok = models.char_level("0123456789+=")
  tok.save(snap)
  mc = models.ModelConfig.tiny_qwen2(vocab_size=32, hidden_size=16, intermediate_size=32,
                                     num_layers=1, num_heads=2, num_kv_heads=1, head_dim=8)
  models.save_hf(builders.init_model(mc, 0), mc, snap)
  model_id = "tiny-org/tiny-model"
  loaded = builders.build_tokenizer({"kind": "pretrained", "path": None}, workdir=str(tmp_path),
                                    model_path=model_id, corpus=list)
  assert loaded.encode("1+2") == tok.encode("1+2")
  _, got = builders.build_model({"init": "hf", "path": model_id}, vocab_size=tok.vocab_size, seed=0)
  assert got.hidden_size == 16
  _, shapes = builders.abstract_model({"init": "hf", "path": model_id}, vocab_size=tok.vocab_size)
  assert shapes.num_layers == 1
  cfg = common.base()
  cfg.model.init, cfg.model.path = "hf", model_id
  context = validate._context_length(cfg)  # pylint: disable=protected-access
  assert context == (mc.max_position_embeddings, f"{snap}/config.json")
  with pytest.raises(ValueError, match="local Hugging Face cache"):
    builders.build_model({"init": "hf", "path": "tiny-org/absent"}, vocab_size=16, seed=0)
  # experiments/eval.py --checkpoint org/name: needs --config, writes to the current directory.
  with pytest.raises(ValueError, match="pass --config"):
    eval_entry.resolve(None, model_id)
  hf_env.chdir(tmp_path)
  _, out = eval_entry.resolve(None, model_id, config=cfg)
  assert out == str(tmp_path)
  eval_entry.apply_overrides(cfg, checkpoint=model_id, size=4)
  assert cfg.model.path == snap and cfg.tokenizer.path == snap
  with pytest.raises(ValueError, match="--checkpoint='tiny-org/absent': model 'tiny-org/absent'"):
    eval_entry.resolve(None, "tiny-org/absent", config=cfg)


# ------------------------------------------------------------------------------------------------
# Chat-template kwargs from the config
# ------------------------------------------------------------------------------------------------

def test_chat_template_kwargs_reach_the_template(chat_tokenizer):
  think = templates.make_template("chat", tokenizer=chat_tokenizer)
  no_think = templates.make_template("chat", tokenizer=chat_tokenizer,
                                     chat_template_kwargs={"enable_thinking": False})
  assert think("2+2?") == "<|user|>2+2?\n<|assistant|>"
  assert no_think("2+2?") == "<|user|>2+2?\n<|assistant|><think></think>"
  with pytest.raises(ValueError, match=r"may not set \['add_generation_prompt'\]"):
    templates.make_template("chat", tokenizer=chat_tokenizer,
                            chat_template_kwargs={"add_generation_prompt": False})
  with pytest.raises(ValueError, match="must be a mapping"):
    templates.make_template("chat", tokenizer=chat_tokenizer, chat_template_kwargs=["x"])


def test_chat_template_kwargs_from_a_run_config(chat_tokenizer):
  from rlvr_jax.training import loop  # pylint: disable=import-outside-toplevel

  cfg = common.base()
  cfg.data.template = "chat"
  cfg.data.template_options = ml_collections.ConfigDict(dict(
      system="Be brief.", chat_template_kwargs=dict(enable_thinking=False)))
  cfg.lock()
  template, prompt_fn = loop._template_fn(cfg, chat_tokenizer)  # pylint: disable=protected-access
  conversation = rows.Conversation([_user("1+1?")])
  assert template(conversation) == "<|system|>Be brief.\n<|user|>1+1?\n<|assistant|><think></think>"
  assert prompt_fn({"question": conversation}) == chat_tokenizer.encode(template(conversation))


def test_chat_template_kwargs_with_a_transformers_tokenizer():
  from tokenizers import Tokenizer, models as tok_models  # pylint: disable=import-outside-toplevel
  from transformers import PreTrainedTokenizerFast  # pylint: disable=import-outside-toplevel

  tok = PreTrainedTokenizerFast(
      tokenizer_object=Tokenizer(tok_models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
      unk_token="[UNK]")
  tok.chat_template = THINKING_TEMPLATE
  got = templates.render_prompt("chat", rows.Conversation([SYSTEM, _user("2+2?")]), tokenizer=tok,
                                chat_template_kwargs={"enable_thinking": False})
  assert got == "<|system|>Reason step by step.\n<|user|>2+2?\n<|assistant|><think></think>"
