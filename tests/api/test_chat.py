"""Chat and text completions as the official OpenAI client sees them, on the tiny model."""

from __future__ import annotations

from typing import Any

import pytest
from openai import AsyncOpenAI

USER = [{"role": "user", "content": "Tell me about gears."}]


async def test_chat_reply_has_usage_and_adapter_fields(client: AsyncOpenAI, force: Any) -> None:
    reply = await client.chat.completions.create(
        model="pip",
        messages=USER,
        max_tokens=4,
        logit_bias=force(" cat"),
    )
    choice = reply.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == " cat" * 4
    assert choice.finish_reason == "length"
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 4
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + 4
    assert reply.model == "pip"
    assert reply.id.startswith("chatcmpl-")
    extra = reply.model_extra or {}
    assert "persona_adapter" in extra
    assert extra["persona_adapter"] is None
    assert reply.system_fingerprint


async def test_base_model_answers_under_its_id_and_configured_name(
    client: AsyncOpenAI, engine: Any, settings: Any, force: Any
) -> None:
    for model in (engine.model_id, settings.model):
        reply = await client.chat.completions.create(
            model=model, messages=USER, max_tokens=2, logit_bias=force(" cat")
        )
        assert reply.choices[0].message.content == " cat cat"


async def test_stop_text_is_cut_and_not_returned(client: AsyncOpenAI, force: Any) -> None:
    reply = await client.chat.completions.create(
        model="pip", messages=USER, max_tokens=20, stop=["cat cat"], logit_bias=force(" cat")
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == " "
    assert reply.usage is not None
    assert reply.usage.completion_tokens < 20


async def test_end_of_turn_stops_and_min_tokens_holds_it_back(
    client: AsyncOpenAI, force: Any
) -> None:
    eot = force("<end_of_turn>")
    reply = await client.chat.completions.create(
        model="pip", messages=USER, max_tokens=20, logit_bias=eot
    )
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == ""
    held = await client.chat.completions.create(
        model="pip", messages=USER, max_tokens=20, logit_bias=eot, extra_body={"min_tokens": 3}
    )
    assert held.choices[0].finish_reason == "stop"
    assert held.usage is not None
    assert held.usage.completion_tokens >= 3
    assert held.choices[0].message.content


async def test_persona_defaults_apply_field_by_field(
    client: AsyncOpenAI, force: Any, base: str
) -> None:
    # pip's card: max_tokens 5, temperature 0; the request sets neither.
    reply = await client.chat.completions.create(
        model="pip", messages=USER, logit_bias=force(" cat")
    )
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 5
    shorter = await client.chat.completions.create(
        model="pip", messages=USER, max_completion_tokens=2, logit_bias=force(" cat")
    )
    assert shorter.usage is not None
    assert shorter.usage.completion_tokens == 2
    # The base model has no card: the server default (8) applies.
    plain = await client.chat.completions.create(
        model=base, messages=USER, logit_bias=force(" cat")
    )
    assert plain.usage is not None
    assert plain.usage.completion_tokens == 8


async def test_persona_card_temperature_zero_is_deterministic(client: AsyncOpenAI) -> None:
    replies = {
        (await client.chat.completions.create(model="pip", messages=USER))
        .choices[0]
        .message.content
        for _ in range(2)
    }
    assert len(replies) == 1


async def test_persona_system_prompt_is_prepended_unless_the_request_has_one(
    client: AsyncOpenAI, base: str
) -> None:
    prompt = "You are Pip, a cheerful robot who loves gears."

    async def prompt_tokens(model: str, messages: list[dict[str, str]]) -> int:
        reply = await client.chat.completions.create(model=model, messages=messages, max_tokens=1)
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    as_pip = await prompt_tokens("pip", USER)
    as_base = await prompt_tokens(base, USER)
    spelled_out = await prompt_tokens(base, [{"role": "system", "content": prompt}, *USER])
    own_system = await prompt_tokens("pip", [{"role": "system", "content": "Hi."}, *USER])
    assert as_pip == spelled_out > as_base
    assert own_system < as_pip


async def test_seed_makes_sampling_repeatable(client: AsyncOpenAI, base: str) -> None:
    async def sample(seed: int) -> str | None:
        reply = await client.chat.completions.create(
            model=base, messages=USER, max_tokens=6, temperature=1.0, seed=seed
        )
        return reply.choices[0].message.content

    assert await sample(7) == await sample(7)


async def test_extra_body_sampling_fields_are_accepted(client: AsyncOpenAI, force: Any) -> None:
    reply = await client.chat.completions.create(
        model="pip",
        messages=USER,
        max_tokens=3,
        logit_bias=force(" cat"),
        extra_body={"top_k": 5, "min_p": 0.2, "repetition_penalty": 1.1, "min_tokens": 1},
    )
    assert reply.choices[0].message.content == " cat cat cat"


async def test_logprobs_with_top_alternatives(client: AsyncOpenAI, force: Any) -> None:
    reply = await client.chat.completions.create(
        model="pip",
        messages=USER,
        max_tokens=3,
        logprobs=True,
        top_logprobs=2,
        logit_bias=force(" cat"),
    )
    content = reply.choices[0].logprobs.content  # type: ignore[union-attr]
    assert content is not None
    assert len(content) == 3
    for item in content:
        assert item.token == " cat"
        assert item.logprob <= 0.0
        assert len(item.top_logprobs) == 2
        assert item.top_logprobs[0].token == " cat"


async def test_text_parts_and_developer_role(client: AsyncOpenAI, force: Any) -> None:
    reply = await client.chat.completions.create(
        model="pip",
        messages=[
            {"role": "developer", "content": "Be brief."},
            {
                "role": "user",
                "content": [{"type": "text", "text": "Hello "}, {"type": "text", "text": "there"}],
            },
        ],
        max_tokens=1,
        logit_bias=force(" cat"),
    )
    assert reply.choices[0].message.content == " cat"


async def test_text_completion_with_echo_and_logprobs(
    client: AsyncOpenAI, force: Any, base: str
) -> None:
    reply = await client.completions.create(
        model=base, prompt="Once upon", max_tokens=2, logit_bias=force(" cat")
    )
    assert reply.choices[0].text == " cat cat"
    assert reply.choices[0].finish_reason == "length"
    echoed = await client.completions.create(
        model="pip", prompt="Once upon", max_tokens=2, echo=True, logit_bias=force(" cat")
    )
    assert echoed.choices[0].text == "Once upon cat cat"
    scored = await client.completions.create(
        model=base, prompt="Once", max_tokens=2, logprobs=2, logit_bias=force(" cat")
    )
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.tokens == [" cat", " cat"]
    assert logprobs.text_offset == [0, 4]
    assert logprobs.top_logprobs is not None
    assert len(logprobs.top_logprobs[0]) == 2


async def test_completion_accepts_token_ids(
    client: AsyncOpenAI, engine: Any, force: Any, base: str
) -> None:
    ids = engine.tokenizer.encode("Once upon")
    reply = await client.completions.create(
        model=base, prompt=ids, max_tokens=1, logit_bias=force(" cat")
    )
    assert reply.choices[0].text == " cat"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(ids)


@pytest.mark.parametrize("model", ["pip", "juni", "BASE"])
async def test_models_list_and_retrieve(client: AsyncOpenAI, model: str, base: str) -> None:
    model = base if model == "BASE" else model
    listed = {m.id: m for m in (await client.models.list()).data}
    assert model in listed
    got = await client.models.retrieve(model)
    assert got.id == model
    assert got.owned_by == "persona-studio"
    if model != base:
        assert (got.model_extra or {})["parent"] == base


def test_prompt_has_one_bos_and_the_generation_prompt(engine: Any) -> None:
    from server.api.prompt import chat_messages, chat_prompt, text_prompts
    from server.wire.openai import ChatMessage

    tokenizer = engine.tokenizer
    bos = tokenizer.bos_token_id
    messages = chat_messages([ChatMessage(role="user", content="hi")], "You are Pip.")
    ids = chat_prompt(tokenizer, messages)
    assert ids[0] == bos
    assert ids.count(bos) == 1
    assert tokenizer.decode(list(ids)).endswith("<start_of_turn>model\n")
    assert "You are Pip." in tokenizer.decode(list(ids))
    [doubled] = text_prompts(tokenizer, "<bos>Once upon", engine.vocab_size)
    assert doubled.count(bos) == 1
    assert doubled[0] == bos
    [ids_doubled] = text_prompts(tokenizer, [bos, bos, 818], engine.vocab_size)
    assert ids_doubled == (bos, 818)


@pytest.mark.parametrize("spelling", ["<end_of_turn>", "<start_of_turn>", "<bos>", "<eos>"])
async def test_control_token_text_in_messages_stays_text(
    client: AsyncOpenAI, engine: Any, base: str, spelling: str
) -> None:
    from server.api.prompt import chat_messages, chat_prompt
    from server.wire.openai import ChatMessage

    tokenizer = engine.tokenizer
    as_text = tokenizer._tokenizer.encode(
        spelling, add_special_tokens=False, split_special_tokens=True
    )
    assert len(as_text) > 1

    async def prompt_tokens(content: str) -> int:
        reply = await client.chat.completions.create(
            model=base, messages=[{"role": "user", "content": content}], max_tokens=1
        )
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    assert await prompt_tokens(f"Say hi{spelling}") == await prompt_tokens("Say hi") + len(as_text)
    special = tokenizer.convert_tokens_to_ids(spelling)
    for role in ("system", "user", "assistant"):
        messages = [ChatMessage(role=role, content=f"a{spelling}b"), ChatMessage("user", "c")]
        ids = chat_prompt(tokenizer, chat_messages(messages, None))
        plain = chat_prompt(
            tokenizer, chat_messages([ChatMessage(role, "ab"), ChatMessage("user", "c")], None)
        )
        assert ids.count(special) == plain.count(special), role


BYTES = (0xEA, 0x99, 0xAE, 0x80, 0x81)


async def test_byte_tokens_get_their_own_logprob_entries(
    client: AsyncOpenAI, engine: Any, base: str
) -> None:
    byte_ids = [engine.tokenizer.convert_tokens_to_ids(f"<0x{b:02X}>") for b in BYTES]
    bias = {str(t): 100 for t in byte_ids}
    scored = await client.completions.create(
        model=base, prompt="ꙮꙮꙮ", max_tokens=3, temperature=0, logprobs=5, logit_bias=bias
    )
    logprobs = scored.choices[0].logprobs
    assert logprobs is not None
    assert logprobs.top_logprobs is not None
    spelled = {f"bytes:\\x{b:02x}" for b in BYTES}
    for top in logprobs.top_logprobs:
        assert set(top) == spelled
    assert logprobs.tokens is not None
    assert set(logprobs.tokens) <= spelled
    text = scored.choices[0].text
    assert logprobs.text_offset is not None
    assert all(0 <= o <= len(text) for o in logprobs.text_offset)
    assert logprobs.text_offset == sorted(logprobs.text_offset)
    chat = await client.chat.completions.create(
        model=base,
        messages=[{"role": "user", "content": "ꙮ"}],
        max_tokens=2,
        temperature=0,
        logprobs=True,
        top_logprobs=5,
        logit_bias=bias,
    )
    assert chat.choices[0].logprobs is not None
    for entry in chat.choices[0].logprobs.content or []:
        assert len(entry.bytes or []) == 1
        assert {tuple(t.bytes or []) for t in entry.top_logprobs} == {(b,) for b in BYTES}
