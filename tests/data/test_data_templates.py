"""Prompt templates: plain/r1 formatting and chat rendering through a real HF tokenizer."""
import pytest

from rlvr_jax.data import templates

QUESTION = "What is {x} in 3 + {x} = 5?"  # braces inside the question must survive


def test_plain_template():
    assert templates.render_prompt("plain", QUESTION) == QUESTION
    fn = templates.make_template("plain", format="Q: {question}\nA:")
    assert fn(QUESTION) == f"Q: {QUESTION}\nA:"
    with pytest.raises(ValueError, match="exactly the field"):
        templates.make_template("plain", format="Q: {question} {hint}")
    with pytest.raises(ValueError, match="exactly the field"):
        templates.make_template("plain", format="no field")


def test_plain_template_strip_prefix():
    prefix = "State the final answer to the following arithmetic problem: "
    fn = templates.make_template("plain", format="{question}", strip_prefix=prefix)
    assert fn(prefix + "42 - 25 =") == "42 - 25 ="
    assert fn("7 + 1 =") == "7 + 1 ="  # questions without the prefix are left alone


def test_r1_template_matches_paper_wording():
    prompt = templates.render_prompt("r1", QUESTION)
    assert prompt.startswith("A conversation between User and Assistant.")
    assert "<think> reasoning process here </think> <answer> answer here </answer>" in prompt
    assert prompt.endswith(f"User: {QUESTION}. Assistant:")


class _FakeTokenizer:
    """Duck-typed tokenizer: records the call, renders a fixed format."""

    def __init__(self):
        self.calls = []

    def apply_chat_template(self, messages, add_generation_prompt=False):
        self.calls.append((messages, add_generation_prompt))
        return "".join(f"[{m['role']}]{m['content']}" for m in messages) + "[assistant]"


def test_chat_template_duck_typed():
    tok = _FakeTokenizer()
    fn = templates.make_template("chat", tokenizer=tok, system="Be brief.", suffix=" Box it.")
    assert fn("2+2?") == "[system]Be brief.[user]2+2? Box it.[assistant]"
    assert tok.calls[-1] == ([{"role": "system", "content": "Be brief."},
                              {"role": "user", "content": "2+2? Box it."}], True)
    with pytest.raises(ValueError, match="tokenizer"):
        templates.make_template("chat")
    with pytest.raises(ValueError, match="unknown prompt template"):
        templates.make_template("chatml")


def test_chat_template_with_hf_tokenizer():
    from tokenizers import Tokenizer, models  # pylint: disable=import-outside-toplevel
    from transformers import PreTrainedTokenizerFast  # pylint: disable=import-outside-toplevel

    tok = PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]")),
        unk_token="[UNK]")
    tok.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<|assistant|>{% endif %}")
    got = templates.render_prompt("chat", QUESTION, tokenizer=tok)
    assert got == f"<|user|>{QUESTION}\n<|assistant|>"


def test_apply_template_adds_prompt():
    example = {"question": "q?", "answer": "a", "metadata": {}, "task": None, "id": "0"}
    out = templates.apply_template(templates.make_template("plain", format="> {question}"), example)
    assert out["prompt"] == "> q?" and "prompt" not in example
