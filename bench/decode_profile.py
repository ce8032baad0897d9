"""Where one fp32 decode step of the embedded model goes, and what exact options would gain.

Measured in one run on the embedded 270M (float32, OpenBLAS), medians of `--repeats`:
- a 1-token step split into the 18 blocks and the output layer (262,144 x 640, tied to the
  embedding) with its argmax, at 1 and 2 OpenBLAS threads;
- the output layer alone in each layout MLX offers on CPU (fp32, bf16, fp16, 8- and 4-bit
  `quantized_matmul`), and as NumPy's fp32 GEMV (`gemv_head`): a cheaper layout could pick
  candidates for an exact fp32 recheck only if it ran faster than the fp32 product;
- a low-rank candidate filter with a proven bound (top-r principal directions of the output
  layer; a token is ruled out only when its upper bound is below the best rechecked logit): how
  often 512 candidates certify the greedy token;
- prompt-lookup drafts (`server/engine/lookup.py`, the engine's opt-in `lookup_draft`): the
  cost of a k+1-token pass against a 1-token step, and how many tokens each pass would yield on
  greedy replies to a few prompts.
Usage: python bench/decode_profile.py [--repeats 8] [--tokens 48]
"""

from __future__ import annotations

import argparse
import ctypes
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

from adapters.blas import ensure_fast_blas
from server.engine.lookup import lookup_draft

PROMPTS = (
    "The old lighthouse keeper climbed the stairs every evening, and on the last night",
    "<start_of_turn>user\nWhat should I pack for a week of hiking in the rain?<end_of_turn>\n"
    "<start_of_turn>model\n",
    "<start_of_turn>user\nWrite a short poem about a cat who loves tea.<end_of_turn>\n"
    "<start_of_turn>model\n",
    "<start_of_turn>user\nExplain how a bicycle gear works.<end_of_turn>\n<start_of_turn>model\n",
)
DRAFT = 4
"""Tokens a prompt-lookup draft proposes per pass."""


