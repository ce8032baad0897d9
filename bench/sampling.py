"""What sampling costs per token: the engine's row sampler against mlx-lm's `make_sampler`.

Both draw from the embedded Gemma 3 270M's real next-token log-probs (262,144 wide) with the Juni
card's settings (temperature 0.8, top_p 0.95, min_p 0.05), one row at a time as the engine does.
"full vocabulary" is the row sampler made to filter and draw over every token, which is what
mlx-lm's sampler does. Then the embedded model decodes 4 concurrent streams in the engine, greedy
and with those settings, to show what the difference means for a whole decode step.

Usage: python bench/sampling.py [--draws 50] [--tokens 48]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from adapters.blas import ensure_fast_blas

BLAS = ensure_fast_blas()

SETTINGS = {"temperature": 0.8, "top_p": 0.95, "min_p": 0.05}
PROMPT = "Tell me about the tide pools near the lighthouse."


def per_draw_ms(draw, logprobs, n: int) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of one draw, each evaluated on its own."""
    import mlx.core as mx

    mx.eval(draw(logprobs))
    times = []
    for _ in range(n):
        start = time.perf_counter()
        mx.eval(draw(logprobs))
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


async def streams(engine, prompt: tuple[int, ...], params, count: int) -> float:  # type: ignore[no-untyped-def]
    """Aggregate tokens per second of `count` concurrent streams (each its own seed)."""
    from dataclasses import replace

    from server.engine.types import GenerationRequest

    async def one(seed: int) -> int:
        request = GenerationRequest(prompt, replace(params, seed=seed))
        tokens = 0
        async for delta in engine.stream(request):
            tokens += len(delta.token_ids)
        return tokens

    start = time.perf_counter()
    total = sum(await asyncio.gather(*(one(i) for i in range(count))))
    return total / (time.perf_counter() - start)


def main() -> None:
    """Time the samplers, then the engine."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=50)
    parser.add_argument("--tokens", type=int, default=48)
    args = parser.parse_args()

    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.sample_utils import make_sampler

    from adapters.base import prepare_embedded
    from server.engine import sampling
    from server.engine.engine import Engine
    from server.engine.sampling import RowSampler
    from server.engine.types import SamplingParams

    print(BLAS.note)
    model, tokenizer = load(str(prepare_embedded().path))
    prompt = tuple(
        tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT}], add_generation_prompt=True
        )
    )
    logits = model(mx.array(prompt)[None])[:, -1, :]
    logprobs = logits - mx.logsumexp(logits, axis=-1, keepdims=True)
    mx.eval(logprobs)
    vocab = logprobs.shape[-1]
    # min_tokens holds off end-of-turn so every stream decodes exactly --tokens tokens.
    exact = {"max_tokens": args.tokens, "min_tokens": args.tokens}
    params = SamplingParams(seed=0, **exact, **SETTINGS)  # type: ignore[arg-type]
    ours = RowSampler(params, prompt, (1, 106), vocab)
    narrow = sampling.CANDIDATES
    sampling.CANDIDATES = vocab  # a sampler made now filters and draws over the whole vocabulary
    full = RowSampler(params, prompt, (1, 106), vocab)
    sampling.CANDIDATES = narrow
    reference = make_sampler(temp=0.8, top_p=0.95, min_p=0.05)
    rows = {
        "mlx-lm make_sampler": per_draw_ms(reference, logprobs, args.draws),
        "row sampler, full vocabulary": per_draw_ms(full.sample, logprobs, args.draws),
        "row sampler, 1,024 candidates": per_draw_ms(ours.sample, logprobs, args.draws),
    }
    anchor = rows["mlx-lm make_sampler"]
    print(f"one draw, {vocab:,} tokens, {SETTINGS}")
    for name, ms in rows.items():
        print(f"  {name:<32}{ms:>8.2f} ms{anchor / ms:>8.2f}x")

    async def decode() -> None:
        engine = Engine.load("embedded")
        engine.start()
        try:
            greedy = SamplingParams(temperature=0.0, **exact)
            await streams(engine, prompt, greedy, 4)  # warm up
            rates = {
                "greedy": await streams(engine, prompt, greedy, 4),
                "card settings": await streams(engine, prompt, params, 4),
            }
            sampling.CANDIDATES = vocab  # every row from now on: the whole vocabulary
            rates["card settings, full vocabulary"] = await streams(engine, prompt, params, 4)
        finally:
            await engine.aclose()
        print(f"engine, 4 concurrent streams of {args.tokens} tokens (aggregate tok/s)")
        for name, rate in rates.items():
            print(f"  {name:<32}{rate:>8.1f}")

    asyncio.run(decode())


if __name__ == "__main__":
    main()
