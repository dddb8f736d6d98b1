"""Tokenizer: locally trained BPE / sentencepiece / char-level round trips, special tokens, chat
templates (rendered like transformers), save / from_pretrained. transformers' AutoTokenizer over the
saved tokenizer.json is the oracle for encoding and chat rendering."""
import json

import jinja2
import pytest
import transformers

from rlvr_jax.models import Tokenizer, char_level, train_bpe, train_sentencepiece
from rlvr_jax.models.tokenizer import CHATML_TEMPLATE

CORPUS = [
    "The answer to 12 + 30 is 42.\n", "Ünïcode tëxt, 漢字 and an emoji 🙂.", "  leading and trailing  ",
    "<|im_start|>user\nWhat is 7*6?<|im_end|>\n", "tabs\tand\nnewlines\n\n", "def f(x):\n    return x ** 2\n",
] * 20
SAMPLES = ["Hello, World! 12+30=42", "  double  spaces\tand tabs\n", "漢字🙂 ünïcode", "",
           "<|im_start|>assistant\nsure<|im_end|>", "out-of-corpus: qzxjv ÆØÅ 😀"]
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MESSAGES = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 7*6? 漢字"},
            {"role": "assistant", "content": "42"}, {"role": "user", "content": "Thanks"}]
# Exercises the jinja features HF templates rely on: whitespace control, loop controls, tojson,
# raise_exception, {% generation %} and variables passed as keyword arguments.
RICH_TEMPLATE = """
{%- for message in messages %}
  {%- if message['role'] not in ['system', 'user', 'assistant'] %}
    {{- raise_exception('unknown role ' + message['role']) }}
  {%- endif %}
  {%- if message['role'] == 'system' and not loop.first %}{% continue %}{% endif %}
  {{- '<|im_start|>' + message['role'] + '\n' }}
  {%- if message['role'] == 'assistant' %}
    {%- generation %}{{ message['content'] }}{% endgeneration %}
  {%- else %}
    {{- message['content'] }}
  {%- endif %}
  {{- '<|im_end|>\n' }}
{%- endfor %}
{%- if tools %}{{ '<tools>' + (tools | tojson) + '</tools>\n' }}{% endif %}
{%- if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% if enable_thinking is defined and not enable_thinking %}{{ '<think>\n\n</think>\n\n' }}{% endif %}{% endif %}
"""


@pytest.fixture(scope="module")
def bpe():
  return train_bpe(CORPUS, 400, SPECIALS, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                   chat_template=RICH_TEMPLATE)


@pytest.fixture(scope="module")
def bpe_dir(bpe, tmp_path_factory):
  path = tmp_path_factory.mktemp("bpe")
  bpe.save(path)
  return path


def test_bpe_round_trip_and_special_tokens(bpe):
  assert 300 < bpe.vocab_size <= 400  # the small corpus supports fewer merges than asked for
  assert bpe.eos_ids == (bpe.token_to_id("<|im_end|>"),) and bpe.pad_id == bpe.token_to_id("<|endoftext|>")
  assert bpe.bos_id is None
  for text in SAMPLES:
    ids = bpe.encode(text)
    assert bpe.decode(ids, skip_special_tokens=False) == text
  ids = bpe.encode("<|im_start|>hi<|im_end|>")
  assert ids[0] == bpe.token_to_id("<|im_start|>") and ids[-1] == bpe.token_to_id("<|im_end|>")
  assert bpe.decode(ids) == "hi"  # special tokens skipped by default
  assert len(bpe.encode("The answer to 12 + 30 is 42.")) < len("The answer to 12 + 30 is 42.") / 2


def test_bpe_matches_transformers_and_reloads(bpe, bpe_dir):
  oracle = transformers.AutoTokenizer.from_pretrained(bpe_dir)
  again = Tokenizer.from_pretrained(bpe_dir)
  for text in SAMPLES:
    ids = bpe.encode(text)
    assert oracle.encode(text, add_special_tokens=False) == ids
    assert again.encode(text) == ids
    assert oracle.decode(ids, skip_special_tokens=True) == bpe.decode(ids)
  assert oracle.eos_token_id == bpe.eos_ids[0] and oracle.pad_token_id == bpe.pad_id
  assert again.eos_ids == bpe.eos_ids and again.chat_template == RICH_TEMPLATE


@pytest.mark.parametrize("kwargs", [dict(add_generation_prompt=True), dict(add_generation_prompt=False),
                                    dict(add_generation_prompt=True, enable_thinking=False),
                                    dict(add_generation_prompt=True, tools=[{"name": "calc", "description": "é"}])])
def test_chat_template_renders_like_transformers(bpe, bpe_dir, kwargs):
  oracle = transformers.AutoTokenizer.from_pretrained(bpe_dir)
  messages = MESSAGES + [{"role": "system", "content": "skipped by {% continue %}"}]
  ours = bpe.apply_chat_template(messages, **kwargs)
  assert ours == oracle.apply_chat_template(messages, tokenize=False, **kwargs)
  assert ours.startswith("<|im_start|>system\nBe brief.<|im_end|>\n")
  assert bpe.encode(ours) == oracle.apply_chat_template(messages, tokenize=True, return_dict=False, **kwargs)


def test_chat_template_raise_exception_and_missing_template(bpe):
  with pytest.raises(jinja2.exceptions.TemplateError, match="unknown role tool"):
    bpe.apply_chat_template([{"role": "tool", "content": "x"}])
  plain = train_bpe(CORPUS[:6], 300)
  with pytest.raises(ValueError, match="no chat_template"):
    plain.apply_chat_template(MESSAGES)


