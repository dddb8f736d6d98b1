"""Prompt templates: question text -> prompt string, selected by name from ``TEMPLATES``.

* ``plain``: a format string with one ``{question}`` field (default: the bare question), optionally
  after removing a fixed ``strip_prefix`` from the question.
* ``r1``: the DeepSeek-R1-Zero training template (DeepSeek-AI, 2025, arXiv:2501.12948, Table 1): the
  model reasons inside ``<think></think>`` and answers inside ``<answer></answer>``.
* ``chat``: a single user turn (plus an optional system turn) rendered by a tokenizer's
  ``apply_chat_template(messages, add_generation_prompt=True)``; any object with that method works.

Tokenisation happens later, in the trainer, so templates return strings.
"""
from __future__ import annotations

import functools
import string
from typing import Any, Callable

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


def plain_template(question: str, *, format: str = "{question}",  # pylint: disable=redefined-builtin
                   strip_prefix: str = "") -> str:
    """``format.format(question=question)``: braces inside the question are left alone.

    ``strip_prefix`` removes a fixed instruction that every question of a task starts with (e.g.
    reasoning-gym's "State the final answer to the following arithmetic problem: "), which a tiny
    character-level model would otherwise spend most of its sequence length on.
    """
    _check_format(format, "plain")
    if strip_prefix and question.startswith(strip_prefix):
        question = question[len(strip_prefix):]
    return format.format(question=question)


def r1_template(question: str, *, format: str = R1_ZERO_TEMPLATE) -> str:  # pylint: disable=redefined-builtin
    """DeepSeek-R1-Zero prompt (arXiv:2501.12948, Table 1)."""
    _check_format(format, "r1")
    return format.format(question=question)


def chat_template(question: str, *, tokenizer: Any = None, system: str | None = None,
                  suffix: str = "") -> str:
    """The question (plus ``suffix``, e.g. a boxed-answer instruction) as one chat user turn."""
    if tokenizer is None or not hasattr(tokenizer, "apply_chat_template"):
        raise ValueError("template 'chat' needs tokenizer=<object with apply_chat_template>, got "
                         f"{type(tokenizer).__name__}")
    messages = []
    if system:
        messages.append({"role": "system", "content": system})
    messages.append({"role": "user", "content": question + suffix})
    try:
        # Hugging Face tokenizers return token ids unless told otherwise.
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                                 tokenize=False)
    except TypeError:
        rendered = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
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
