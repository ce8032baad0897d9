"""What masking control and unused tokens costs per decode step: argmax over (rows, 262,144)
logits with and without the additive mask, side by side in one process.

Usage: python bench/token_mask.py [--repeats 200]
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    """Print ms per step for 1, 4 and 8 rows, without and with the mask, and the difference."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=200)
    args = parser.parse_args()
    from adapters.blas import ensure_fast_blas

    ensure_fast_blas()
    import mlx.core as mx

    from server.engine.token_mask import additive_mask

    vocab = 262_144
    mask = additive_mask(range(6_400), vocab, mx.float32)  # about Gemma's count
    for rows in (1, 4, 8):
        logits = mx.random.normal((rows, vocab))
        mx.eval(logits)
        timings = []
        for masked in (False, True):
            for _ in range(5):
                mx.eval(mx.argmax(logits + mask if masked else logits, axis=-1))
            start = time.perf_counter()
            for _ in range(args.repeats):
                mx.eval(mx.argmax(logits + mask if masked else logits, axis=-1))
            timings.append((time.perf_counter() - start) / args.repeats * 1e3)
        plain, masked_ms = timings
        print(
            f"{rows} rows: argmax {plain:.2f} ms, with the mask {masked_ms:.2f} ms "
            f"(+{masked_ms - plain:.2f} ms, {masked_ms / plain:.2f}x)"
        )


if __name__ == "__main__":
    main()
