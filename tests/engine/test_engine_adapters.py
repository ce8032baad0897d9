"""LoRA adapters per batch row on the tiny model: correctness, sharing, LRU, refusals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from adapter_files import BAD_KINDS, publish_bad, publish_random

from adapters.registry import Checkpoint, read_manifest
from server.engine.engine import (
    AdapterError,
    AdapterRef,
    Delta,
    Engine,
    GenerationRequest,
    SamplingParams,
)

WAIT = 60.0
"""Upper bound when waiting for the engine thread to catch up; tests never assert durations."""

REASONS = {
    "truncated": "truncated",
    "corrupt": "corrupt",
    "wrong_shape": "shape",
    "missing_config": "adapter_config.json is missing",
    "wrong_base": "trained on base",
    "sha_mismatch": "sha256",
    "wrong_rank": "shape",
    "unknown_module": "do not exist in this model",
    "not_complete": "not 'complete'",
    "garbage_config": "not a valid adapter config",
}
"""A word of the reason each broken drop must be refused with."""


@pytest.fixture(scope="module")
def engine(make_engine: Callable[..., Engine]) -> Iterator[Engine]:
    """A started engine with room for three adapters."""
    eng = make_engine(max_batch=8, max_adapters=3)
    eng.start()
    yield eng
    asyncio.run(eng.aclose())


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An adapters folder shared by the module's tests."""
    return tmp_path_factory.mktemp("adapters")


def ref(ckpt: Checkpoint) -> AdapterRef:
    """The engine's handle on a published checkpoint."""
    return AdapterRef(ckpt.manifest, ckpt.path)


def prompt_of(engine: Engine, text: str = "hello there") -> tuple[int, ...]:
    """A one-turn chat prompt."""
    return tuple(
        engine.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True
        )
    )


async def run(
    engine: Engine, adapter: AdapterRef | None, max_tokens: int = 10, text: str = "hello there"
) -> list[Delta]:
    """All deltas of one greedy sequence."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0)
    request = GenerationRequest(prompt_of(engine, text), params, adapter)
    return [d async for d in engine.stream(request)]


def ids(deltas: list[Delta]) -> list[int]:
    """Every generated token id."""
    return [t for d in deltas for t in d.token_ids]


async def until(condition: Any) -> None:
    """Wait (bounded) for the engine thread to reach a state."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT
    while not condition():
        assert loop.time() < deadline, "the engine did not get there"
        await asyncio.sleep(0.01)


async def test_an_adapter_gives_mlx_lms_own_lora_output(
    engine: Engine, root: Path, tiny_model_dir: Path, tiny_model: Any
) -> None:
    import mlx.core as mx
    from mlx_lm.generate import generate_step
    from mlx_lm.tuner.utils import load_adapters
    from mlx_lm.utils import load_model

    ckpt = publish_random(root, "mlxref", tiny_model_dir, rank=4, num_layers=3, seed=3)
    reference, _ = load_model(tiny_model_dir)
    load_adapters(reference, str(ckpt.path))
    prompt = mx.array(prompt_of(engine))
    expected = [t for t, _ in generate_step(prompt, reference, max_tokens=10)]

    with_adapter = await run(engine, ref(ckpt))
    assert ids(with_adapter) == expected
    assert with_adapter[-1].adapter_version == "run-1:100"
    assert ids(await run(engine, None)) != expected


async def test_rows_on_different_adapters_share_a_batch_and_match_each_alone(
    engine: Engine, root: Path, tiny_model_dir: Path
) -> None:
    a = ref(publish_random(root, "ada", tiny_model_dir, rank=4, seed=1))
    b = ref(publish_random(root, "bo", tiny_model_dir, rank=8, num_layers=4, seed=2))
    alone = [ids(await run(engine, adapter, 12)) for adapter in (a, b, None)]
    assert len({tuple(x) for x in alone}) == 3, "the adapters should change the output"
    shared_before = _shared_steps(engine)
    together = await asyncio.gather(*(run(engine, x, 12) for x in (a, b, None)))
    assert [ids(d) for d in together] == alone
    assert [d[-1].adapter_version for d in together] == ["run-1:100", "run-1:100", None]
    assert _shared_steps(engine) > shared_before


def _shared_steps(engine: Engine) -> int:
    return sum(n for size, n in engine.stats().batch_sizes if size >= 2)


async def test_least_recently_used_idle_adapter_is_evicted(
    make_engine: Callable[..., Engine], root: Path, tiny_model_dir: Path
) -> None:
    small = make_engine(max_batch=4, max_adapters=2)
    small.start()
    try:
        a, b, c = (
            ref(publish_random(root, name, tiny_model_dir, seed=i))
            for i, name in enumerate(("lru-a", "lru-b", "lru-c"), start=10)
        )
        first_a = ids(await run(small, a))
        await small.load_adapter(b)
        assert small.loaded_adapters() == [b.manifest.key, a.manifest.key]
        await small.load_adapter(c)
        assert small.loaded_adapters() == [c.manifest.key, b.manifest.key]
        assert small.stats().adapter_evictions == 1
        # A request for the evicted adapter loads it again, evicting the least recently used.
        assert ids(await run(small, a)) == first_a
        assert small.loaded_adapters() == [a.manifest.key, c.manifest.key]
        await small.unload_adapter(a.manifest.key)
        assert small.loaded_adapters() == [c.manifest.key]
    finally:
        await small.aclose()


