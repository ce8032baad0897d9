"""Decode speed of the embedded model with OpenBLAS against the reference BLAS, side by side.

Each variant runs in its own subprocess (the BLAS binding is fixed when mlx is first imported).
Prints tokens/s for greedy decoding of a fixed prompt and a 512x640x2048 GEMM timing.
Usage: python bench/decode.py [--tokens 64] [--repeats 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

WORKER = r"""
import json, sys, time
from adapters.blas import ensure_fast_blas
status = ensure_fast_blas()
import mlx.core as mx
from mlx_lm import load, stream_generate
from mlx_lm.sample_utils import make_sampler
from adapters.base import prepare_embedded

tokens, repeats = int(sys.argv[1]), int(sys.argv[2])
a = mx.random.normal((512, 640)); b = mx.random.normal((640, 2048)); mx.eval(a, b)
mx.eval(a @ b)
start = time.perf_counter()
for _ in range(10):
    mx.eval(a @ b)
gemm = time.perf_counter() - start
model, tok = load(str(prepare_embedded().path))
prompt = tok.encode("Once upon a time, in a lighthouse by the sea,")
best = 0.0
for _ in range(repeats):
    last = None
    for last in stream_generate(model, tok, prompt, max_tokens=tokens, sampler=make_sampler(0.0)):
        pass
    best = max(best, last.generation_tps)
print(json.dumps({"blas": status.name, "gemm_x10_s": gemm, "decode_tok_s": best}))
"""


def run_variant(blas: str | None, tokens: int, repeats: int) -> dict[str, float | str]:
    """Run the worker in a subprocess with the given BLAS override."""
    env = dict(os.environ)
    if blas is not None:
        env["PERSONA_BLAS"] = blas
    else:
        env.pop("PERSONA_BLAS", None)
    out = subprocess.run(
        [sys.executable, "-c", WORKER, str(tokens), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run both variants and print a comparison."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    started = time.perf_counter()
    fast = run_variant(None, args.tokens, args.repeats)
    slow = run_variant("off", args.tokens, args.repeats)
    print(f"{'BLAS':<12}{'GEMM x10 (s)':>14}{'decode tok/s':>14}")
    for row in (fast, slow):
        print(f"{row['blas']:<12}{row['gemm_x10_s']:>14.3f}{row['decode_tok_s']:>14.1f}")
    speedup = float(fast["decode_tok_s"]) / float(slow["decode_tok_s"])
    print(f"decode speed-up from OpenBLAS: {speedup:.2f}x  ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
