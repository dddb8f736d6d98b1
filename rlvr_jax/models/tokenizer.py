"""One `Tokenizer` over a Hugging Face ``tokenizer.json`` (the ``tokenizers`` library) or a
sentencepiece ``.model``, with special tokens and HF-style chat templates.

``Tokenizer.from_pretrained(dir)`` reads, when present:
  tokenizer.json or tokenizer.model       the vocabulary and segmentation (tokenizer.json wins)
  tokenizer_config.json                   bos/eos/pad/unk token strings, ``chat_template``
  chat_template.jinja                     the chat template (transformers v5 location; wins)
  generation_config.json                  extra end-of-sequence ids (``eos_token_id`` int or list)
``eos_ids`` is the tokenizer's eos token followed by any generation-config ids (deduplicated), since
chat checkpoints such as Qwen2.5-Instruct stop on either <|im_end|> or <|endoftext|>. ``pad_id``
falls back to the first eos id, then 0, when no pad token is defined (padding is always masked).

Chat templates render with jinja2 as transformers does: sandboxed environment, ``trim_blocks`` and
``lstrip_blocks``, the loop-controls extension, ``raise_exception``, ``strftime_now``, a ``tojson``
filter that keeps non-ASCII text, and the special-token strings and ``add_generation_prompt`` in scope.

Training helpers for offline runs: ``train_bpe`` (byte-level BPE, GPT-2 style, via ``tokenizers``),
``train_sentencepiece`` (identity normalisation and byte fallback, so decode(encode(s)) == s) and
``char_level`` (one token per character of a given alphabet; a tokenizer.json built locally).
"""
from __future__ import annotations

import datetime
import io
import json
import os
import pathlib
from typing import Any, Iterable, Sequence

import jinja2
import jinja2.ext
import jinja2.sandbox
import sentencepiece as spm
import tokenizers
from tokenizers import AddedToken, decoders, models, pre_tokenizers, processors, trainers

_ROLES = ("bos_token", "eos_token", "pad_token", "unk_token")

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] "
    "+ '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}"
    "{% endif %}")
"""A ChatML template (Qwen's format); needs <|im_start|> and <|im_end|> among the special tokens."""


def _token_str(value: Any) -> str | None:
  """tokenizer_config stores special tokens as strings or as AddedToken dicts."""
  if value is None or isinstance(value, str):
    return value
  if isinstance(value, dict) and "content" in value:
    return value["content"]
  raise ValueError(f"tokenizer_config special token {value!r} is neither a string nor {{'content': ...}}")


class _GenerationTag(jinja2.ext.Extension):
  """``{% generation %}...{% endgeneration %}`` (HF assistant-mask marker) renders its body as is."""
  tags = {"generation"}

  def parse(self, parser):
    next(parser.stream)
    return parser.parse_statements(("name:endgeneration",), drop_needle=True)


def _raise(message: str):
  raise jinja2.exceptions.TemplateError(message)


def _tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
  return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def _compile_template(source: str) -> jinja2.Template:
  env = jinja2.sandbox.ImmutableSandboxedEnvironment(
      trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationTag, jinja2.ext.loopcontrols])
  env.filters["tojson"] = _tojson
  env.globals["raise_exception"] = _raise
  env.globals["strftime_now"] = lambda fmt: datetime.datetime.now().strftime(fmt)
  return env.from_string(source)


