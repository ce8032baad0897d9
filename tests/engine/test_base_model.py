"""The prepared base model: stop ids, BOS, idempotent preparation, and the real 270M."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from adapters.base import STOP_IDS, check_prepared, prepare_embedded


def test_tokenizer_stops_on_eos_and_end_of_turn(tiny_model) -> None:  # type: ignore[no-untyped-def]
    _, tokenizer = tiny_model
    assert set(tokenizer.eos_token_ids) == set(STOP_IDS)


def test_encode_adds_bos_once_and_template_does_not_double_it(tiny_model) -> None:  # type: ignore[no-untyped-def]
    _, tokenizer = tiny_model
    assert tokenizer.encode("hello")[0] == 2
    ids = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True
    )
    assert ids[0] == 2
    assert ids[1] != 2


def test_chat_generation_stops_at_end_of_turn(tiny_model) -> None:  # type: ignore[no-untyped-def]
    import mlx.core as mx
    from mlx_lm import stream_generate
    from mlx_lm.sample_utils import make_sampler

    model, tokenizer = tiny_model
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True
    )

    def end_turn_after_three(tokens: mx.array, logits: mx.array) -> mx.array:
        generated = tokens.shape[-1] - len(prompt)
        if generated >= 3:
            bias = mx.zeros_like(logits)
            bias[..., 106] = 1e4
            return logits + bias
        return logits

    responses = list(
        stream_generate(
            model,
            tokenizer,
            prompt,
            max_tokens=50,
            sampler=make_sampler(0.0),
            logits_processors=[end_turn_after_three],
        )
    )
    assert responses[-1].finish_reason == "stop"
    assert responses[-1].token == 106
    assert len(responses) == 4


def test_prepare_is_idempotent(embedded_model_dir: Path) -> None:
    start = time.perf_counter()
    again = prepare_embedded()
    assert again.cached
    assert again.path == embedded_model_dir
    assert time.perf_counter() - start < 30  # generous: cached means no conversion at all


def test_corrupt_cache_is_reported_clearly(embedded_model_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "model"
    copy.mkdir()
    stamp = json.loads((embedded_model_dir / "prepared.json").read_text())
    (copy / "prepared.json").write_text(json.dumps(stamp))
    missing = check_prepared(copy)
    assert missing is not None
    assert missing.endswith("is missing")
    for name in stamp["files"]:
        (copy / name).write_bytes(b"x" * 10)
    problem = check_prepared(copy)
    assert problem is not None
    assert "has 10 bytes, expected" in problem
    stamp["source"] = "something-else"
    (copy / "prepared.json").write_text(json.dumps(stamp))
    assert check_prepared(copy) == "the source checksum changed"


@pytest.mark.slow
def test_embedded_model_knows_paris(embedded_model_dir: Path) -> None:
    import mlx.core as mx
    from mlx_lm import load

    model, tokenizer = load(str(embedded_model_dir))
    ids = tokenizer.encode("The capital of France is")
    assert ids[0] == 2
    logits = model(mx.array([ids]))[0, -1]
    top5 = [tokenizer.decode([i]) for i in mx.argsort(-logits)[:5].tolist()]
    assert " Paris" in top5
