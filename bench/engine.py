"""The engine against raw mlx-lm on the embedded model, measured side by side in one run.

Rounds alternate raw `mlx_lm.stream_generate` (on its own unwrapped copy of the model) with the
engine streaming the same greedy prompt, so machine load hits both alike; medians are compared:
- single-stream decode tok/s (engine / raw) and time to first token (engine - raw);
- aggregate tok/s of 4 concurrent engine streams against 1 (wall time, prefill included);
- decode tok/s with a rank-8 adapter on every linear layer against the base model, and 4 streams
  on 4 different adapters (one batch, LoRA gathered per row) against 4 on the base model.
Usage: python bench/engine.py [--tokens 64] [--rounds 8] [--streams 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adapters.blas import ensure_fast_blas

LINEARS = {
    "self_attn.q_proj": ("hidden", "q"),
    "self_attn.k_proj": ("hidden", "kv"),
    "self_attn.v_proj": ("hidden", "kv"),
    "self_attn.o_proj": ("q", "hidden"),
    "mlp.gate_proj": ("hidden", "inter"),
    "mlp.up_proj": ("hidden", "inter"),
    "mlp.down_proj": ("inter", "hidden"),
}
"""Every linear layer of a Gemma 3 block, with its (input, output) size names."""
SETTLE = 0.5
"""Seconds of quiet before each timed run."""
PROMPT = "The old lighthouse keeper climbed the stairs every evening, and on the last night"


@dataclass(frozen=True)
class Timing:
    """One streamed generation."""

    ttft: float
    """Seconds from the call to the first token."""
    decode_tps: float
    """Tokens per second after the first one."""
    tokens: int
    wall: float


def timing(start: float, stamps: list[float]) -> Timing:
    """Summarise the arrival time of each token."""
    decode = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    return Timing(stamps[0] - start, decode, len(stamps), stamps[-1] - start)


def raw_run(model: Any, tokenizer: Any, prompt: list[int], tokens: int) -> Timing:
    """Greedy stream_generate, the way mlx-lm runs it."""
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    stamps: list[float] = []
    start = time.perf_counter()
    for _ in stream_generate(model, tokenizer, prompt, max_tokens=tokens, sampler=make_sampler(0)):
        stamps.append(time.perf_counter())
    return timing(start, stamps)


async def engine_run(engine: Any, prompt: list[int], tokens: int, adapter: Any = None) -> Timing:
    """One greedy engine stream; a timestamp per token."""
    from server.engine.engine import GenerationRequest, SamplingParams

    request = GenerationRequest(
        tuple(prompt), SamplingParams(max_tokens=tokens, temperature=0.0), adapter
    )
    stamps: list[float] = []
    start = time.perf_counter()
    async for delta in engine.stream(request):
        stamps += [time.perf_counter()] * len(delta.token_ids)
    return timing(start, stamps)


async def concurrent(
    engine: Any, prompt: list[int], tokens: int, streams: int, adapters: list[Any] | None = None
) -> float:
    """Aggregate tok/s of `streams` simultaneous engine streams (wall clock, prefill included)."""
    chosen = adapters or [None] * streams
    start = time.perf_counter()
    runs = await asyncio.gather(
        *(engine_run(engine, prompt, tokens, chosen[i % len(chosen)]) for i in range(streams))
    )
    return sum(r.tokens for r in runs) / (time.perf_counter() - start)


def random_adapter(model_dir: Path, root: Path, persona: str) -> Any:
    """A rank-8 adapter on every linear layer of every block, published like the trainer does."""
    import json

    import mlx.core as mx

    from adapters.base import content_hash
    from adapters.manifest import LoraParams, Manifest
    from adapters.registry import Registry, publish_checkpoint, read_manifest
    from server.engine.engine import AdapterRef

    config = json.loads((model_dir / "config.json").read_text())
    hidden, inter, layers = (
        config["hidden_size"],
        config["intermediate_size"],
        config["num_hidden_layers"],
    )
    q, kv = config["num_attention_heads"] * config["head_dim"], config["head_dim"]
    kv *= config["num_key_value_heads"]
    sizes = {"hidden": hidden, "inter": inter, "q": q, "kv": kv}
    dims = {key: (sizes[a], sizes[b]) for key, (a, b) in LINEARS.items()}
    rank = 8
    weights = {}
    for n in range(layers):
        for key, (d_in, d_out) in dims.items():
            weights[f"model.layers.{n}.{key}.lora_a"] = mx.random.normal((d_in, rank)) * 0.01
            weights[f"model.layers.{n}.{key}.lora_b"] = mx.random.normal((rank, d_out)) * 0.01
    adapter_config = {
        "fine_tune_type": "lora",
        "num_layers": layers,
        "lora_parameters": {"rank": rank, "scale": 20.0, "dropout": 0.0, "keys": list(dims)},
    }
    lora = LoraParams(rank, 20.0, 0.0, layers, list(dims), "lora")
    manifest = Manifest(persona, "run-1", 1, "embedded", content_hash(model_dir), lora, "", 0.0)
    run_dir = Registry(root).new_run(persona)[1]
    folder = publish_checkpoint(
        run_dir,
        manifest,
        lambda path: mx.save_safetensors(str(path), weights),
        json.dumps(adapter_config).encode(),
    )
    final = read_manifest(folder)
    assert final is not None
    return AdapterRef(final, folder)


def med(values: list[float]) -> float:
    """The median."""
    return statistics.median(values)


async def main(tokens: int, rounds: int, streams: int) -> None:
    """Run every comparison and print the ratios."""
    print(ensure_fast_blas().note)
    from mlx_lm import load

    from adapters.base import prepare_embedded
    from server.engine.engine import Engine

    model_dir = prepare_embedded().path
    raw_model, tokenizer = load(str(model_dir))
    engine = Engine.load("embedded", max_batch=max(8, streams), max_adapters=streams)
    engine.start()
    prompt = tokenizer.encode(PROMPT)
    try:
        raw_run(raw_model, tokenizer, prompt, 8)
        await engine_run(engine, prompt, 8)
        raws, engines = [], []
        for _ in range(rounds):
            # A pause before each run: OpenBLAS threads busy-wait about 0.1 s after their last
            # job and would otherwise slow the next run's first forward pass.
            await asyncio.sleep(SETTLE)
            raws.append(raw_run(raw_model, tokenizer, prompt, tokens))
            await asyncio.sleep(SETTLE)
            engines.append(await engine_run(engine, prompt, tokens))
        raw_tps, eng_tps = med([r.decode_tps for r in raws]), med([e.decode_tps for e in engines])
        raw_ttft, eng_ttft = med([r.ttft for r in raws]), med([e.ttft for e in engines])
        print(f"prompt {len(prompt)} tokens, {tokens} generated, {rounds} rounds, medians")
        print(f"raw stream_generate : {raw_tps:6.2f} tok/s   TTFT {raw_ttft * 1000:7.1f} ms")
        print(f"engine, 1 stream    : {eng_tps:6.2f} tok/s   TTFT {eng_ttft * 1000:7.1f} ms")
        print(
            f"engine / raw        : {eng_tps / raw_tps:6.3f}x    "
            f"TTFT overhead {(eng_ttft - raw_ttft) * 1000:+.1f} ms"
        )

        singles, many = [], []
        for _ in range(max(2, rounds // 2)):
            singles.append(await concurrent(engine, prompt, tokens, 1))
            many.append(await concurrent(engine, prompt, tokens, streams))
        one, agg = med(singles), med(many)
        print(f"aggregate, 1 stream : {one:6.2f} tok/s")
        print(f"aggregate, {streams} streams: {agg:6.2f} tok/s   ({agg / one:.2f}x)")

        with tempfile.TemporaryDirectory() as tmp:
            adapters = [random_adapter(model_dir, Path(tmp), f"bench-{i}") for i in range(streams)]
            for adapter in adapters:
                await engine.load_adapter(adapter)
            base, lora = [], []
            for _ in range(max(2, rounds // 2)):
                base.append((await engine_run(engine, prompt, tokens)).decode_tps)
                lora.append((await engine_run(engine, prompt, tokens, adapters[0])).decode_tps)
            print(
                f"1 stream, adapter   : {med(lora):6.2f} tok/s vs base {med(base):6.2f} "
                f"({med(lora) / med(base):.3f}x; rank 8 on all {len(LINEARS)} linears per block)"
            )
            plain, mixed = [], []
            for _ in range(max(2, rounds // 2)):
                plain.append(await concurrent(engine, prompt, tokens, streams))
                mixed.append(await concurrent(engine, prompt, tokens, streams, adapters))
            print(
                f"{streams} streams, {streams} adapters: {med(mixed):6.2f} tok/s vs "
                f"{streams} on base {med(plain):6.2f} ({med(mixed) / med(plain):.3f}x)"
            )
    finally:
        await engine.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--streams", type=int, default=4)
    args = parser.parse_args()
    asyncio.run(main(args.tokens, args.rounds, args.streams))