def test_sentencepiece_round_trip_bos_and_reload(tmp_path):
  sp = train_sentencepiece(CORPUS, 400, special_tokens=["<|im_start|>", "<|im_end|>"],
                           chat_template=CHATML_TEMPLATE)
  assert sp.is_sentencepiece and 300 <= sp.vocab_size <= 400
  assert (sp.bos_id, sp.eos_ids, sp.pad_id) == (1, (2,), 3)
  for text in SAMPLES:
    assert sp.decode(sp.encode(text), skip_special_tokens=False) == text
  with_bos = sp.encode("hi there", add_special_tokens=True)
  assert with_bos[0] == 1 and with_bos[1:] == sp.encode("hi there")
  assert sp.decode(with_bos + [2], skip_special_tokens=False) == "<s>hi there</s>"
  assert sp.decode(with_bos + [2]) == "hi there"
  chat = sp.apply_chat_template(MESSAGES[:2])
  ids = sp.encode(chat)
  assert ids[0] == sp.token_to_id("<|im_start|>")  # user-defined pieces are matched inside text
  assert sp.decode(ids, skip_special_tokens=False) == chat
  sp.save(tmp_path)
  again = Tokenizer.from_pretrained(tmp_path)
  assert again.is_sentencepiece and again.encode(chat) == ids
  assert (again.bos_id, again.eos_ids, again.pad_id) == (1, (2,), 3)
  assert again.apply_chat_template(MESSAGES[:2]) == chat


def test_char_level_ids_round_trip_and_transformers(tmp_path):
  tok = char_level("0123456789+-*= \n?")
  assert [tok.id_to_token(i) for i in range(5)] == ["<pad>", "<eos>", "<unk>", "0", "1"]
  assert tok.vocab_size == 3 + 17 and tok.pad_id == 0 and tok.eos_ids == (1,)
  text = "12+30=42\n7*6= ?"
  ids = tok.encode(text)
  assert len(ids) == len(text) and tok.decode(ids) == text
  assert tok.encode("1x") == [4, 2]  # unknown character -> <unk>
  assert tok.encode("4<eos>") == [7, 1] and tok.decode([7, 1, 0]) == "4"
  tok.save(tmp_path)
  oracle = transformers.AutoTokenizer.from_pretrained(tmp_path)
  assert oracle.encode(text, add_special_tokens=False) == ids
  assert Tokenizer.from_pretrained(tmp_path).encode(text) == ids
  with_bos = char_level("ab", bos_token="<bos>")
  assert with_bos.encode("ab", add_special_tokens=True) == [with_bos.bos_id] + with_bos.encode("ab")


def test_from_pretrained_hf_layout_with_generation_config(bpe, tmp_path):
  """A checkpoint-style directory: AddedToken dicts, list-form chat templates, generation eos ids."""
  bpe.backend.save(str(tmp_path / "tokenizer.json"))
  (tmp_path / "tokenizer_config.json").write_text(json.dumps({
      "eos_token": {"content": "<|im_end|>", "special": True}, "pad_token": "<|endoftext|>",
      "chat_template": [{"name": "default", "template": CHATML_TEMPLATE}, {"name": "tool_use", "template": "x"}]}))
  im_end, endoftext = bpe.token_to_id("<|im_end|>"), bpe.token_to_id("<|endoftext|>")
  (tmp_path / "generation_config.json").write_text(json.dumps({"eos_token_id": [endoftext, im_end]}))
  tok = Tokenizer.from_pretrained(tmp_path)
  assert tok.eos_ids == (im_end, endoftext)  # the tokenizer's eos first, duplicates dropped
  assert tok.apply_chat_template(MESSAGES[:1]) == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>assistant\n"
  (tmp_path / "chat_template.jinja").write_text("{{ messages[0]['content'] }}")  # v5 location wins
  assert Tokenizer.from_pretrained(tmp_path).apply_chat_template(MESSAGES) == "Be brief."


def test_tokenizer_errors(tmp_path):
  with pytest.raises(ValueError, match="neither tokenizer.json nor tokenizer.model"):
    Tokenizer.from_pretrained(tmp_path)
  with pytest.raises(ValueError, match="eos_token '<nope>' is not in the vocabulary"):
    Tokenizer(char_level("ab").backend, eos_token="<nope>")
  with pytest.raises(ValueError, match="single characters"):
    char_level(["ab", "c"])


def test_export_layout_chat_template_in_both_places_and_the_fast_tokenizer_workaround(tmp_path):
  """A saved tokenizer carries its chat template in chat_template.jinja (transformers 5) and in
  tokenizer_config.json (4.x, serving stacks). Beside a qwen2 config.json, transformers 5's
  AutoTokenizer rebuilds Qwen2's pre-tokenizer (docs/evaluation.md); PreTrainedTokenizerFast reads
  the export's tokenizer.json as it is."""
  tok = char_level("0123456789+-= ")
  tok.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
  tok.save(tmp_path)
  config = json.loads((tmp_path / "tokenizer_config.json").read_text())
  assert config["chat_template"] == (tmp_path / "chat_template.jinja").read_text() == tok.chat_template
  assert Tokenizer.from_pretrained(tmp_path).chat_template == tok.chat_template
  (tmp_path / "config.json").write_text(json.dumps({"model_type": "qwen2"}))
  fast = transformers.PreTrainedTokenizerFast.from_pretrained(tmp_path)
  assert fast.encode("33 + 71 =", add_special_tokens=False) == tok.encode("33 + 71 =")
