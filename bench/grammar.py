"""Structured outputs and the Responses route on the embedded model, measured in one run.

- Grammar compile time: llguidance's tokenizer view (built once), a schema compiled cold, and
  the same schema again (cached).
- Constrained decoding: 4 concurrent greedy rows, 2 held to a realistic JSON schema and 2 free,
  against 4 free rows; per-row decode tok/s, medians over rounds.
- The Responses route against chat completions and the engine itself: one greedy stream each
  over a real socket (uvicorn in a thread), the same prompt and token count, interleaved rounds.
The machine is shared and noisy: compare the ratios, taken side by side in one run.
Usage: python bench/grammar.py [--tokens 64] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import threading
import time
from typing import Any

from adapters.blas import ensure_fast_blas

SETTLE = 0.5
"""Seconds of quiet before each timed run (OpenBLAS threads busy-wait after a job)."""
PROMPT = "Describe the lighthouse keeper as a game character sheet in JSON."
STOP_IDS = (1, 106)
SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 40},
        "line": {"type": "string", "maxLength": 400},
        "mood": {"enum": ["cheerful", "gloomy", "stern", "curious"]},
        "level": {"type": "integer", "minimum": 1, "maximum": 99},
        "inventory": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "item": {"type": "string", "maxLength": 30},
                    "count": {"type": "integer", "minimum": 0, "maximum": 999},
                },
                "required": ["item", "count"],
                "additionalProperties": False,
            },
            "maxItems": 8,
        },
        "alive": {"type": "boolean"},
    },
    "required": ["name", "line", "mood", "level", "inventory", "alive"],
    "additionalProperties": False,
}
"""A game character's reply: nested objects, a bounded array, enums, bounded numbers."""


def rate(stamps: list[float]) -> float:
    """Decode tokens per second after the first token."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


async def row(engine: Any, prompt: tuple[int, ...], tokens: int, grammar: Any) -> list[float]:
    """One greedy engine stream; a timestamp per token. Free rows may not stop early."""
    from server.engine.engine import GenerationRequest, SamplingParams

    params = SamplingParams(max_tokens=tokens, temperature=0.0, min_tokens=tokens)
    stamps: list[float] = []
    async for delta in engine.stream(GenerationRequest(prompt, params, grammar=grammar)):
        stamps += [time.perf_counter()] * len(delta.token_ids)
    return stamps


async def batch(engine: Any, prompt: tuple[int, ...], tokens: int, grammars: list[Any]) -> Any:
    """Rows started together; each row's timestamps."""
    await asyncio.sleep(SETTLE)
    return await asyncio.gather(*(row(engine, prompt, tokens, g) for g in grammars))


async def compile_times(engine: Any) -> dict[str, float]:
    """Tokenizer view, cold compile and cached compile, in ms."""
    from server.engine.engine import JsonGrammar

    warm = JsonGrammar(json.dumps({"type": "object"}))
    schema = JsonGrammar(json.dumps(SCHEMA, sort_keys=True))
    times = {}
    for name, grammar in (("tokenizer view + first schema", warm), ("cold", schema)):
        start = time.perf_counter()
        await engine.compile_grammar(grammar)
        times[name] = (time.perf_counter() - start) * 1e3
    cached = []
    for _ in range(20):
        start = time.perf_counter()
        await engine.compile_grammar(schema)
        cached.append((time.perf_counter() - start) * 1e3)
    times["cached"] = statistics.median(cached)
    return times


def serve(app: Any) -> tuple[Any, str]:
    """Run the app under uvicorn in its own thread; the server and its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, f"http://127.0.0.1:{port}"


def has_text(event: dict[str, Any]) -> bool:
    """Whether an SSE payload (a chat chunk or a Responses event) carries new reply text."""
    if event.get("type") == "response.output_text.delta":
        return bool(event["delta"])
    choices = event.get("choices") or [{}]
    return bool(choices[0].get("delta", {}).get("content"))


async def route_run(http: Any, path: str, body: dict[str, Any]) -> float:
    """Text pieces per second of one SSE stream, after the first piece."""
    stamps: list[float] = []
    await asyncio.sleep(SETTLE)
    async with http.stream("POST", path, json=body) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: {") and has_text(json.loads(line[6:])):
                stamps.append(time.perf_counter())
    return rate(stamps)


async def main(tokens: int, rounds: int) -> None:
    """Run every measurement and print the ratios."""
    print(ensure_fast_blas().note)
    import httpx

    from server.app import create_app
    from server.catalog import Catalog
    from server.engine.engine import Engine, JsonGrammar
    from server.settings import ServerSettings

    engine = Engine.load("embedded", max_batch=4)
    engine.start()
    prompt = tuple(
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT}], add_generation_prompt=True
        )
    )
    times = await compile_times(engine)
    print("grammar compile (ms):", {k: round(v, 2) for k, v in times.items()})

    schema = JsonGrammar(json.dumps(SCHEMA, sort_keys=True))
    free_rates, mixed_free, mixed_held, held_tokens = [], [], [], []
    await batch(engine, prompt, 8, [None, schema, None, schema])  # warm-up
    for _ in range(rounds):
        runs = await batch(engine, prompt, tokens, [None] * 4)
        free_rates += [rate(s) for s in runs]
        runs = await batch(engine, prompt, tokens, [None, schema, None, schema])
        mixed_free += [rate(runs[0]), rate(runs[2])]
        mixed_held += [rate(runs[1]), rate(runs[3])]
        held_tokens += [len(runs[1]), len(runs[3])]
    base = statistics.median(free_rates)
    held = statistics.median(mixed_held)
    beside = statistics.median(mixed_free)
    print(f"4 free rows: {base:.2f} tok/s per row")
    print(
        f"2 constrained + 2 free: constrained {held:.2f} tok/s per row ({held / base:.3f}x), "
        f"free {beside:.2f} ({beside / base:.3f}x); constrained rows ran "
        f"{min(held_tokens)}-{max(held_tokens)} tokens"
    )

    settings = ServerSettings(model="embedded", max_tokens=tokens)
    app = create_app(settings, engine, catalog=Catalog([]))
    server, url = serve(app)
    common = {"model": engine.model_id, "temperature": 0, "min_tokens": tokens}
    chat_body = {
        **common,
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": tokens,
        "stream": True,
    }
    responses_body = {
        **common,
        "input": PROMPT,
        "max_output_tokens": tokens,
        "stream": True,
        "store": False,
    }
    chat, responses = [], []
    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        warm = {"max_output_tokens": 4, "min_tokens": 4}
        await route_run(http, "/v1/responses", responses_body | warm)
        for _ in range(rounds):
            chat.append(await route_run(http, "/v1/chat/completions", chat_body))
            responses.append(await route_run(http, "/v1/responses", responses_body))
    c, r = statistics.median(chat), statistics.median(responses)
    print(f"one stream: chat {c:.2f} pieces/s, responses {r:.2f} pieces/s ({r / c:.3f}x chat)")
    server.should_exit = True
    await engine.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.rounds))
