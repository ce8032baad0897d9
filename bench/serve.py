"""Serving overhead and batching on the embedded model: the API against raw mlx-lm, in one run.

Measures, on the same chat prompt and the same greedy settings (end-of-turn masked, so every
run decodes exactly `--tokens` tokens):
  * raw `mlx_lm.stream_generate` in this process: decode tok/s and time to first token;
  * `persona serve` (a subprocess) streaming over HTTP: the same, then 4 concurrent streams;
  * `mlx_lm.server` (a subprocess on another loopback port, OpenBLAS preloaded): the same.
Prints a table of ratios. Each figure is the median of `--reps` runs, interleaved.
Usage: python bench/serve.py [--tokens 96] [--reps 3] [--streams 4] [--quick] [--json PATH]
`--quick` leaves out mlx_lm.server and runs 32 tokens, 4 reps (a 10 ms goal needs more than 2
first tokens behind each median); `--json` also writes the ratios.
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from adapters.blas import ensure_fast_blas

MESSAGES = [{"role": "user", "content": "Tell me a long story about a lighthouse keeper."}]
STOP_IDS = (1, 106)


@dataclass(frozen=True)
class Run:
    """One measured generation."""

    ttft: float
    """Seconds from request to first token."""
    total: float
    """Seconds from request to last token."""
    tokens: int

    @property
    def decode_rate(self) -> float:
        """Tokens per second after the first token."""
        return (self.tokens - 1) / max(self.total - self.ttft, 1e-9)


def free_port() -> int:
    """An unused local TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def raw_run(model: Any, tokenizer: Any, prompt: list[int], tokens: int) -> Run:
    """Greedy decoding with mlx-lm directly, end-of-turn masked."""
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    def mask_stops(_tokens: mx.array, logits: mx.array) -> mx.array:
        bias = mx.zeros_like(logits)
        bias[..., list(STOP_IDS)] = -1e9
        return logits + bias

    start = time.perf_counter()
    first = 0.0
    count = 0
    for _response in stream_generate(
        model,
        tokenizer,
        prompt,
        max_tokens=tokens,
        sampler=make_sampler(0.0),
        logits_processors=[mask_stops],
    ):
        count += 1
        if count == 1:
            first = time.perf_counter() - start
    return Run(first, time.perf_counter() - start, count)


async def api_run(http: httpx.AsyncClient, url: str, model: str, tokens: int) -> Run:
    """One streamed chat completion over HTTP; counts tokens from the usage chunk."""
    body = {
        "model": model,
        "messages": MESSAGES,
        "max_tokens": tokens,
        "temperature": 0.0,
        "logit_bias": {str(t): -100 for t in STOP_IDS},
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    start = time.perf_counter()
    first = last = 0.0
    count = pieces = 0
    async with http.stream("POST", f"{url}/v1/chat/completions", json=body) as response:
        response.raise_for_status()
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line[6:])
            if chunk.get("usage"):
                count = int(chunk["usage"]["completion_tokens"])
            for choice in chunk.get("choices", []):
                if choice.get("delta", {}).get("content"):
                    pieces += 1
                    last = time.perf_counter() - start
                    if not first:
                        first = last
    return Run(first, last, count or pieces)


async def concurrent(url: str, model: str, tokens: int, streams: int) -> float:
    """Aggregate tokens per second of `streams` simultaneous streams (wall clock)."""
    async with httpx.AsyncClient(timeout=600) as http:
        start = time.perf_counter()
        runs = await asyncio.gather(*(api_run(http, url, model, tokens) for _ in range(streams)))
        return sum(r.tokens for r in runs) / (time.perf_counter() - start)


async def single(url: str, model: str, tokens: int) -> Run:
    """One stream on its own."""
    async with httpx.AsyncClient(timeout=600) as http:
        return await api_run(http, url, model, tokens)


def wait_ready(url: str, path: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll until the server answers 200 at `path`."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited:\n{log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{url}{path}", timeout=5).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"server at {url} never became ready")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """Start a server subprocess logging to `log`."""
    with log.open("wb") as sink:
        return subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)


SETTLE = 0.5
"""Seconds of quiet before each measured run. OpenBLAS worker threads busy-wait for about 0.1 s
after their last job; without a pause, the previous run's spinning threads (in this process or
the other server's) take the cores from the next run's first forward pass, adding about 100 ms
to whichever time to first token is measured next."""


def quiet() -> None:
    """Give the machine `SETTLE` seconds to go quiet before a timed run."""
    time.sleep(SETTLE)


def median_run(runs: list[Run]) -> tuple[float, float]:
    """(median decode tok/s, median TTFT in ms)."""
    return (
        statistics.median(r.decode_rate for r in runs),
        statistics.median(r.ttft for r in runs) * 1000,
    )


