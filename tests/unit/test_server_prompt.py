"""Messages to template input: persona system prompt, folding, refusals; context fitting."""

from __future__ import annotations

import msgspec
import pytest

from server.api.params import check_stop, fit_context, parse_logit_bias
from server.api.prompt import chat_messages
from server.errors import ContextLengthError, InvalidRequestError, UnsupportedError
from server.wire.openai import ChatMessage

PERSONA = "You are Pip."


def messages(*items: dict[str, object]) -> list[ChatMessage]:
    return msgspec.convert(list(items), list[ChatMessage])


def test_persona_prompt_is_prepended() -> None:
    got = chat_messages(messages({"role": "user", "content": "hi"}), PERSONA)
    assert got == [{"role": "system", "content": PERSONA}, {"role": "user", "content": "hi"}]


def test_request_system_message_replaces_the_persona_prompt() -> None:
    got = chat_messages(
        messages(
            {"role": "developer", "content": "Be brief."},
            {"role": "system", "content": "Be kind."},
            {"role": "user", "content": "hi"},
        ),
        PERSONA,
    )
    assert got[0] == {"role": "system", "content": "Be brief.\n\nBe kind."}
    assert len(got) == 2


def test_text_parts_are_joined() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]
    got = chat_messages(messages({"role": "user", "content": parts}), None)
    assert got == [{"role": "user", "content": "ab"}]


def test_image_parts_are_refused_by_position() -> None:
    parts = [{"type": "text", "text": "a"}, {"type": "image_url", "image_url": {"url": "x"}}]
    with pytest.raises(UnsupportedError) as info:
        chat_messages(messages({"role": "user", "content": parts}), None)
    assert info.value.param == "messages[0].content[1].type"
    assert "image_url" in info.value.message


def test_a_later_system_message_opens_the_next_user_turn() -> None:
    got = chat_messages(
        messages(
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello"},
            {"role": "system", "content": "Be brief."},
            {"role": "developer", "content": "No lists."},
            {"role": "user", "content": "why?"},
        ),
        PERSONA,
    )
    assert got == [
        {"role": "system", "content": PERSONA},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "Be brief.\n\nNo lists.\n\nwhy?"},
    ]


def test_a_trailing_system_message_is_a_user_turn_of_its_own() -> None:
    got = chat_messages(
        messages({"role": "user", "content": "hi"}, {"role": "system", "content": "x"}), None
    )
    assert got == [{"role": "user", "content": "hi"}, {"role": "user", "content": "x"}]


def test_system_messages_alone_are_one_user_turn() -> None:
    got = chat_messages(
        messages({"role": "system", "content": "x"}, {"role": "developer", "content": "y"}),
        PERSONA,
    )
    assert got == [{"role": "user", "content": "x\n\ny"}]


def test_assistant_without_tool_calls_is_accepted() -> None:
    for empty in ([], None):
        got = chat_messages(
            messages(
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo", "tool_calls": empty},
                {"role": "user", "content": "ok"},
            ),
            None,
        )
        assert got[1] == {"role": "assistant", "content": "yo"}


def test_assistant_tool_calls_are_refused() -> None:
    with pytest.raises(UnsupportedError, match="tool_calls"):
        chat_messages(messages({"role": "assistant", "tool_calls": [{"id": "1"}]}), None)


def test_default_budget_is_trimmed_but_explicit_one_must_fit() -> None:
    assert fit_context(100, 512, explicit=False, context_length=300) == 200
    assert fit_context(100, 50, explicit=True, context_length=300) == 50
    with pytest.raises(ContextLengthError, match="maximum context length is 300") as info:
        fit_context(100, 250, explicit=True, context_length=300)
    assert info.value.code == "context_length_exceeded"
    with pytest.raises(ContextLengthError):
        fit_context(300, 10, explicit=False, context_length=300)


def test_logit_bias_keys_must_be_token_ids() -> None:
    assert parse_logit_bias({"5": 10.0, "7": -100}, 100) == ((5, 10.0), (7, -100.0))
    for key in ("abc", "100", "-1"):
        with pytest.raises(InvalidRequestError, match="logit_bias"):
            parse_logit_bias({key: 1.0}, 100)


def test_empty_stop_strings_are_refused() -> None:
    assert check_stop(["a", "b"]) == ("a", "b")
    with pytest.raises(InvalidRequestError):
        check_stop([""])


def test_post_history_instructions_end_the_last_user_turn() -> None:
    turns = messages(
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "again"},
    )
    got = chat_messages(turns, PERSONA, "Stay brief.")
    assert got[-1] == {"role": "user", "content": "again\n\nStay brief."}
    assert got[1] == {"role": "user", "content": "hi"}
    own = chat_messages(
        messages({"role": "system", "content": "x"}, {"role": "user", "content": "a"}),
        PERSONA,
        "Stay brief.",
    )
    assert own[-1] == {"role": "user", "content": "a"}
