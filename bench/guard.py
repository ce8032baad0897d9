"""The persona guard's cost on the embedded model: time to first token and decode speed of the
same Juni requests with the guard on and off, interleaved in one process and one engine.

Two apps share one engine: one serves Juni with its guard checking each prompt (the card's
`check_replies` off, since a checked reply is held back whole and its first token then arrives
with its last), the other with `--no-guard`. Every request streams a clear prompt with greedy
decoding and `min_tokens` = `max_tokens`, so each run decodes exactly `--tokens` tokens. Prints
the medians and their ratios.
Usage: python bench/guard.py [--tokens 32] [--reps 8]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters.blas import ensure_fast_blas

PROMPTS = [
    "why do crabs walk sideways",
    "what do puffins eat",
    "how does a lighthouse lamp turn around",
    "why is the sea salty",
]


async def one(http: Any, prompt: str, tokens: int) -> tuple[float, float, str]:
    """(time to first token, decode tokens/s, guard action) of one streamed request."""
    body = {
        "model": "juni",
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        "temperature": 0,
        "max_tokens": tokens,
        "min_tokens": tokens,
    }
    start = time.perf_counter()
    first = last = 0.0
    pieces = 0
    action = "off"
    async with http.stream("POST", "/v1/chat/completions", json=body) as reply:
        if reply.status_code != 200:
            raise SystemExit(f"request failed: {reply.status_code} {await reply.aread()!r}")
        async for line in reply.aiter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            action = (chunk.get("persona_guard") or {}).get("action", action)
            if chunk["choices"] and chunk["choices"][0]["delta"].get("content"):
                now = time.perf_counter()
                first = first or now
                last = now
                pieces += 1
    rate = (pieces - 1) / max(last - first, 1e-9)
    return first - start, rate, action


async def main(tokens: int, reps: int) -> None:
    """Measure and print the table."""
    import httpx
    import uvicorn

    from data.personas import sample_personas_dir
    from server.app import create_app
    from server.catalog import Catalog
    from server.engine.engine import Engine
    from server.settings import ServerSettings

    engine = Engine.load("embedded")
    engine.start()
    folder = Path(tempfile.mkdtemp()) / "juni"
    folder.mkdir()
    card = (sample_personas_dir() / "juni" / "persona.toml").read_text()
    (folder / "persona.toml").write_text(
        card.replace("check_replies = true", "check_replies = false")
    )
    apps = {}
    for guard in (True, False):
        settings = ServerSettings(personas_dirs=(str(folder.parent),), guard=guard,
                                  adapters_dir=tempfile.mkdtemp())  # fmt: skip
        apps[guard] = create_app(
            settings, engine, catalog=Catalog.discover(settings.persona_paths())
        )
    results: dict[bool, list[tuple[float, float, str]]] = {True: [], False: []}
    # Real HTTP on loopback: an in-process ASGI transport hands over a stream only once it ends.
    servers = {g: uvicorn.Server(uvicorn.Config(a, port=0, log_level="warning"))
               for g, a in apps.items()}  # fmt: skip
    tasks = [asyncio.create_task(s.serve()) for s in servers.values()]
    async with asyncio.timeout(120):
        while not all(s.started for s in servers.values()):  # noqa: ASYNC110 (uvicorn's flag)
            await asyncio.sleep(0.05)
    ports = {g: s.servers[0].sockets[0].getsockname()[1] for g, s in servers.items()}
    clients = {g: httpx.AsyncClient(base_url=f"http://127.0.0.1:{p}", timeout=600)
               for g, p in ports.items()}  # fmt: skip
    for guard in (True, False):  # warm-up: kernels, the guard file, templates
        await one(clients[guard], PROMPTS[0], 4)
    for rep in range(reps):
        prompt = PROMPTS[rep % len(PROMPTS)]
        for guard in (True, False) if rep % 2 == 0 else (False, True):
            results[guard].append(await one(clients[guard], prompt, tokens))
    for client in clients.values():
        await client.aclose()
    for server in servers.values():
        server.should_exit = True
    await asyncio.gather(*tasks)
    await engine.aclose()
    ttft = {g: statistics.median(r[0] for r in runs) for g, runs in results.items()}
    rate = {g: statistics.median(r[1] for r in runs) for g, runs in results.items()}
    print(f"juni, {reps} streamed requests each, {tokens} tokens, greedy, interleaved")
    print(f"{'':<10}{'TTFT (s)':>10}{'decode tok/s':>14}")
    for guard, name in ((False, "no guard"), (True, "guard")):
        print(f"{name:<10}{ttft[guard]:>10.3f}{rate[guard]:>14.2f}")
    print(f"ratio     {ttft[True] / ttft[False]:>10.3f}{rate[True] / rate[False]:>14.3f}")
    print("actions:", sorted({r[2] for r in results[True]}))


if __name__ == "__main__":
    ensure_fast_blas()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--reps", type=int, default=8)
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.reps))