def main() -> None:
    """Run every measurement and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=96)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="no mlx_lm.server; 32 tokens, 4 reps")
    parser.add_argument("--json", type=Path, help="also write the ratios to this file")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.reps = min(args.tokens, 32), 4

    blas = ensure_fast_blas()
    from mlx_lm import load

    from adapters.base import EMBEDDED_ID, prepare_embedded

    model_dir = prepare_embedded().path
    model, tokenizer = load(str(model_dir))
    prompt = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True)
    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    # Every rep sends the same prompt: with the prefix cache on, the API's first token would be a
    # cache hit, and the difference would measure the cache, not the API's overhead over raw.
    env = {**os.environ, "PERSONA_HOME": str(work / "home"), "PERSONA_PREFIX_CACHE_BYTES": "0"}
    ours_url = f"http://127.0.0.1:{free_port()}"
    theirs_url = f"http://127.0.0.1:{free_port()}"
    ours = start(
        [sys.executable, "-P", "-m", "studio", "serve", "--port", ours_url.rsplit(":", 1)[1]],
        env,
        work / "persona.log",
    )
    mlx_env = dict(env)
    if blas.path:
        mlx_env["LD_PRELOAD"] = blas.path
    theirs = (
        None
        if args.quick
        else start(
            [
                sys.executable,
                "-P",
                "-m",
                "mlx_lm",
                "server",
                "--model",
                str(model_dir),
                "--port",
                theirs_url.rsplit(":", 1)[1],
                "--max-tokens",
                str(args.tokens),
            ],
            mlx_env,
            work / "mlx_lm.log",
        )
    )
    try:
        wait_ready(ours_url, "/health", ours, work / "persona.log")
        if theirs is not None:
            wait_ready(theirs_url, "/v1/models", theirs, work / "mlx_lm.log")
        print(
            f"{blas.note}; load average {os.getloadavg()[0]:.2f}; {args.tokens} tokens", flush=True
        )
        raw_run(model, tokenizer, prompt, 8)
        asyncio.run(single(ours_url, EMBEDDED_ID, 8))
        if theirs is not None:
            asyncio.run(single(theirs_url, "default_model", 8))
        raw: list[Run] = []
        api: list[Run] = []
        mlx: list[Run] = []
        api_many: list[float] = []
        mlx_many: list[float] = []
        for rep in range(args.reps):
            quiet()
            raw.append(raw_run(model, tokenizer, prompt, args.tokens))
            quiet()
            api.append(asyncio.run(single(ours_url, EMBEDDED_ID, args.tokens)))
            if theirs is not None:
                quiet()
                mlx.append(asyncio.run(single(theirs_url, "default_model", args.tokens)))
            quiet()
            api_many.append(
                asyncio.run(concurrent(ours_url, EMBEDDED_ID, args.tokens, args.streams))
            )
            if theirs is not None:
                quiet()
                mlx_many.append(
                    asyncio.run(concurrent(theirs_url, "default_model", args.tokens, args.streams))
                )
            print(f"  rep {rep + 1}/{args.reps} done", file=sys.stderr, flush=True)
        ratios = report(raw, api, mlx, api_many, mlx_many, args.streams)
        if args.json:
            args.json.write_text(json.dumps({**ratios, "load": os.getloadavg()[0]}))
    finally:
        for process in (ours, theirs):
            if process is not None:
                process.terminate()
                process.wait(30)


def report(
    raw: list[Run],
    api: list[Run],
    mlx: list[Run],
    api_many: list[float],
    mlx_many: list[float],
    streams: int,
) -> dict[str, float]:
    """Print the table of rates, TTFTs and ratios; return persona serve's ratios."""
    raw_rate, raw_ttft = median_run(raw)
    rows = [("raw mlx_lm.stream_generate", raw), ("persona serve, 1 stream", api)]
    if mlx:
        rows.append(("mlx_lm.server, 1 stream", mlx))
    print(f"{'':32} {'decode tok/s':>12} {'TTFT ms':>9} {'rate/raw':>9} {'TTFT-raw ms':>12}")
    for name, runs in rows:
        rate, ttft = median_run(runs)
        print(f"{name:32} {rate:12.2f} {ttft:9.1f} {rate / raw_rate:8.3f}x {ttft - raw_ttft:12.1f}")
    api_rate, api_ttft = median_run(api)
    api_one = statistics.median(r.tokens / r.total for r in api)
    api_agg = statistics.median(api_many)
    print()
    print(f"{'aggregate (wall clock)':32} {'1 stream':>12} {f'{streams} streams':>12} {'ratio':>9}")
    print(f"{'persona serve':32} {api_one:12.2f} {api_agg:12.2f} {api_agg / api_one:8.2f}x")
    if mlx and mlx_many:
        mlx_one = statistics.median(r.tokens / r.total for r in mlx)
        mlx_agg = statistics.median(mlx_many)
        print(f"{'mlx_lm.server':32} {mlx_one:12.2f} {mlx_agg:12.2f} {mlx_agg / mlx_one:8.2f}x")
    return {
        "decode_vs_raw": api_rate / raw_rate,
        "ttft_minus_raw_ms": api_ttft - raw_ttft,
        "streams_ratio": api_agg / api_one,
    }


if __name__ == "__main__":
    main()
