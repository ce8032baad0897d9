"""Time to first token along a conversation on the embedded model, with the prefix cache on and
off, side by side in one process.

Two engines load the embedded model, one with the prefix cache (the default budget) and one
without. `--conversations` conversations run at once, each for `--turns` turns; at every turn
the same prompts (the whole history so far, through the server's chat template) go first to the
engine without the cache, then to the one with it, each after a pause. Replies are greedy and
exactly `--tokens` long, taken from the cached engine's reply (the uncached one gives the same
tokens). Prints the median time to first token at turns 1, 8 and 16 and each one's ratio to
turn 1.
Usage: python bench/prefix_cache.py [--conversations 2] [--turns 16] [--tokens 24]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from adapters.blas import ensure_fast_blas

SYSTEM = "You are Wren, a lighthouse keeper on a windy island. You answer warmly and briefly."
QUESTIONS = [
    "Good morning! How was the night at the lighthouse?",
    "What do you have for breakfast out there?",
    "How often does the supply boat come?",
    "Which birds nest on the island this time of year?",
    "What is the hardest part of keeping the lamp lit?",
    "Do you ever get lonely in winter?",
    "Tell me about the worst storm you have seen.",
    "How do you clean the big lens?",
    "What books are on your shelf right now?",
    "Have you ever rescued anyone from the water?",
    "What does the fog horn sound like from inside?",
    "Which season do you like best, and why?",
    "What would you tell someone who wants your job?",
    "Do you keep a logbook? What goes in it?",
    "What do you cook when the boat is late?",
    "Thank you for the chat. Any last words of advice?",
]
MARKS = (1, 8, 16)
PAUSE = 1.0
"""Seconds of rest before each engine's requests."""


async def first_token(engine: Any, prompt: tuple[int, ...], tokens: int) -> tuple[float, str]:
    """(seconds to the first Delta, reply text) of one greedy sequence."""
    from server.engine.engine import GenerationRequest, SamplingParams

    params = SamplingParams(max_tokens=tokens, min_tokens=tokens, temperature=0.0)
    start = time.perf_counter()
    first = 0.0
    text = ""
    async for delta in engine.stream(GenerationRequest(prompt, params)):
        first = first or time.perf_counter() - start
        text += delta.text
    return first, text


async def main(conversations: int, turns: int, tokens: int) -> None:
    """Run the conversations and print the table."""
    from server.api.prompt import chat_prompt
    from server.engine.engine import Engine
    from server.settings import ServerSettings

    budget = ServerSettings().prefix_cache_bytes
    off = Engine.load("embedded", prefix_cache_bytes=0)
    on = Engine.load("embedded", prefix_cache_bytes=budget)
    for engine in (off, on):
        engine.start()
        # Warm up (first-call costs), on a prompt that shares no reusable prefix with the rest.
        await first_token(
            engine, chat_prompt(engine.tokenizer, [{"role": "user", "content": "Hi"}]), 4
        )
    histories = [
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QUESTIONS[c]}]
        for c in range(conversations)
    ]
    times: dict[str, dict[int, list[float]]] = {"off": {}, "on": {}}
    lengths: dict[int, int] = {}
    for turn in range(1, turns + 1):
        prompts = [chat_prompt(on.tokenizer, h) for h in histories]
        lengths[turn] = max(len(p) for p in prompts)
        # The same order at every turn, with a pause first: OpenBLAS threads keep spinning for
        # a while after their work, and whichever engine ran last would slow the next one.
        await asyncio.sleep(PAUSE)
        found_off = await asyncio.gather(*(first_token(off, p, tokens) for p in prompts))
        await asyncio.sleep(PAUSE)
        found_on = await asyncio.gather(*(first_token(on, p, tokens) for p in prompts))
        times["off"][turn] = [t for t, _ in found_off]
        times["on"][turn] = [t for t, _ in found_on]
        for c, (history, (_, reply)) in enumerate(zip(histories, found_on, strict=True)):
            question = QUESTIONS[(c + turn) % len(QUESTIONS)]
            history += [
                {"role": "assistant", "content": reply},
                {"role": "user", "content": question},
            ]
        print(
            f"turn {turn:2d}: {lengths[turn]:4d} prompt tokens, "
            f"off {statistics.median(times['off'][turn]):.2f} s, "
            f"on {statistics.median(times['on'][turn]):.2f} s",
            flush=True,
        )
    stats = on.stats()
    for engine in (off, on):
        await engine.aclose()
    marks = [m for m in MARKS if m <= turns]
    print()
    print(f"{conversations} conversations at once, replies of {tokens} tokens, greedy")
    print("| turn | prompt tokens | TTFT off ÷ turn 1 | TTFT on ÷ turn 1 | on ÷ off |")
    print("|---:|---:|---:|---:|---:|")
    base = {k: statistics.median(v[1]) for k, v in times.items()}
    for m in marks:
        t_off, t_on = statistics.median(times["off"][m]), statistics.median(times["on"][m])
        print(
            f"| {m} | {lengths[m]} | {t_off / base['off']:.2f} | {t_on / base['on']:.2f} "
            f"| {t_on / t_off:.2f} |"
        )
    print(
        f"\nprefix cache: {stats.prefix_cache_hits} hits, {stats.prefix_cache_misses} misses, "
        f"{stats.prefix_cache_reused_tokens} prompt tokens reused, "
        f"{stats.prefix_cache_bytes / 2**20:.1f} MiB held of {budget / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=2)
    parser.add_argument("--turns", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=24)
    args = parser.parse_args()
    print(f"BLAS: {ensure_fast_blas()}")
    asyncio.run(main(args.conversations, args.turns, args.tokens))