def median_ms(run: Callable[[], Any], repeats: int) -> float:
    """Median wall milliseconds of `run` after two warm-up calls."""
    run()
    run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def step_split(model: Any, prompt: list[int], repeats: int) -> dict[str, float]:
    """ms of a 1-token step, of its 18 blocks alone, of the output layer + argmax alone, and of
    a (DRAFT+1)-token pass, all from the same cache position."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    mx.eval(model(mx.array([prompt]), cache=cache))
    one = mx.array([[prompt[-1]]])
    many = mx.array([prompt[-DRAFT - 1 :]])

    def rewind(n: int) -> None:
        # Every cache here is shorter than the sliding window, so stepping the offset back makes
        # the next pass overwrite the same slots.
        for layer in cache:
            layer.offset -= n

    def step() -> None:
        mx.eval(mx.argmax(model(one, cache=cache)[:, -1, :], axis=-1))
        rewind(1)

    def blocks() -> None:
        mx.eval(model.model(one, cache=cache))
        rewind(1)

    hidden = model.model(one, cache=cache)[:, -1, :]
    mx.eval(hidden)
    rewind(1)

    def head() -> None:
        mx.eval(mx.argmax(model.model.embed_tokens.as_linear(hidden), axis=-1))

    def verify() -> None:
        mx.eval(mx.argmax(model(many, cache=cache), axis=-1))
        rewind(DRAFT + 1)

    return {
        "step": median_ms(step, repeats),
        "blocks": median_ms(blocks, repeats),
        "head": median_ms(head, repeats),
        "verify": median_ms(verify, repeats),
    }


def layouts(weight: Any, hidden: Any, repeats: int) -> dict[str, float]:
    """ms of the output-layer product for one row in each CPU layout."""
    import mlx.core as mx
    import numpy as np

    from server.engine.gemv_head import numpy_blas_threads

    out = {"fp32": median_ms(lambda: mx.eval(hidden @ weight.T), repeats)}
    matrix, vector = np.asarray(memoryview(weight)), np.asarray(memoryview(hidden))[0]
    setter = numpy_blas_threads()
    for threads in (1, 2) if setter else ():
        setter(threads)  # type: ignore[misc]
        out[f"NumPy GEMV, {threads} thread"] = median_ms(lambda: matrix @ vector, repeats)
    for dtype, name in ((mx.bfloat16, "bf16"), (mx.float16, "fp16")):
        w, h = weight.astype(dtype), hidden.astype(dtype)
        mx.eval(w, h)
        out[name] = median_ms(lambda w=w, h=h: mx.eval(h @ w.T), repeats)
        del w
    for bits in (8, 4):
        q, scales, biases = mx.quantize(weight, group_size=64, bits=bits)
        mx.eval(q, scales, biases)
        out[f"q{bits}"] = median_ms(
            lambda q=q, s=scales, b=biases, bits=bits: mx.eval(
                mx.quantized_matmul(hidden, q, s, b, transpose=True, group_size=64, bits=bits)
            ),
            repeats,
        )
    return out


def low_rank_certified(weight: Any, hiddens: Any, rank: int, keep: int = 512) -> float:
    """Share of hidden states whose greedy token a rank-`rank` filter with `keep` candidates
    proves, using |h.w - (Ph).(Pw)| <= |h - PPh| |w - PPw| (P: top principal directions)."""
    import numpy as np

    w = np.asarray(weight, dtype=np.float32)
    values, vectors = np.linalg.eigh((w.T @ w).astype(np.float64))
    basis = vectors[:, np.argsort(values)[::-1][:rank]].astype(np.float32)
    projected = w @ basis
    residual = np.linalg.norm(w - projected @ basis.T, axis=1)
    proven = 0
    for h in np.asarray(hiddens, dtype=np.float32):
        coords = basis.T @ h
        upper = projected @ coords + np.linalg.norm(h - basis @ coords) * residual
        order = np.argpartition(-upper, keep)[: keep + 1]
        order = order[np.argsort(-upper[order])]
        best = float((w[order[:keep]] @ h).max())
        proven += best >= upper[order[keep]]
    return proven / len(hiddens)


def lookup_passes(prompt: list[int], reply: list[int]) -> tuple[int, int]:
    """(passes, passes that carried a draft) prompt lookup needs to produce a known greedy
    `reply`."""
    passes, drafted, done = 0, 0, 0
    while done < len(reply):
        draft = lookup_draft(prompt + reply[:done], DRAFT)
        drafted += bool(draft)
        agreed = 0
        for token in draft:
            if done + agreed < len(reply) and reply[done + agreed] == token:
                agreed += 1
            else:
                break
        done += agreed + 1
        passes += 1
    return passes, drafted


def main() -> None:
    """Measure everything and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--rank", type=int, default=128)
    args = parser.parse_args()
    status = ensure_fast_blas()
    import mlx.core as mx
    from mlx_lm import load, stream_generate
    from mlx_lm.sample_utils import make_sampler

    from adapters.base import prepare_embedded

    model, tokenizer = load(str(prepare_embedded().path))
    model.set_dtype(mx.float32)
    mx.eval(model.parameters())
    weight = model.model.embed_tokens.weight
    prompt = tokenizer.encode(PROMPTS[0])
    print(f"{status.note}; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores\n")

    blas = ctypes.CDLL(status.path) if status.path else None
    splits = {}
    for threads in (2, 1) if blas else (0,):
        if blas:
            blas.openblas_set_num_threads(threads)
        time.sleep(0.5)
        splits[threads] = step_split(model, prompt, args.repeats)
    if blas:
        blas.openblas_set_num_threads(os.cpu_count() or 1)
    print("| OpenBLAS threads | 1-token step ms | 18 blocks ms | output layer + argmax ms "
          f"| {DRAFT + 1}-token pass ms |")  # fmt: skip
    print("|---:|---:|---:|---:|---:|")
    for threads, s in splits.items():
        print(
            f"| {threads or '?'} | {s['step']:.1f} | {s['blocks']:.1f} | {s['head']:.1f} "
            f"| {s['verify']:.1f} |"
        )

    hidden = model.model(mx.array([prompt]))[:, -1, :]
    mx.eval(hidden)
    cost = layouts(weight, hidden, args.repeats)
    print("\n| output layer, 1 row | " + " | ".join(cost) + " |")
    print("|---|" + "---:|" * len(cost))
    print("| ms | " + " | ".join(f"{v:.1f}" for v in cost.values()) + " |")
    print("| ÷ fp32 | " + " | ".join(f"{v / cost['fp32']:.2f}" for v in cost.values()) + " |")

    hiddens, tokens, passes, drafted = [], 0, 0, 0
    for text in PROMPTS:
        ids = tokenizer.encode(text)
        reply = [
            r.token
            for r in stream_generate(
                model, tokenizer, ids, max_tokens=args.tokens, sampler=make_sampler(0.0)
            )
        ]
        tokens += len(reply)
        counted = lookup_passes(ids, reply)
        passes, drafted = passes + counted[0], drafted + counted[1]
        full = model.model(mx.array([ids + reply[:-1]]))[0, len(ids) - 1 :, :]
        hiddens.append(full)
    stacked = mx.concatenate(hiddens)
    mx.eval(stacked)
    proven = low_rank_certified(weight, stacked, args.rank)
    one = statistics.mean(s["step"] for s in splits.values())
    verify = statistics.mean(s["verify"] for s in splits.values())
    per_pass = tokens / passes
    # A pass without a draft is a plain step; one with a draft costs a (DRAFT+1)-token pass.
    spent = drafted * verify + (passes - drafted) * one
    print(
        f"\nlow-rank filter (rank {args.rank}, 512 candidates): greedy token proven for "
        f"{proven:.0%} of {len(stacked)} positions"
    )
    print(
        f"prompt lookup (2-gram, draft {DRAFT}): {tokens} greedy tokens in {passes} passes "
        f"({per_pass:.2f} tokens a pass, {drafted} with a draft); a {DRAFT + 1}-token pass costs "
        f"{verify / one:.2f} steps, so about {tokens * one / spent:.2f}x the tokens per second "
        "of plain decoding"
    )


if __name__ == "__main__":
    main()
