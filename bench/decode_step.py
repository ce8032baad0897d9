"""What one batched decode step costs per row: 1 row against 4, per sampling mode, in one run.

Drives the engine's scheduler directly (no thread, no HTTP) so only decode steps are timed: rows
are admitted and prefilled first, then `--steps` steps run. For each mode it prints wall time per
step with 1 and with 4 rows and their throughput ratio (4 rows' tokens/s over 1 row's), plus the
Python calls per step from cProfile. Modes: greedy with end-of-turn biased away (what
bench/serve.py sends), seeded sampling (temperature 0.9, top_p 0.95), greedy with logprobs
(top 5), and a JSON grammar.
`--choose` times only the token choice (processors, normalisation, draw, logprobs) on synthetic
262,144-wide logits, in process CPU time: what each extra row adds to a step, without the model.
Usage: python bench/decode_step.py [--tiny] [--steps 24] [--modes greedy,seeded,logprobs,json]
       python bench/decode_step.py --choose
"""

from __future__ import annotations

import argparse
import cProfile
import json
import pstats
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from adapters.blas import ensure_fast_blas

STOP_BIAS = ((1, -100.0), (106, -100.0))
PROMPT = "The old lighthouse keeper climbed the stairs every evening, and on the last night"
TINY = {
    "model_type": "gemma3_text", "hidden_size": 64, "num_hidden_layers": 6,
    "intermediate_size": 128, "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 32,
    "rms_norm_eps": 1e-6, "vocab_size": 262144, "rope_theta": 1e6, "rope_local_base_freq": 1e4,
    "sliding_window": 512, "sliding_window_pattern": 6, "query_pre_attn_scalar": 32,
    "max_position_embeddings": 2048, "bos_token_id": 2, "eos_token_id": [1, 106],
    "pad_token_id": 0, "tie_word_embeddings": True,
}  # fmt: skip
"""The test suite's tiny gemma3_text: the real 262,144-token output layer, a toy body."""


def tiny_model_dir(embedded: Path) -> Path:
    """Write the tiny model (random weights, seed 0) with the embedded model's tokenizer."""
    import shutil

    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import gemma3_text

    folder = Path(tempfile.mkdtemp(prefix="bench-tiny-"))
    mx.random.seed(0)
    model = gemma3_text.Model(gemma3_text.ModelArgs.from_dict(TINY))
    mx.eval(model.parameters())
    mx.save_safetensors(str(folder / "model.safetensors"), dict(tree_flatten(model.parameters())))
    (folder / "config.json").write_text(json.dumps(TINY))
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        if (embedded / name).exists():
            shutil.copy(embedded / name, folder / name)
    return folder


def params_for(mode: str, row: int, steps: int) -> tuple[Any, Any]:
    """(SamplingParams, JsonGrammar or None) of one row in a mode."""
    from server.engine.types import JsonGrammar, SamplingParams

    many = steps + 8
    if mode == "greedy":
        return SamplingParams(max_tokens=many, temperature=0.0, logit_bias=STOP_BIAS), None
    if mode == "seeded":
        return SamplingParams(
            max_tokens=many, temperature=0.9, top_p=0.95, seed=row, logit_bias=STOP_BIAS
        ), None
    if mode == "logprobs":
        return SamplingParams(
            max_tokens=many, temperature=0.0, logprobs=True, top_logprobs=5, logit_bias=STOP_BIAS
        ), None
    if mode == "json":
        return SamplingParams(max_tokens=many, temperature=0.0), JsonGrammar('{"type":"object"}')
    raise SystemExit(f"unknown mode {mode}")


def measure(scheduler: Any, prompt: tuple[int, ...], mode: str, rows: int, steps: int) -> dict:
    """Admit `rows` rows, prefill them, then time `steps` decode steps."""
    import mlx.core as mx

    from server.engine.commands import Submit
    from server.engine.row import Handle
    from server.engine.types import GenerationRequest

    for i in range(rows):
        params, grammar = params_for(mode, i, steps)
        if grammar is not None:
            scheduler.grammars.compile(grammar)
        request = GenerationRequest(prompt, params, None, grammar)
        scheduler._apply(Submit(Handle(i, request, lambda _item: None)))
    scheduler._admit()
    while scheduler._admitted or scheduler._group:
        scheduler._prefill_some()
    for _ in range(3):
        scheduler._step()
    mx.synchronize()
    profile = cProfile.Profile()
    start, cpu = time.perf_counter(), time.process_time()
    profile.enable()
    for _ in range(steps):
        scheduler._step()
    mx.synchronize()
    profile.disable()
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
    scheduler._remove(list(range(len(scheduler.batch.rows))))
    stats = pstats.Stats(profile)
    return {"wall": wall / steps, "cpu": cpu / steps, "calls": calls / steps, "stats": stats}


