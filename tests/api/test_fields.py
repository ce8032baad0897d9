"""Roles anywhere, prefill, and fields of other servers: implemented, or refused by name."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest
from openai import AsyncOpenAI, BadRequestError

from server.wire.foreign import REFUSED

USER = [{"role": "user", "content": "Tell me about gears."}]


async def test_system_and_developer_messages_anywhere_are_accepted(
    client: AsyncOpenAI, base: str
) -> None:
    for messages in (
        [
            {"role": "user", "content": "hi"},
            {"role": "assistant", "content": "hello", "tool_calls": []},
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "why?"},
        ],
        [{"role": "system", "content": "Tell a story."}],
        [{"role": "developer", "content": "Tell a story."}, {"role": "system", "content": "x"}],
        [{"role": "user", "content": "hi"}, {"role": "developer", "content": "Answer."}],
    ):
        reply = await client.chat.completions.create(model=base, messages=messages, max_tokens=1)  # type: ignore[arg-type]
        assert reply.choices[0].finish_reason in ("stop", "length")


async def test_assistant_tool_calls_null_or_empty_mean_none(http: httpx2.AsyncClient) -> None:
    for empty in ([], None):
        body = {
            "model": "pip",
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo", "tool_calls": empty},
                {"role": "user", "content": "ok"},
            ],
        }
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200


async def test_prefill_continues_the_assistant_message_in_its_own_turn(
    client: AsyncOpenAI, engine: Any, force: Any, base: str
) -> None:
    from server.api.prompt import chat_prompt

    opening = "Once upon a time"
    messages = [{"role": "user", "content": "Tell a story."}]
    prefilled = [*messages, {"role": "assistant", "content": opening}]
    ids = chat_prompt(engine.tokenizer, prefilled, add_generation_prompt=False,
                      continue_final_message=True)  # fmt: skip
    opening_ids = list(engine.tokenizer.encode(opening, add_special_tokens=False))
    assert list(ids[-len(opening_ids) :]) == opening_ids
    assert ids.count(106) == 1  # only the user turn is closed
    assert ids.count(105) == 2  # the user turn and the model turn being continued
    reply = await client.chat.completions.create(
        model=base,
        messages=prefilled,  # type: ignore[arg-type]
        max_tokens=2,
        logit_bias=force(" cat"),
        extra_body={"continue_final_message": True, "add_generation_prompt": False},
    )
    assert reply.choices[0].message.content == " cat cat"
    fresh = await client.chat.completions.create(
        model=base,
        messages=prefilled,
        max_tokens=1,  # type: ignore[arg-type]
    )
    assert reply.usage is not None
    assert fresh.usage is not None
    # Without prefill the assistant turn is closed and a new one opened:
    # <end_of_turn> \n <start_of_turn> model \n.
    assert fresh.usage.prompt_tokens == reply.usage.prompt_tokens + 5


async def test_add_generation_prompt_false_opens_no_turn(client: AsyncOpenAI, base: str) -> None:
    async def prompt_tokens(**extra: Any) -> int:
        reply = await client.chat.completions.create(
            model=base,
            messages=USER,
            max_tokens=1,
            extra_body=extra,  # type: ignore[arg-type]
        )
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    assert await prompt_tokens() == await prompt_tokens(add_generation_prompt=False) + 3


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({"continue_final_message": True, "add_generation_prompt": True}, "cannot both"),
        ({"continue_final_message": True}, "assistant message last"),
    ],
)
async def test_bad_prefill_requests_are_400(
    client: AsyncOpenAI, base: str, extra: dict[str, Any], words: str
) -> None:
    with pytest.raises(BadRequestError, match=words):
        await client.chat.completions.create(model=base, messages=USER, extra_body=extra)  # type: ignore[arg-type]


ON = {
    "best_of": 2, "use_beam_search": True, "length_penalty": 0.5, "echo": True,
    "ignore_eos": True, "stop_token_ids": [5], "include_stop_str_in_output": True,
    "skip_special_tokens": False, "spaces_between_special_tokens": False, "prompt_logprobs": 1,
    "allowed_token_ids": [5], "bad_words": ["x"], "truncate_prompt_tokens": 5,
    "return_tokens_as_token_ids": True, "add_special_tokens": True, "chat_template": "{{x}}",
    "chat_template_kwargs": {"a": 1}, "documents": [{"text": "x"}], "mm_processor_kwargs": {"a": 1},
    "logits_processors": ["x"], "priority": 1, "guided_json": {"type": "object"},
    "guided_regex": "a+",
    "guided_choice": ["a"], "guided_grammar": "root ::= x", "guided_decoding_backend": "x",
    "guided_whitespace_pattern": " ", "structured_outputs": {"json": {}}, "n_predict": 5,
    "typical_p": 0.5, "tfs_z": 0.5, "top_n_sigma": 1.0, "mirostat": 2, "mirostat_tau": 5.0,
    "mirostat_eta": 0.1, "dynatemp_range": 0.5, "xtc_probability": 0.5, "dry_multiplier": 0.8,
    "repeat_penalty": 1.2, "repeat_last_n": 64, "penalize_nl": True, "samplers": ["top_k"],
    "grammar": "root ::= x", "json_schema": {"type": "object"}, "n_probs": 3, "n_keep": 5,
    "image_data": [{"data": "x"}], "options": {"temperature": 0.2}, "format": "json",
    "keep_alive": "5m", "think": True, "raw": True, "template": "{{x}}", "context": [1, 2],
    "images": ["x"],
}  # fmt: skip
"""A value that turns each refused field on (fields always off need no test value)."""
ALWAYS_OFF = {"mirostat_tau", "mirostat_eta", "repeat_last_n"}


def test_every_refused_field_has_a_test_value() -> None:
    assert set(REFUSED) == set(ON)


@pytest.mark.parametrize("name", sorted(set(ON) - ALWAYS_OFF))
async def test_other_servers_fields_are_refused_by_name(
    http: httpx2.AsyncClient, base: str, name: str
) -> None:
    paths = ["/v1/chat/completions"] + ([] if name in ("echo", "best_of") else ["/v1/completions"])
    for path in paths:
        body = {"model": base, "max_tokens": 1, name: ON[name]}
        body |= {"messages": USER} if "chat" in path else {"prompt": "Once"}
        response = await http.post(path, json=body)
        assert response.status_code == 400, (path, response.text)
        error = response.json()["error"]
        assert error["param"] == name
        assert f"'{name}' is not supported" in error["message"]


async def test_fields_at_their_off_values_and_unknown_fields_are_accepted(
    http: httpx2.AsyncClient, base: str
) -> None:
    body = {
        "model": base,
        "messages": USER,
        "max_tokens": 1,
        "typical_p": 1,
        "mirostat": 0,
        "use_beam_search": False,
        "skip_special_tokens": True,
        "stop_token_ids": [],
        "best_of": 1,
        "keep_alive": None,
        "mirostat_tau": 5,
        "a_future_field": {"x": 1},
    }
    response = await http.post("/v1/chat/completions", json=body)
    assert response.status_code == 200, response.text
