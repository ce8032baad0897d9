"""Constrained decoding on the tiny model: random weights, yet every finished reply fits the schema.

The tiny model's weights are random, so whatever JSON comes out is the mask's doing alone.
`jsonschema` is the outside oracle for validity.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import jsonschema
import pytest

from server.engine.engine import (
    Delta,
    Engine,
    GenerationRequest,
    InvalidParams,
    JsonGrammar,
    SamplingParams,
)

SCHEMA = {
    "type": "object",
    "properties": {
        "line": {"type": "string", "maxLength": 12},
        "mood": {"enum": ["happy", "sad", "calm"]},
        "tags": {
            "type": "array",
            "items": {"type": "string", "maxLength": 5},
            "minItems": 1,
            "maxItems": 3,
        },
        "stats": {
            "type": "object",
            "properties": {
                "level": {"type": "integer", "minimum": 0, "maximum": 99},
                "alive": {"type": "boolean"},
            },
            "required": ["level", "alive"],
            "additionalProperties": False,
        },
    },
    "required": ["line", "mood", "tags", "stats"],
    "additionalProperties": False,
}


@pytest.fixture(scope="module")
def engine(make_engine: Callable[..., Engine]) -> Iterator[Engine]:
    """One started engine on the tiny model for the whole module."""
    eng = make_engine(max_batch=4)
    eng.start()
    yield eng
    asyncio.run(eng.aclose())


def grammar(schema: dict[str, Any]) -> JsonGrammar:
    """The engine's form of a schema."""
    return JsonGrammar(json.dumps(schema, sort_keys=True))


def prompt(engine: Engine, text: str) -> tuple[int, ...]:
    """Token ids of a one-turn chat prompt."""
    return tuple(
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True
        )
    )


async def run(engine: Engine, request: GenerationRequest) -> tuple[str, Delta]:
    """The text of one sequence and its last delta."""
    text, last = "", None
    async for delta in engine.stream(request):
        text += delta.text
        last = delta
    assert last is not None
    return text, last


async def test_finished_replies_match_the_schema(engine: Engine) -> None:
    schema = grammar(SCHEMA)
    await engine.compile_grammar(schema)
    requests = [
        GenerationRequest(
            prompt(engine, f"character {n}"),
            SamplingParams(max_tokens=160, temperature=1.0, seed=n),
            grammar=schema,
        )
        for n in range(6)
    ]
    results = await asyncio.gather(*(run(engine, r) for r in requests))
    finished = [text for text, last in results if last.finish_reason == "stop"]
    assert len(finished) >= 4, results
    for text in finished:
        jsonschema.validate(json.loads(text), SCHEMA)
    for _, last in results:
        if last.finish_reason == "length":
            assert last.token_count == 160


async def test_grammar_rows_leave_their_neighbours_alone(engine: Engine) -> None:
    """Unconstrained rows decode the same tokens beside grammar rows as on their own.

    Greedy rows: a batch changes logits by ~1e-6, enough to change a seeded draw, not an argmax.
    """
    plain = [
        GenerationRequest(
            prompt(engine, f"plain {n}"), SamplingParams(max_tokens=24, temperature=0)
        )
        for n in range(2)
    ]
    alone = [await run(engine, r) for r in plain]
    schema = grammar({"type": "object"})
    await engine.compile_grammar(schema)
    constrained = [
        GenerationRequest(
            prompt(engine, f"json {n}"),
            SamplingParams(max_tokens=24, temperature=0.0),
            grammar=schema,
        )
        for n in range(2)
    ]
    together = await asyncio.gather(*(run(engine, r) for r in [*plain, *constrained]))
    assert [t for t, _ in together[:2]] == [t for t, _ in alone]
    for text, last in together[2:]:
        assert text.startswith("{")
        if last.finish_reason == "stop":
            assert isinstance(json.loads(text), dict)


async def test_min_tokens_and_stop_strings_do_not_break_the_json(engine: Engine) -> None:
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"]}
    schema["additionalProperties"] = False
    request = GenerationRequest(
        prompt(engine, "yes or no"),
        SamplingParams(max_tokens=40, temperature=0.0, min_tokens=30, stop=('"',)),
        grammar=grammar(schema),
    )
    text, last = await run(engine, request)
    assert last.finish_reason == "stop"
    jsonschema.validate(json.loads(text), schema)
    # The schema allows one object of a few tokens: end-of-turn came once it was complete.
    assert last.token_count < 30


async def test_cut_by_max_tokens_is_length(engine: Engine) -> None:
    request = GenerationRequest(
        prompt(engine, "long"),
        SamplingParams(max_tokens=3, temperature=0.0),
        grammar=grammar({"type": "object", "properties": {"text": {"type": "string"}}}),
    )
    _, last = await run(engine, request)
    assert last.finish_reason == "length"


async def test_compiled_grammars_are_cached(engine: Engine) -> None:
    schema = grammar({"type": "object", "properties": {"cached": {"type": "integer"}}})
    await engine.compile_grammar(schema)
    before = engine.grammar_compiles
    await engine.compile_grammar(schema)
    assert engine.grammar_compiles == before


async def test_an_unenforceable_keyword_is_named(engine: Engine) -> None:
    schema = grammar({"type": "array", "items": {"type": "integer"}, "uniqueItems": True})
    with pytest.raises(InvalidParams, match="uniqueItems"):
        await engine.compile_grammar(schema)


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "object", "propertyNames": {"pattern": "^a"}}, "propertyNames"),
        ({"type": "object", "dependentRequired": {"a": ["b"]}}, "dependentRequired"),
        ({"type": "string", "format": "no-such-format"}, "no-such-format"),
        ({"type": 5}, "type"),
        ({"$ref": "#/$defs/missing"}, "missing"),
    ],
)
async def test_schemas_that_cannot_be_enforced_say_why(
    engine: Engine, schema: dict[str, Any], words: str
) -> None:
    with pytest.raises(InvalidParams, match=words):
        await engine.compile_grammar(grammar(schema))