def choose_cost(vocab: int = 262144, repeats: int = 12) -> None:
    """CPU ms of choosing tokens for 1 and 4 rows, and what each extra row adds, per mode."""
    import mlx.core as mx

    from server.engine.batch import DecodeBatch
    from server.engine.row import Handle, Row
    from server.engine.sampling import RowSampler
    from server.engine.types import GenerationRequest, SamplingParams

    modes = {
        "greedy, stop ids biased": {"temperature": 0.0, "logit_bias": STOP_BIAS},
        "seeded, top_p 0.95": {"temperature": 0.9, "top_p": 0.95, "seed": 1},
        "seeded, whole vocabulary": {"temperature": 0.9, "seed": 1},
        "greedy, top 5 logprobs": {"temperature": 0.0, "logprobs": True, "top_logprobs": 5},
    }
    batch = DecodeBatch.__new__(DecodeBatch)  # only the token choice: no model, no cache
    batch.vocab_size = vocab
    mx.random.seed(0)
    logits = mx.random.normal((4, vocab)) * 3
    inputs = mx.array([5, 6, 7, 8], dtype=mx.uint32)
    mx.eval(logits)
    for name, fields in modes.items():
        cost = {}
        for n in (1, 4):
            rows = []
            for i in range(n):
                params = SamplingParams(max_tokens=1000, **fields)  # type: ignore[arg-type]
                request = GenerationRequest((2, 3, 4), params)
                sampler = RowSampler(params, request.prompt, (1, 106), vocab)
                rows.append(Row(Handle(i, request, lambda _item: None), sampler, None, 0, ""))
            times = []
            for _ in range(repeats):
                cpu = time.process_time()
                out = batch._choose(rows, logits[:n], inputs[:n])
                mx.eval(out, *[a for r in rows if r.pending for a in r.pending if a is not None])
                times.append(time.process_time() - cpu)
            cost[n] = statistics.median(times[2:]) * 1000
        extra = (cost[4] - cost[1]) / 3
        print(f"{name:26} 1 row {cost[1]:6.2f} ms  4 rows {cost[4]:6.2f} ms  +{extra:5.2f} ms/row")


def main() -> None:
    """Measure each mode at 1 and 4 rows, interleaved, and print the ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tiny test model, not the 270M")
    parser.add_argument("--steps", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=4)
    parser.add_argument("--modes", default="greedy,seeded,logprobs,json")
    parser.add_argument("--profile", help="print the cProfile of the N-row step of this mode")
    parser.add_argument("--choose", action="store_true", help="time only the token choice")
    args = parser.parse_args()
    ensure_fast_blas()
    import os

    if args.choose:
        print(f"load average {os.getloadavg()[0]:.1f}")
        choose_cost()
        return

    from mlx_lm import load

    from adapters.base import prepare_embedded
    from server.engine.loop import Scheduler

    embedded = prepare_embedded().path
    folder = tiny_model_dir(embedded) if args.tiny else embedded
    model, tokenizer = load(str(folder))
    vocab = int(model.args.vocab_size)
    scheduler = Scheduler(
        model, tokenizer, base_hash="", vocab_size=vocab, max_batch=8, max_adapters=2
    )
    prompt = tuple(tokenizer.encode(PROMPT))
    modes = args.modes.split(",")
    print(f"{'tiny' if args.tiny else '270M'}; load average {os.getloadavg()[0]:.1f}")
    results: dict[tuple[str, int], list[dict]] = {}
    for _ in range(args.rounds):
        for mode in modes:
            for rows in (1, args.rows):
                results.setdefault((mode, rows), []).append(
                    measure(scheduler, prompt, mode, rows, args.steps)
                )
    n = args.rows
    print(
        f"{'mode':10} {'1 row ms':>9} {f'{n} rows ms':>10} {'tok/s ratio':>12} {'calls 1':>8}"
        f" {f'calls {n}':>8} {'cpu 1 ms':>9} {f'cpu {n} ms':>9}"
    )
    for mode in modes:
        one = statistics.median(r["wall"] for r in results[(mode, 1)]) * 1000
        many = statistics.median(r["wall"] for r in results[(mode, args.rows)]) * 1000
        c1 = statistics.median(r["calls"] for r in results[(mode, 1)])
        cn = statistics.median(r["calls"] for r in results[(mode, args.rows)])
        ratio = args.rows * one / many
        cpu1 = statistics.median(r["cpu"] for r in results[(mode, 1)]) * 1000
        cpun = statistics.median(r["cpu"] for r in results[(mode, args.rows)]) * 1000
        print(
            f"{mode:10} {one:9.1f} {many:10.1f} {ratio:11.2f}x {c1:8.0f} {cn:8.0f}"
            f" {cpu1:9.1f} {cpun:9.1f}"
        )
    if args.profile:
        stats = measure(scheduler, prompt, args.profile, args.rows, args.steps)["stats"]
        stats.sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