class Tokenizer:
  """Encode/decode, special-token ids and chat templates over either backend."""

  def __init__(self, backend: tokenizers.Tokenizer | spm.SentencePieceProcessor, *,
               bos_token: str | None = None, eos_token: str | None = None, pad_token: str | None = None,
               unk_token: str | None = None, chat_template: str | None = None,
               extra_eos_ids: Sequence[int] = (), additional_special_tokens: Sequence[str] = ()):
    if not isinstance(backend, (tokenizers.Tokenizer, spm.SentencePieceProcessor)):
      raise ValueError(f"backend must be tokenizers.Tokenizer or SentencePieceProcessor, got {type(backend)}")
    self.backend = backend
    self.tokens = dict(bos_token=bos_token, eos_token=eos_token, pad_token=pad_token, unk_token=unk_token)
    self.additional_special_tokens = tuple(additional_special_tokens)
    for role, tok in list(self.tokens.items()) + [("additional", t) for t in self.additional_special_tokens]:
      if tok is not None and self.token_to_id(tok) is None:
        raise ValueError(f"{role} {tok!r} is not in the vocabulary")
    self.chat_template = chat_template
    self._extra_eos_ids = tuple(int(i) for i in extra_eos_ids)
    self._template = None

  # -- loading and saving -----------------------------------------------------------------------

  @classmethod
  def from_pretrained(cls, path: str | os.PathLike) -> "Tokenizer":
    path = pathlib.Path(path)
    if (path / "tokenizer.json").is_file():
      try:
        backend = tokenizers.Tokenizer.from_file(str(path / "tokenizer.json"))
      except Exception as e:  # tokenizers raises a bare Exception on a bad file
        raise ValueError(f"{path / 'tokenizer.json'} is not a valid tokenizer file ({e}); the file "
                         "is truncated or corrupt") from e
    elif (path / "tokenizer.model").is_file():
      try:
        backend = spm.SentencePieceProcessor(model_file=str(path / "tokenizer.model"))
      except Exception as e:  # sentencepiece raises OSError / RuntimeError
        raise ValueError(f"{path / 'tokenizer.model'} is not a valid sentencepiece model ({e}); "
                         "the file is truncated or corrupt") from e
    else:
      raise ValueError(f"{path} has neither tokenizer.json nor tokenizer.model")
    config = _read_json(path / "tokenizer_config.json")
    tokens = {role: _token_str(config.get(role)) for role in _ROLES}
    if isinstance(backend, spm.SentencePieceProcessor):
      for role, idx in (("bos_token", backend.bos_id()), ("eos_token", backend.eos_id()),
                        ("pad_token", backend.pad_id()), ("unk_token", backend.unk_id())):
        if tokens[role] is None and idx >= 0:
          tokens[role] = backend.id_to_piece(idx)
    template = config.get("chat_template")
    if isinstance(template, list):  # [{"name": ..., "template": ...}, ...]
      named = {t["name"]: t["template"] for t in template}
      template = named.get("default", next(iter(named.values()), None))
    if (path / "chat_template.jinja").is_file():
      template = (path / "chat_template.jinja").read_text()
    eos = _read_json(path / "generation_config.json").get("eos_token_id")
    extra = list(config.get("extra_eos_token_ids", [])) + ([eos] if isinstance(eos, int) else list(eos or []))
    additional = [_token_str(t) for t in config.get("additional_special_tokens", []) or []]
    return cls(backend, chat_template=template, extra_eos_ids=extra, additional_special_tokens=additional,
               **tokens)

  def save(self, path: str | os.PathLike) -> None:
    """Writes tokenizer.json (or tokenizer.model), tokenizer_config.json and chat_template.jinja."""
    path = pathlib.Path(path)
    path.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {k: v for k, v in self.tokens.items() if v is not None}
    if self.additional_special_tokens:
      config["additional_special_tokens"] = list(self.additional_special_tokens)
    if isinstance(self.backend, tokenizers.Tokenizer):
      self.backend.save(str(path / "tokenizer.json"))
      # Lets transformers' AutoTokenizer open the directory as a fast tokenizer.
      config.update(tokenizer_class="PreTrainedTokenizerFast", clean_up_tokenization_spaces=False)
    else:
      (path / "tokenizer.model").write_bytes(self.backend.serialized_model_proto())
    extra = [i for i in self.eos_ids if i != self._id_of("eos_token")]
    if extra:
      config["extra_eos_token_ids"] = extra
    if self.chat_template is not None:
      # Both places: transformers 5 reads chat_template.jinja, 4.x and most serving stacks read
      # the tokenizer_config.json entry.
      config["chat_template"] = self.chat_template
    (path / "tokenizer_config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False))
    if self.chat_template is not None:
      (path / "chat_template.jinja").write_text(self.chat_template)

  # -- vocabulary -------------------------------------------------------------------------------

  @property
  def is_sentencepiece(self) -> bool:
    return isinstance(self.backend, spm.SentencePieceProcessor)

  @property
  def vocab_size(self) -> int:
    if self.is_sentencepiece:
      return self.backend.get_piece_size()
    return self.backend.get_vocab_size(with_added_tokens=True)

  def token_to_id(self, token: str) -> int | None:
    if self.is_sentencepiece:
      idx = self.backend.piece_to_id(token)
      # piece_to_id answers unk for unknown pieces; only the unk piece itself may map there.
      return idx if idx != self.backend.unk_id() or token == self.backend.id_to_piece(idx) else None
    return self.backend.token_to_id(token)

  def id_to_token(self, idx: int) -> str | None:
    if self.is_sentencepiece:
      return self.backend.id_to_piece(idx) if 0 <= idx < self.vocab_size else None
    return self.backend.id_to_token(idx)

  def _id_of(self, role: str) -> int | None:
    tok = self.tokens[role]
    return None if tok is None else self.token_to_id(tok)

  @property
  def bos_id(self) -> int | None:
    return self._id_of("bos_token")

  @property
  def eos_ids(self) -> tuple[int, ...]:
    ids = [self._id_of("eos_token")] + list(self._extra_eos_ids)
    return tuple(dict.fromkeys(i for i in ids if i is not None))

  @property
  def pad_id(self) -> int:
    pad = self._id_of("pad_token")
    if pad is not None:
      return pad
    return self.eos_ids[0] if self.eos_ids else 0

  @property
  def special_ids(self) -> frozenset[int]:
    toks = [t for t in self.tokens.values() if t is not None] + list(self.additional_special_tokens)
    return frozenset(self.token_to_id(t) for t in toks)

  # -- encode / decode --------------------------------------------------------------------------

  def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
    """Token ids of ``text``; special-token strings in the text map to their ids."""
    if not self.is_sentencepiece:
      return self.backend.encode(text, add_special_tokens=add_special_tokens).ids
    ids = self.backend.encode(text)
    if add_special_tokens and self.bos_id is not None:
      ids = [self.bos_id] + ids
    return ids

  def decode(self, ids: Iterable[int], skip_special_tokens: bool = True) -> str:
    ids = [int(i) for i in ids]
    if not self.is_sentencepiece:
      return self.backend.decode(ids, skip_special_tokens=skip_special_tokens)
    special = self.special_ids
    if skip_special_tokens:
      return self.backend.decode([i for i in ids if i not in special])
    # sentencepiece drops control pieces (bos/eos/pad) when decoding; keep them as their strings.
    out, run = [], []
    for i in ids:
      if self.backend.is_control(i):
        out += [self.backend.decode(run), self.backend.id_to_piece(i)]
        run = []
      else:
        run.append(i)
    return "".join(out + [self.backend.decode(run)])

  # -- chat -------------------------------------------------------------------------------------

  def apply_chat_template(self, messages: Sequence[dict[str, Any]], add_generation_prompt: bool = True,
                          **kwargs) -> str:
    """Renders ``messages`` ([{"role": ..., "content": ...}, ...]) with the chat template."""
    if self.chat_template is None:
      raise ValueError("this tokenizer has no chat_template (none in tokenizer_config.json or "
                       "chat_template.jinja); pass chat_template= when building it")
    if self._template is None:
      self._template = _compile_template(self.chat_template)
    scope = {k: v for k, v in self.tokens.items()}
    scope.update(additional_special_tokens=list(self.additional_special_tokens))
    scope.update(kwargs)
    return self._template.render(messages=list(messages), add_generation_prompt=add_generation_prompt, **scope)


def _read_json(path: pathlib.Path) -> dict[str, Any]:
  if not path.is_file():
    return {}
  try:
    with open(path, encoding="utf-8") as f:
      return json.load(f)
  except (ValueError, UnicodeDecodeError) as e:
    raise ValueError(f"{path} is not valid JSON ({e}); the file is truncated or corrupt") from e


def _roles_in(special_tokens: Sequence[str], **roles: str | None) -> list[str]:
  """The special-token list with every role token included once, roles first."""
  ordered = [t for t in roles.values() if t is not None] + list(special_tokens)
  return list(dict.fromkeys(ordered))


# ------------------------------------------------------------------------------------------------
# Building tokenizers locally
# ------------------------------------------------------------------------------------------------


def _bos_post_processor(bos_token: str | None, bos_id: int | None):
  if bos_token is None:
    return None
  return processors.TemplateProcessing(single=f"{bos_token} $A", pair=f"{bos_token} $A {bos_token} $B",
                                       special_tokens=[(bos_token, bos_id)])


def train_bpe(texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = ("<|endoftext|>",), *,
              eos_token: str | None = "<|endoftext|>", pad_token: str | None = None,
              bos_token: str | None = None, chat_template: str | None = None,
              min_frequency: int = 2) -> Tokenizer:
  """Byte-level BPE (Radford et al. 2019, GPT-2 sec. 2.2) trained on ``texts``; any string round-trips.

  Special tokens get the lowest ids, in order (role tokens first); ``vocab_size`` includes the 256
  byte symbols and the special tokens.
  """
  specials = _roles_in(special_tokens, pad=pad_token, eos=eos_token, bos=bos_token)
  backend = tokenizers.Tokenizer(models.BPE())
  backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
  backend.decoder = decoders.ByteLevel()
  trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=min_frequency, special_tokens=specials,
                                initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
  backend.train_from_iterator(texts, trainer)
  if bos_token is not None:
    backend.post_processor = _bos_post_processor(bos_token, backend.token_to_id(bos_token))
  extra = [t for t in specials if t not in (eos_token, pad_token, bos_token)]
  return Tokenizer(backend, eos_token=eos_token, pad_token=pad_token, bos_token=bos_token,
                   chat_template=chat_template, additional_special_tokens=extra)


def train_sentencepiece(texts: Iterable[str], vocab_size: int, special_tokens: Sequence[str] = (), *,
                        model_type: str = "bpe", chat_template: str | None = None,
                        character_coverage: float = 1.0) -> Tokenizer:
  """A sentencepiece model (Kudo & Richardson 2018) trained in memory on ``texts``.

  Ids 0-3 are <unk>, <s> (bos), </s> (eos), <pad>; ``special_tokens`` become user-defined pieces, so
  they are matched inside text. Identity normalisation, kept whitespace, no dummy-prefix space and
  byte fallback make decode(encode(s)) == s and encode(a + b) start with encode(a)'s first piece; byte fallback needs ``vocab_size`` > 260 + len(special_tokens). The vocab
  is a soft limit (``hard_vocab_limit=False``) because a tiny corpus may not support the full size.
  """
  model = io.BytesIO()
  spm.SentencePieceTrainer.train(
      sentence_iterator=iter(texts), model_writer=model, vocab_size=vocab_size, model_type=model_type,
      hard_vocab_limit=False, byte_fallback=True, normalization_rule_name="identity",
      remove_extra_whitespaces=False, add_dummy_prefix=False, split_digits=True, character_coverage=character_coverage,
      user_defined_symbols=list(special_tokens), unk_id=0, bos_id=1, eos_id=2, pad_id=3,
      pad_piece="<pad>", minloglevel=2)
  backend = spm.SentencePieceProcessor(model_proto=model.getvalue())
  return Tokenizer(backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>", unk_token="<unk>",
                   chat_template=chat_template, additional_special_tokens=list(special_tokens))


def char_level(alphabet: Iterable[str], special_tokens: Sequence[str] = ("<pad>", "<eos>"), *,
               pad_token: str | None = "<pad>", eos_token: str | None = "<eos>", bos_token: str | None = None,
               unk_token: str | None = "<unk>", chat_template: str | None = None) -> Tokenizer:
  """One token per character: ids 0.. are the special tokens (role tokens first), then ``alphabet``
  in order. Characters outside the alphabet map to ``unk_token`` (pass None to drop them)."""
  specials = _roles_in(special_tokens, pad=pad_token, eos=eos_token, bos=bos_token, unk=unk_token)
  chars = [c for c in dict.fromkeys(alphabet) if c not in specials]
  if any(len(c) != 1 for c in chars):
    raise ValueError(f"alphabet entries must be single characters; got {[c for c in chars if len(c) != 1]}")
  vocab = {tok: i for i, tok in enumerate(specials + chars)}
  # A BPE model without merges splits a word into characters; with no pre-tokenizer the whole text
  # is one word, so whitespace and newlines are ordinary characters. Fuse joins tokens on decode.
  backend = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=unk_token))
  backend.decoder = decoders.Fuse()
  backend.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
  if bos_token is not None:
    backend.post_processor = _bos_post_processor(bos_token, vocab[bos_token])
  extra = [t for t in specials if t not in (eos_token, pad_token, bos_token, unk_token)]
  return Tokenizer(backend, eos_token=eos_token, pad_token=pad_token, bos_token=bos_token,
                   unk_token=unk_token, chat_template=chat_template, additional_special_tokens=extra)
