"""Our engine against llama.cpp on the same machine and the same weights, in one run.

Our side is the engine `persona serve` runs (in process, float32 MLX on OpenBLAS), fed the
embedded model, which is the Q4_K_M GGUF dequantized. llama.cpp's side is npm's
`node-llama-cpp` (a prebuilt CPU binary, driven by bench/vs_llama.mjs) on two files: the embedded
Q4_K_M GGUF itself, and an f16 GGUF of our float weights written into a temporary folder. Each
runs with 1 and with 2 threads. Every side decodes the same prompt ids greedily for `--tokens`
new tokens (or to a stop id), with 1 stream and with `--streams` concurrent streams; rounds
interleave the sides so machine load hits them alike, and medians are compared.
- 1 stream: decode tok/s after the first token.
- N streams: aggregate tok/s, all tokens over wall time, prompt included.
node-llama-cpp is installed with npm into the cache (`<cache>/llama`), never into the repo; without
node or npm only our side runs.
Extra rows time our single stream with the server's opt-in speed-ups, each in its own engine:
`gemv_head` (the output layer through NumPy's GEMV, proven to pick MLX's token) and that plus
`lookup_draft` (`--lookup-draft` tokens of prompt-lookup drafts); each must give the same ids.
Usage: python bench/vs_llama.py [--tokens 48] [--rounds 2] [--streams 4] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters.blas import ensure_fast_blas

PACKAGE = "node-llama-cpp"
VERSION = "3.21.1"
SCRIPT = Path(__file__).with_name("vs_llama.mjs")
PROMPT = "The old lighthouse keeper climbed the stairs every evening, and on the last night"
STOP_IDS = (1, 106)
SETTLE = 0.5
"""Seconds of quiet before each timed run (OpenBLAS threads spin a while after a job)."""


def llama_package(folder: Path) -> str | None:
    """Install node-llama-cpp into `folder` if needed; None when ready, else why not."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node or npm is not on PATH (Debian: apt-get install nodejs npm)"
    manifest = folder / "node_modules" / PACKAGE / "package.json"
    try:
        if json.loads(manifest.read_text())["version"] == VERSION:
            return None
    except (OSError, ValueError, KeyError):
        pass
    folder.mkdir(parents=True, exist_ok=True)
    print(f"installing {PACKAGE}@{VERSION} into {folder}")
    done = subprocess.run(
        ["npm", "install", "--prefix", str(folder), "-E", f"{PACKAGE}@{VERSION}", "--no-audit"],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        return f"npm install failed: {done.stderr.strip().splitlines()[-1:]}"
    return None


def write_f16_gguf(model_dir: Path, target: Path) -> Path:
    """Our float weights as an f16 GGUF (the export code's writer), for llama.cpp's second run."""
    import mlx.core as mx
    import numpy as np

    from adapters.export.gguf_model import write_model_gguf

    config = json.loads((model_dir / "config.json").read_text())
    loaded = mx.load(str(model_dir / "model.safetensors"))
    weights = {k: np.array(v.astype(mx.float32)) for k, v in loaded.items()}  # type: ignore[union-attr]
    write_model_gguf(target, weights, config, "f16", "gemma-3-270m f16")
    return target


def llama_run(
    package: Path, model: Path, threads: int, streams: int, prompt: list[int], tokens: int
) -> dict[str, Any]:
    """One node process: a 1-stream and an N-stream run on one GGUF at one thread count."""
    config = {
        "package": str(package),
        "model": str(model),
        "threads": threads,
        "streams": [1, streams],
        "tokens": tokens,
        "prompt": prompt,
        "stop": list(STOP_IDS),
    }
    done = subprocess.run(
        ["node", str(SCRIPT), json.dumps(config)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"node-llama-cpp failed:\n{done.stderr.strip()}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


async def engine_stream(engine: Any, prompt: list[int], tokens: int) -> tuple[list[int], float]:
    """One greedy engine stream: its token ids and decode tok/s after the first token."""
    from server.engine.engine import GenerationRequest, SamplingParams

    request = GenerationRequest(tuple(prompt), SamplingParams(max_tokens=tokens, temperature=0.0))
    ids: list[int] = []
    stamps: list[float] = []
    async for delta in engine.stream(request):
        ids += delta.token_ids
        stamps += [time.perf_counter()] * len(delta.token_ids)
    span = stamps[-1] - stamps[0]
    return ids, (len(ids) - 1) / span if len(ids) > 1 and span > 0 else 0.0


async def engine_streams(engine: Any, prompt: list[int], tokens: int, streams: int) -> float:
    """Aggregate tok/s of `streams` simultaneous engine streams, prompt included."""
    start = time.perf_counter()
    runs = await asyncio.gather(*(engine_stream(engine, prompt, tokens) for _ in range(streams)))
    return sum(len(ids) for ids, _ in runs) / (time.perf_counter() - start)


def common_prefix(a: list[int], b: list[int]) -> int:
    """How many leading ids two sequences share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


async def main(args: argparse.Namespace) -> None:
    """Interleave the sides for `--rounds` rounds and print the markdown table."""
    print(ensure_fast_blas().note)
    from adapters.base import prepare_embedded
    from adapters.export.gguf_model import embedded_gguf
    from data.home import cache_dir
    from server.engine.engine import Engine

    package = Path(args.node_dir) if args.node_dir else cache_dir() / "llama"
    why_not = None if args.no_llama else llama_package(package)
    if args.no_llama:
        why_not = "--no-llama"
    if why_not:
        print(f"llama.cpp side skipped: {why_not}")
    model_dir = prepare_embedded().path
    engine = Engine.load("embedded", max_batch=max(8, args.streams))
    engine.start()
    variants: dict[str, Any] = {"gemv_head": {"gemv_head": True}}
    if args.lookup_draft:
        variants[f"gemv_head + lookup_draft {args.lookup_draft}"] = {
            "gemv_head": True,
            "lookup_draft": args.lookup_draft,
        }
    extra = {label: Engine.load("embedded", **kw) for label, kw in variants.items()}
    for other in extra.values():
        other.start()
    prompt = engine.tokenizer.encode(PROMPT)
    threads = [int(t) for t in args.threads.split(",")]
    with tempfile.TemporaryDirectory(prefix="vs-llama-") as tmp:
        files: dict[str, Path] = {}
        if not why_not:
            files["Q4_K_M (embedded)"] = embedded_gguf()
            if not args.no_f16:
                started = time.perf_counter()
                files["f16 (our weights)"] = write_f16_gguf(model_dir, Path(tmp) / "f16.gguf")
                print(f"wrote the f16 GGUF in {time.perf_counter() - started:.0f} s")
        try:
            ours_ids, _ = await engine_stream(engine, prompt, 8)  # warm-up
            extra_one: dict[str, list[float]] = {label: [] for label in extra}
            ours_one: list[float] = []
            ours_many: list[float] = []
            theirs: dict[tuple[str, int], list[dict[str, Any]]] = {}
            for _ in range(args.rounds):
                await asyncio.sleep(SETTLE)
                ours_ids, tps = await engine_stream(engine, prompt, args.tokens)
                ours_one.append(tps)
                for label, other in extra.items():
                    await asyncio.sleep(SETTLE)
                    their_ids, tps = await engine_stream(other, prompt, args.tokens)
                    extra_one[label].append(tps)
                    if their_ids != ours_ids:
                        print(f"{label} changed the greedy reply")
                await asyncio.sleep(SETTLE)
                ours_many.append(await engine_streams(engine, prompt, args.tokens, args.streams))
                for name, path in files.items():
                    for n in threads:
                        await asyncio.sleep(SETTLE)
                        theirs.setdefault((name, n), []).append(
                            llama_run(package, path, n, args.streams, prompt, args.tokens)
                        )
        finally:
            await engine.aclose()
            for other in extra.values():
                await other.aclose()
    one, many = statistics.median(ours_one), statistics.median(ours_many)
    load = os.getloadavg()[0]
    s = args.streams
    print(
        f"\nprompt {len(prompt)} tokens, {args.tokens} new, greedy, {args.rounds} rounds, medians;"
        f" load average {load:.1f} on {os.cpu_count()} cores\n"
    )
    print(
        f"| engine | weights | threads | 1 stream tok/s | {s} streams tok/s "
        f"| ours 1 ÷ this 1 | ours {s} ÷ this 1 | ours {s} ÷ this {s} | same greedy ids |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    print(
        f"| ours (MLX, OpenBLAS) | f32, dequantized Q4_K_M | 2 | {one:.1f} | {many:.1f} "
        f"| 1.00 | {many / one:.2f} | 1.00 | {len(ours_ids)}/{len(ours_ids)} |"
    )
    fast = {label: statistics.median(values) for label, values in extra_one.items()}
    for label, tps in fast.items():
        print(
            f"| ours, {label} | f32, dequantized Q4_K_M | 2 "
            f"| {tps:.1f} | - | {one / tps:.2f} | - | - | same as ours |"
        )
    for (name, n), runs in theirs.items():
        their_one = statistics.median(r["1"]["decode_tps"] for r in runs)
        their_many = statistics.median(r[str(s)]["tokens"] / r[str(s)]["wall"] for r in runs)
        same = common_prefix(ours_ids, runs[-1]["1"]["ids"])
        print(
            f"| llama.cpp (node-llama-cpp {VERSION}) | {name} | {n} | {their_one:.1f} "
            f"| {their_many:.1f} | {one / their_one:.2f} | {many / their_one:.2f} "
            f"| {many / their_many:.2f} "
            f"| {same}/{len(ours_ids)} |"
        )
    for label, tps in fast.items():
        print(f"\n{label}: {tps / one:.2f}x our plain single stream", end="")
        for (name, n), runs in theirs.items():
            their_one = statistics.median(r["1"]["decode_tps"] for r in runs)
            print(f"; {tps / their_one:.2f}x llama.cpp {name.split()[0]} {n} thread", end="")
        print()
    print(
        "\nsame greedy ids: leading tokens identical to ours. "
        f"Command: python bench/vs_llama.py --tokens {args.tokens} --rounds {args.rounds}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=4)
    parser.add_argument("--threads", default="1,2", help="llama.cpp thread counts")
    parser.add_argument("--node-dir", help="folder for node-llama-cpp (default: <cache>/llama)")
    parser.add_argument("--no-f16", action="store_true", help="skip the f16 GGUF pair")
    parser.add_argument("--no-llama", action="store_true", help="measure only our engine")
    parser.add_argument(
        "--lookup-draft", type=int, default=4, help="also time ours with lookup drafts (0: no)"
    )
    asyncio.run(main(parser.parse_args()))