async def test_a_running_row_keeps_its_version_while_others_load(
    make_engine: Callable[..., Engine], root: Path, tiny_model_dir: Path
) -> None:
    small = make_engine(max_batch=4, max_adapters=2)
    small.start()
    try:
        old = publish_random(root, "keep", tiny_model_dir, step=100, seed=20)
        new = publish_random(root, "keep", tiny_model_dir, run=old.manifest.run, step=200, seed=21)
        others = [ref(publish_random(root, f"other-{i}", tiny_model_dir, seed=i)) for i in (1, 2)]
        expected = ids(await run(small, ref(old), 40))
        stream = small.stream(
            GenerationRequest(
                prompt_of(small), SamplingParams(max_tokens=40, temperature=0.0), ref(old)
            )
        )
        deltas = [await anext(stream)]
        # The new version gets its own slot; with room for two, the busy old one is never evicted.
        await small.load_adapter(ref(new))
        for other in others:
            await small.load_adapter(other)
            assert ref(old).manifest.key in small.loaded_adapters()
        deltas += [d async for d in stream]
        assert ids(deltas) == expected
        assert {d.adapter_version for d in deltas} == {"run-1:100"}
        assert ids(await run(small, ref(new), 40)) != expected
    finally:
        await small.aclose()


async def test_each_kind_of_bad_adapter_is_refused_while_the_old_one_keeps_serving(
    engine: Engine, root: Path, tiny_model_dir: Path
) -> None:
    good = ref(publish_random(root, "steady", tiny_model_dir, seed=5))
    expected = ids(await run(engine, good, 30))
    failures = engine.stats().adapter_failures
    stream = engine.stream(
        GenerationRequest(prompt_of(engine), SamplingParams(max_tokens=30, temperature=0.0), good)
    )
    deltas = [await anext(stream)]
    for step, kind in enumerate(BAD_KINDS, start=1):
        folder = publish_bad(root, "steady", tiny_model_dir, kind, run="run-9", step=step)
        manifest = read_manifest(folder)
        assert manifest is not None
        with pytest.raises(AdapterError) as info:
            await engine.load_adapter(AdapterRef(manifest, folder))
        assert REASONS[kind] in info.value.reason, kind
        assert manifest.key not in engine.loaded_adapters()
    deltas += [d async for d in stream]
    assert ids(deltas) == expected
    assert good.manifest.key in engine.loaded_adapters()
    assert engine.stats().adapter_failures == failures + len(BAD_KINDS)


@pytest.mark.parametrize(
    ("options", "reason"),
    [({"rank": 300}, "rank 300 is outside"), ({"std": float("nan")}, "NaN")],
)
async def test_what_only_the_engine_can_see_is_refused(
    engine: Engine, root: Path, tiny_model_dir: Path, options: dict[str, Any], reason: str
) -> None:
    bad = publish_random(root, "odd", tiny_model_dir, **options)
    with pytest.raises(AdapterError) as info:
        await engine.load_adapter(ref(bad))
    assert reason in info.value.reason


async def test_a_bad_adapter_fails_only_its_own_request(
    engine: Engine, root: Path, tiny_model_dir: Path
) -> None:
    folder = publish_bad(root, "broken", tiny_model_dir, "truncated", run="run-1", step=1)
    manifest = read_manifest(folder)
    assert manifest is not None
    expected = ids(await run(engine, None, 20))

    async def doomed() -> str:
        with pytest.raises(AdapterError) as info:
            await run(engine, AdapterRef(manifest, folder))
        return info.value.reason

    base, reason = await asyncio.gather(run(engine, None, 20), doomed())
    assert ids(base) == expected
    assert "truncated" in reason
    await until(lambda: engine.stats().active == 0)


async def test_a_request_waits_for_a_slot_when_all_serve_running_rows(
    make_engine: Callable[..., Engine], root: Path, tiny_model_dir: Path
) -> None:
    single = make_engine(max_batch=4, max_adapters=1)
    single.start()
    try:
        a = ref(publish_random(root, "wait-a", tiny_model_dir, seed=30))
        b = ref(publish_random(root, "wait-b", tiny_model_dir, seed=31))
        alone = [ids(await run(single, x, 12)) for x in (a, b)]
        together = await asyncio.gather(run(single, a, 12), run(single, b, 12))
        assert [ids(d) for d in together] == alone
        assert single.stats().failed == 0
    finally:
        await single.aclose()
