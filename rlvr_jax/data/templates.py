"""Prompt templates: question text -> prompt string, selected by name from ``TEMPLATES``.

* ``plain``: a format string with one ``{question}`` field (default: the bare question), optionally
  after removing a fixed ``strip_prefix`` from the question.
* ``r1``: the DeepSeek-R1-Zero training template (DeepSeek-AI, 2025, arXiv:2501.12948, Table 1): the
  model reasons inside ``<think></think>`` and answers inside ``<answer></answer>``.
* ``chat``: a single user turn (plus an optional system turn) rendered by a tokenizer's
  ``apply_chat_template(messages, add_generation_prompt=True, **chat_template_kwargs)``; any object
  with that method works. ``chat_template_kwargs`` reach the template as variables (Qwen3:
  ``{'enable_thinking': False}``); set them in ``config.data.template_options``.

Conversational rows (``rows.Conversation``: a message-list prompt, e.g. TRL or verl files) are
rendered whole by ``chat``: their own system message wins over the ``system`` option, ``suffix``
goes at the end of the last user turn. ``plain`` and ``r1`` format the text of the user turn, and
refuse (ValueError naming the roles) a conversation with any other turn, which they would drop.

Tokenisation happens later, in the trainer, so templates return strings.
"""
from __future__ import annotations

import functools
import string
from typing import Any, Callable, Mapping

from rlvr_jax.data import rows as rows_lib

# Wording of the R1-Zero template as printed in the paper's Table 1; "{question}" stands for its
# "prompt" placeholder.
R1_ZERO_TEMPLATE = (
    "A conversation between User and Assistant. The user asks a question, and the Assistant solves "
    "it. The assistant first thinks about the reasoning process in the mind and then provides the "
    "user with the answer. The reasoning process and answer are enclosed within <think> </think> "
    "and <answer> </answer> tags, respectively, i.e., <think> reasoning process here </think> "
    "<answer> answer here </answer>. User: {question}. Assistant:")


def _check_format(fmt: str, template: str) -> None:
    """A format string must use exactly the field {question} (others would fail at render time)."""
    if not isinstance(fmt, str):
        raise ValueError(f"template {template!r}: format must be a string, got {type(fmt).__name__}")
    try:
        fields = {field for _, field, _, _ in string.Formatter().parse(fmt) if field is not None}
    except ValueError as err:
        raise ValueError(f"template {template!r}: malformed format string {fmt!r}: {err}") from err
    if fields != {"question"}:
        raise ValueError(f"template {template!r}: format {fmt!r} must contain exactly the field "
                         f"{{question}} (found {sorted(fields)}); write literal braces as {{{{ }}}}")


def _single_turn(question: str, template: str) -> str:
    """The text a non-chat template formats; a conversation must be one user turn."""
    if isinstance(question, rows_lib.Conversation) and len(question.messages) > 1:
        roles = [m["role"] for m in question.messages]
        raise ValueError(f"template {template!r} formats one question, but this prompt is a "
                         f"conversation with roles {roles}; use data.template='chat' to render "
                         "every turn, or keep only the user turn in the data")
    return question


def plain_template(question: str, *, format: str = "{question}",  # pylint: disable=redefined-builtin
                   strip_prefix: str = "") -> str:
    """``format.format(question=question)``: braces inside the question are left alone.

    ``strip_prefix`` removes a fixed instruction that every question of a task starts with (e.g.
    reasoning-gym's "State the final answer to the following arithmetic problem: "), which a tiny
    character-level model would otherwise spend most of its sequence length on.
    """
    _check_format(format, "plain")
    question = _single_turn(question, "plain")
    if strip_prefix and question.startswith(strip_prefix):
        question = question[len(strip_prefix):]
    return format.format(question=question)


def r1_template(question: str, *, format: str = R1_ZERO_TEMPLATE) -> str:  # pylint: disable=redefined-builtin
    """DeepSeek-R1-Zero prompt (arXiv:2501.12948, Table 1)."""
    _check_format(format, "r1")
    question = _single_turn(question, "r1")
    return format.format(question=question)


# apply_chat_template arguments the template sets itself.
_RESERVED_CHAT_KWARGS = ("messages", "conversation", "add_generation_prompt", "tokenize")


def _chat_kwargs(chat_template_kwargs: Any) -> dict:
    if chat_template_kwargs is None:
        return {}
    if hasattr(chat_template_kwargs, "to_dict"):  # ml_collections.ConfigDict
        chat_template_kwargs = chat_template_kwargs.to_dict()
    if not isinstance(chat_template_kwargs, Mapping):
        raise ValueError("template 'chat': chat_template_kwargs must be a mapping of template "
                         f"variables, got {type(chat_template_kwargs).__name__}")
    reserved = sorted(set(chat_template_kwargs) & set(_RESERVED_CHAT_KWARGS))
    if reserved:
        raise ValueError(f"template 'chat': chat_template_kwargs may not set {reserved}; the "
                         "template passes them itself")
    return dict(chat_template_kwargs)


def chat_template(question: str, *, tokenizer: Any = None, system: str | None = None,
                  suffix: str = "", chat_template_kwargs: Mapping[str, Any] | None = None) -> str:
    """The question (plus ``suffix``, e.g. a boxed-answer instruction) as one chat user turn, or a
    ``Conversation`` with all its turns; ``chat_template_kwargs`` become template variables."""
    if tokenizer is None or not hasattr(tokenizer, "apply_chat_template"):
        raise ValueError("template 'chat' needs tokenizer=<object with apply_chat_template>, got "
                         f"{type(tokenizer).__name__}")
    kwargs = _chat_kwargs(chat_template_kwargs)
    if isinstance(question, rows_lib.Conversation):
        messages = [dict(m) for m in question.messages]
        messages[-1]["content"] += suffix  # the last message is the user turn (Conversation)
        if system and not any(m["role"] == "system" for m in messages):
            messages.insert(0, {"role": "system", "content": system})
    else:
        messages = []
        if system:
            messages.append({"role": "system", "content": system})
        messages.append({"role": "user", "content": question + suffix})
    try:
        # Hugging Face tokenizers return token ids unless told otherwise.
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False, **kwargs)
    except TypeError:
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True, **kwargs)
    if not isinstance(rendered, str):
        raise ValueError("template 'chat': tokenizer.apply_chat_template returned "
                         f"{type(rendered).__name__}, expected str")
    return rendered


TEMPLATES: dict[str, Callable[..., str]] = {
    "plain": plain_template,
    "r1": r1_template,
    "chat": chat_template,
}


def make_template(name: str, **options: Any) -> Callable[[str], str]:
    """The template ``name`` with its options bound: ``make_template('r1')(question) -> prompt``.

    Options are checked once here (by rendering a probe question) so a bad format string or a
    missing tokenizer fails at start-up, not in the middle of a run.
    """
    if name not in TEMPLATES:
        raise ValueError(f"unknown prompt template {name!r}; registered: {sorted(TEMPLATES)}")
    fn = functools.partial(TEMPLATES[name], **options)
    try:
        fn("probe question")
    except TypeError as err:
        raise ValueError(f"template {name!r}: bad options {sorted(options)}: {err}") from err
    return fn


def render_prompt(name: str, question: str, **options: Any) -> str:
    """One-shot form of ``make_template(name, **options)(question)``."""
    return make_template(name, **options)(question)


def apply_template(template: Callable[[str], str], example: dict) -> dict:
    """A copy of a task example with its rendered ``'prompt'`` added (for ``pipeline`` map_fn)."""
    return dict(example, prompt=template(example["question"]))
