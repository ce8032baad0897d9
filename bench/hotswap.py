"""Adapter hot swap on the embedded model: persona studio against mlx_lm.server, in one run.

persona studio: a checkpoint is staged, its manifest renamed into place, and the clock runs until
the first streamed token of the next request (sent when the SSE `loaded` event arrives) carries
the new version. mlx_lm.server (a subprocess on the same model) switches adapters per request
through its `adapters` field; the clock runs to the first token of each request that switches.
Also prints decode throughput with an active adapter against the base model alone.
Usage: python bench/hotswap.py [--swaps 20] [--mlx-swaps 6] [--tokens 64] [--quick] [--json PATH]
`--quick` runs 8 swaps and leaves out mlx_lm.server; `--json` also writes the p50s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from adapters.blas import ensure_fast_blas

PERSONA = "bench"
CARD = f'name = "{PERSONA}"\nsystem_prompt = "You are Bench."\n'
MESSAGES = [{"role": "user", "content": "Hi"}]
RANK, LAYERS, SCALE = 8, 8, 20.0


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(values: list[float]) -> str:
    """`p50 / p90` in milliseconds (nearest rank)."""
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return f"{statistics.median(ordered) * 1000:8.1f} / {p90 * 1000:8.1f}"


def stage(run_dir: Path, model_dir: Path, step: int) -> tuple[Path, Path]:
    """Write a random checkpoint except for its manifest; return (temp manifest, final name)."""
    import mlx.core as mx

    from adapters.base import content_hash
    from adapters.manifest import CONFIG, MANIFEST, WEIGHTS, LoraParams, Manifest, encode_manifest
    from adapters.registry import sha256_file, step_dirname

    config = json.loads((model_dir / "config.json").read_text())
    hidden, inter = config["hidden_size"], config["intermediate_size"]
    q = config["num_attention_heads"] * config["head_dim"]
    kv = config["num_key_value_heads"] * config["head_dim"]
    dims = {
        "self_attn.q_proj": (hidden, q),
        "self_attn.k_proj": (hidden, kv),
        "self_attn.v_proj": (hidden, kv),
        "self_attn.o_proj": (q, hidden),
        "mlp.gate_proj": (hidden, inter),
        "mlp.up_proj": (hidden, inter),
        "mlp.down_proj": (inter, hidden),
    }
    total = config["num_hidden_layers"]
    mx.random.seed(step)
    weights = {}
    for layer in range(total - LAYERS, total):
        for key, (d_in, d_out) in dims.items():
            name = f"model.layers.{layer}.{key}"
            weights[f"{name}.lora_a"] = mx.random.normal((d_in, RANK)) * 0.01
            weights[f"{name}.lora_b"] = mx.random.normal((RANK, d_out)) * 0.01
    folder = run_dir / "checkpoints" / step_dirname(step)
    folder.mkdir(parents=True)
    mx.save_safetensors(str(folder / WEIGHTS), weights)
    adapter_config = {
        "fine_tune_type": "lora",
        "num_layers": LAYERS,
        "lora_parameters": {"rank": RANK, "scale": SCALE, "dropout": 0.0, "keys": list(dims)},
    }
    (folder / CONFIG).write_text(json.dumps(adapter_config))
    lora = LoraParams(RANK, SCALE, 0.0, LAYERS, list(dims), "lora")
    manifest = Manifest(
        PERSONA, run_dir.name, step, "embedded", content_hash(model_dir), lora,
        sha256_file(folder / WEIGHTS), time.time(),
    )  # fmt: skip
    staged = folder / f".{MANIFEST}.staged"
    staged.write_bytes(encode_manifest(manifest))
    with staged.open("rb") as handle:
        os.fsync(handle.fileno())
    return staged, folder / MANIFEST


async def sse_events(http: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    """Adapter events from the server, as dicts."""
    async with http.stream("GET", "/v1/adapters/events") as response:
        data = ""
        async for line in response.aiter_lines():
            if line.startswith("data:"):
                data = line.partition(":")[2].strip()
            elif not line and data:
                yield json.loads(data)
                data = ""
            elif line.startswith(":") and not data:
                yield {"type": "comment"}


async def first_token(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[float, Any]:
    """Send a streaming chat request; return the time its first content chunk arrived."""
    async with http.stream("POST", "/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if line.startswith("data:") and "[DONE]" not in line:
                chunk = json.loads(line[5:])
                choices = chunk.get("choices") or []
                if choices and choices[0].get("delta", {}).get("content"):
                    return time.perf_counter(), chunk
    raise RuntimeError("the stream ended without content")


async def studio(model_dir: Path, home: Path, swaps: int, tokens: int) -> dict[str, Any]:
    """Swap latency and adapter throughput cost in persona studio."""
    import uvicorn

    from adapters.registry import ModelRef, Registry
    from server.api.catalog import Catalog
    from server.app import create_app
    from server.engine.engine import Engine, GenerationRequest, SamplingParams
    from server.hotswap.service import AdapterService
    from server.settings import ServerSettings

    engine = await asyncio.to_thread(Engine.load, "embedded")
    engine.start()
    catalog = Catalog.discover([])
    root = home / "adapters"
    service = AdapterService(Registry(root), engine, lambda: [PERSONA])
    await service.start()
    app = create_app(ServerSettings(adapters_dir=str(root)), engine, service, catalog=catalog)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, port=port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:  # noqa: ASYNC110 - uvicorn offers only this flag
        await asyncio.sleep(0.02)
    body = {"model": PERSONA, "messages": MESSAGES, "max_tokens": 1, "stream": True}
    run_dir = Registry(root).new_run(PERSONA)[1]
    swap_to_first, swap_to_loaded, plain = [], [], []
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        events = sse_events(http)
        await anext(events)
        for step in range(1, swaps + 2):
            staged, final = await asyncio.to_thread(stage, run_dir, model_dir, step)
            start = time.perf_counter()
            os.replace(staged, final)
            event = await anext(events)
            while event["type"] == "comment":
                event = await anext(events)
            loaded = time.perf_counter()
            assert event["type"] == "loaded", event
            done, chunk = await first_token(http, body)
            assert chunk.get("persona_adapter") == f"{run_dir.name}:{step}", chunk
            sent = time.perf_counter()
            again, _ = await first_token(http, body)
            if step > 1:  # the first swap also warms up the LoRA layers
                swap_to_first.append(done - start)
                swap_to_loaded.append(loaded - start)
                plain.append(again - sent)
        await events.aclose()
    prompt = tuple(engine.tokenizer.encode("Once upon a time, in a lighthouse by the sea,"))
    params = SamplingParams(max_tokens=tokens, temperature=0.0, min_tokens=tokens)
    adapter = service.resolve(ModelRef(PERSONA))
    rates: dict[str, list[float]] = {"base": [], "adapter": []}
    for _ in range(3):
        for name, ref in (("base", None), ("adapter", adapter)):
            first = last = 0.0
            count = 0
            async for delta in engine.stream(GenerationRequest(prompt, params, ref)):
                last = time.perf_counter()
                first = first or last
                count = delta.token_count
            rates[name].append((count - 1) / (last - first))
    server.should_exit = True
    await serving
    await service.aclose()
    await engine.aclose()
    return {
        "swap_to_first_token": swap_to_first,
        "swap_to_loaded": swap_to_loaded,
        "plain_first_token": plain,
        "base_tok_s": max(rates["base"]),
        "adapter_tok_s": max(rates["adapter"]),
    }


def mlx_server(model_dir: Path, adapters: list[Path], swaps: int, blas: str | None) -> list[float]:
    """Time to first token of requests that switch adapters on mlx_lm.server."""
    port = free_port()
    env = dict(os.environ)
    if blas:
        env["LD_PRELOAD"] = blas
    cmd = [
        sys.executable,
        "-P",
        "-m",
        "mlx_lm.server",
        "--model",
        str(model_dir),
        "--port",
        str(port),
    ]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    times = []
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=300) as http:
            deadline = time.monotonic() + 300
            while True:
                try:
                    if http.get("/v1/models").status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                time.sleep(0.2)
            for i in range(swaps + 1):
                body = {
                    "model": str(model_dir),
                    "adapters": str(adapters[i % 2]),
                    "messages": MESSAGES,
                    "max_tokens": 1,
                    "stream": True,
                }
                start = time.perf_counter()
                with http.stream("POST", "/v1/chat/completions", json=body) as response:
                    for line in response.iter_lines():
                        if line.startswith("data:") and "content" in line:
                            break
                if i > 0:
                    times.append(time.perf_counter() - start)
    finally:
        proc.terminate()
        proc.wait(30)
    return times


def main() -> None:
    """Run both sides and print the comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--swaps", type=int, default=20)
    parser.add_argument("--mlx-swaps", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="8 swaps, no mlx_lm.server")
    parser.add_argument("--json", type=Path, help="also write the p50s (ms) to this file")
    args = parser.parse_args()
    if args.quick:
        args.swaps, args.mlx_swaps, args.tokens = min(args.swaps, 8), 0, min(args.tokens, 16)
    blas = ensure_fast_blas()
    home = Path(tempfile.mkdtemp(prefix="hotswap-"))
    os.environ["PERSONA_HOME"] = str(home)
    (home / "personas" / PERSONA).mkdir(parents=True)
    (home / "personas" / PERSONA / "persona.toml").write_text(CARD)
    from adapters.base import prepare_embedded

    model_dir = prepare_embedded().path
    ours = asyncio.run(studio(model_dir, home, args.swaps, args.tokens))
    ckpts = sorted((home / "adapters" / PERSONA).glob("run-*/checkpoints/*"))[:2]
    theirs = mlx_server(model_dir, ckpts, args.mlx_swaps, blas.path) if args.mlx_swaps else []
    n, m = len(ours["swap_to_first_token"]), len(theirs)
    print(f"{blas.note}; embedded Gemma 3 270M, LoRA rank {RANK} on {LAYERS} layers")
    print(f"load average {os.getloadavg()[0]:.1f}")
    print(f"{'':44}{'p50 / p90 (ms)':>20}")
    print(f"{'persona studio: rename -> loaded event':44}{percentiles(ours['swap_to_loaded'])}")
    print(f"{'persona studio: rename -> first token':44}{percentiles(ours['swap_to_first_token'])}")
    print(f"{'persona studio: first token, no swap':44}{percentiles(ours['plain_first_token'])}")
    pairs = zip(ours["swap_to_first_token"], ours["plain_first_token"], strict=True)
    paired = [swapped - plain for swapped, plain in pairs]
    print(f"{'persona studio: swap cost (paired difference)':44}{percentiles(paired)}")
    if theirs:
        print(f"{'mlx_lm.server: adapter switch -> first token':44}{percentiles(theirs)}")
        ratio = statistics.median(theirs) / statistics.median(ours["swap_to_first_token"])
        print(f"swaps: {n} (persona studio), {m} (mlx_lm.server); median ratio {ratio:.0f}x")
    base, lora = ours["base_tok_s"], ours["adapter_tok_s"]
    print(f"decode: base {base:.1f} tok/s, with adapter {lora:.1f} tok/s ({lora / base:.2f}x)")
    if args.json:
        result = {
            "loaded_p50_ms": statistics.median(ours["swap_to_loaded"]) * 1000,
            "swap_cost_p50_ms": statistics.median(paired) * 1000,
            "adapter_decode_vs_base": lora / base,
            "load": os.getloadavg()[0],
        }
        args.json.write_text(json.dumps(result))


if __name__ == "__main__":
    main()
