"""The Gemma 3 chat template renders exactly as Gemma expects."""

from __future__ import annotations

import jinja2

from adapters.chat_template import GEMMA3_TEMPLATE


def render(messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
    env = jinja2.Environment(trim_blocks=True, lstrip_blocks=True)
    return env.from_string(GEMMA3_TEMPLATE).render(
        messages=messages, bos_token="<bos>", add_generation_prompt=add_generation_prompt
    )


def test_single_user_turn_with_generation_prompt() -> None:
    text = render([{"role": "user", "content": "Hello"}])
    assert text == "<bos><start_of_turn>user\nHello<end_of_turn>\n<start_of_turn>model\n"


def test_system_prompt_folds_into_first_user_turn() -> None:
    text = render(
        [
            {"role": "system", "content": "You are Pip."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello there!"},
            {"role": "user", "content": "Again"},
        ]
    )
    assert text == (
        "<bos><start_of_turn>user\nYou are Pip.\n\nHi<end_of_turn>\n"
        "<start_of_turn>model\nHello there!<end_of_turn>\n"
        "<start_of_turn>user\nAgain<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_no_generation_prompt_ends_after_last_turn() -> None:
    text = render(
        [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
        add_generation_prompt=False,
    )
    assert text.endswith("<start_of_turn>model\nYo<end_of_turn>\n")
    assert text.count("<bos>") == 1
