"""A full fine-tune made servable: low-rank extraction checked against NumPy and the tuned model."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import mlx.core as mx
import msgspec
import numpy as np
import pytest
from mlx.utils import tree_flatten
from mlx_lm.utils import load_model

from adapters.base import content_hash
from adapters.extract import ExtractError, extract_lora, extract_run
from adapters.manifest import CONFIG, MANIFEST, LoraParams, Manifest
from adapters.registry import Registry, parse_model_id, publish_checkpoint
from data.atomic import write_bytes
from server.engine.engine import AdapterError, AdapterRef, Engine, ScoreRequest

NAMES = ("q", "k", "v", "o")


def test_truncation_keeps_what_numpy_svd_keeps() -> None:
    """Each factor pair is NumPy's best rank-r approximation; `kept` is its energy share."""
    rng = np.random.default_rng(0)
    base = {f"model.layers.0.self_attn.{n}_proj.weight": rng.normal(size=(24, 16)) for n in NAMES}
    tuned = {k: v + rng.normal(size=v.shape) * 0.1 for k, v in base.items()}
    result = extract_lora(
        {k: mx.array(v, dtype=mx.float32) for k, v in base.items()},
        {k: mx.array(v, dtype=mx.float32) for k, v in tuned.items()},
        rank=5,
        model_type="gemma3_text",
    )
    kept = total = 0.0
    for name, value in base.items():
        u, s, vt = np.linalg.svd(tuned[name] - value, full_matrices=False)
        best = (u[:, :5] * s[:5]) @ vt[:5]
        path = name.removesuffix(".weight")
        a = np.array(result.weights[f"{path}.lora_a"])
        b = np.array(result.weights[f"{path}.lora_b"])
        assert a.shape == (16, 5)
        assert b.shape == (5, 24)
        np.testing.assert_allclose((a @ b).T, best, atol=1e-4)
        kept, total = kept + float((s[:5] ** 2).sum()), total + float((s**2).sum())
    assert result.kept == pytest.approx(kept / total, rel=1e-4)
    assert result.lora.rank == 5
    assert result.lora.scale == 1.0
    assert result.dropped == ()


def test_a_low_rank_change_is_kept_whole_and_a_narrow_layer_is_padded() -> None:
    rng = np.random.default_rng(1)
    w = rng.normal(size=(8, 3)).astype(np.float32)
    change = (rng.normal(size=(8, 2)) @ rng.normal(size=(2, 3))).astype(np.float32)
    name = "model.layers.0.mlp.down_proj.weight"
    result = extract_lora({name: mx.array(w)}, {name: mx.array(w + change)}, 4, "x")
    a, b = (np.array(result.weights[f"model.layers.0.mlp.down_proj.lora_{p}"]) for p in "ab")
    assert a.shape == (3, 4)
    assert b.shape == (4, 8)
    np.testing.assert_allclose((a @ b).T, change, atol=1e-5)
    assert result.kept == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("rank", "tuned", "reason"),
    [
        (0, {}, "outside the servable"),
        (300, {}, "outside the servable"),
        (2, {"model.layers.0.mlp.up_proj.weight": mx.zeros((5, 4))}, "shape differs"),
        (2, {"model.layers.0.mlp.nope.weight": mx.zeros((4, 4))}, "not in the base"),
        (2, {"model.norm.weight": mx.ones((4,))}, "no linear layer"),
    ],
)
def test_checkpoints_that_cannot_be_extracted_are_refused_by_reason(
    rank: int, tuned: dict[str, mx.array], reason: str
) -> None:
    base = {"model.layers.0.mlp.up_proj.weight": mx.zeros((4, 4)), "model.norm.weight": mx.zeros(4)}
    with pytest.raises(ExtractError, match=reason):
        extract_lora(base, tuned, rank, "gemma3_text")


def tuned_copy(model_dir: Path, seed: int, unfoldable: bool) -> dict[str, mx.array]:
    """What a full fine-tune of the tiny model saves: every block tensor, changed."""
    base, _ = load_model(model_dir)
    mx.random.seed(seed)
    tuned: dict[str, mx.array] = {}
    for name, value in tree_flatten(base.parameters()):
        if ".layers." not in name:
            continue
        foldable = "input_layernorm" in name or "pre_feedforward" in name or value.ndim == 2
        scale = 0.05 if foldable or unfoldable else 0.0
        tuned[name] = value + scale * mx.random.normal(value.shape)
    return tuned


def publish_tuned(
    root: Path,
    model_dir: Path,
    tuned: dict[str, mx.array],
    step: int = 40,
    kind: str = "full",
    rank: int = 8,
    scale: float = 20.0,
) -> str:
    """A `kind` ("full" or "dora") checkpoint of the tiny model in a registry; its model id."""
    registry = Registry(root)
    run, run_dir = registry.new_run("tide", kind)
    lora = LoraParams(rank=rank, scale=scale, num_layers=2, fine_tune_type=kind)
    parameters = {"rank": rank, "scale": scale, "dropout": 0.0}
    config = json.dumps(
        {"fine_tune_type": kind, "num_layers": 2, "lora_parameters": parameters}
    ).encode()
    write_bytes(run_dir / CONFIG, config)
    (run_dir / "run.json").write_text(json.dumps({"persona": "tide", "run": run, "config": {
        "persona": "tide", "base_model": str(model_dir), "train_file": "/nowhere/train.jsonl",
        "training": {"fine_tune_type": kind, "rank": rank}}}))  # fmt: skip
    manifest = Manifest("tide", run, step, str(model_dir), content_hash(model_dir), lora, "",
                        time.time(), metrics={"val_loss": 2.5})  # fmt: skip
    publish_checkpoint(run_dir, manifest, lambda p: mx.save_safetensors(str(p), tuned), config)
    return f"tide@{run}:{step}"


def served_logprobs(
    make_engine: Callable[..., Engine], root: Path, source_id: str, lora_id: str, tokens: list[int]
) -> np.ndarray:
    """The engine refuses `source_id` naming `persona extract-lora`, and scores `tokens` with the
    extracted `lora_id`: each next token's log-probability."""
    engine = make_engine(max_batch=2, max_adapters=1)
    engine.start()
    try:
        source = Registry(root).resolve(parse_model_id(source_id))
        assert source is not None
        hint = f"`persona extract-lora {source_id}` makes a servable LoRA"
        with pytest.raises(AdapterError, match=re.escape(hint)):
            asyncio.run(engine.load_adapter(AdapterRef(source.manifest, source.path)))
        lora = Registry(root).resolve(parse_model_id(lora_id))
        assert lora is not None
        request = ScoreRequest(tuple(tokens), 1, AdapterRef(lora.manifest, lora.path))
        return np.array([t.logprob for t in asyncio.run(engine.score(request))])
    finally:
        asyncio.run(engine.aclose())


def logprobs_of(model: Any, tokens: list[int]) -> np.ndarray:
    """Log-probabilities of each next token (NumPy log-softmax over the model's logits)."""
    logits = np.array(model(mx.array([tokens]))[0].astype(mx.float32), dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return logp[np.arange(len(tokens) - 1), tokens[1:]]


def test_the_served_extraction_scores_as_the_full_fine_tune_does(
    tiny_model_dir: Path, tiny_model: Any, make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    """At full rank with only foldable norms changed, the engine serving the extracted LoRA gives
    the tuned model's own log-probabilities: the SVD and the norm folds are exact."""
    tuned = tuned_copy(tiny_model_dir, seed=3, unfoldable=False)
    model_id = publish_tuned(tmp_path, tiny_model_dir, tuned)
    result = extract_run(Registry(tmp_path), model_id, rank=256, validate=False)
    assert result.model_id == "tide@run-2-lora256:40"
    assert result.source == model_id
    assert result.extraction.dropped == ()
    assert len(result.extraction.folded) == 12
    folder = tmp_path / "tide" / "run-2-lora256"
    manifest = msgspec.json.decode((folder / "checkpoints/0000040" / MANIFEST).read_bytes(),
                                   type=Manifest)  # fmt: skip
    assert manifest.lora.fine_tune_type == "lora"
    assert manifest.lora.rank == 256
    assert manifest.lora.num_layers == 6
    record = json.loads((folder / "run.json").read_text())
    assert record["extracted_from"]["model"] == model_id
    assert record["config"]["training"]["fine_tune_type"] == "lora"
    assert (folder / "best").read_text().strip() == "40"

    full, _ = load_model(tiny_model_dir)
    full.load_weights(list(tuned.items()), strict=False)
    _, tokenizer = tiny_model
    chat = [{"role": "user", "content": "Where do crabs sleep?"}]
    tokens = list(tokenizer.apply_chat_template(chat, add_generation_prompt=True))
    tokens += tokenizer.encode("In a burrow by the rocks.", add_special_tokens=False)
    want = logprobs_of(full, tokens)
    base_model, _ = load_model(tiny_model_dir)
    base = logprobs_of(base_model, tokens)
    got = served_logprobs(make_engine, tmp_path, model_id, result.model_id, tokens)
    assert np.abs(base - want).max() > 0.05  # the fine-tune really changed the model
    np.testing.assert_allclose(got, want, atol=2e-3)


def test_unfoldable_norms_are_dropped_and_named(tiny_model_dir: Path, tmp_path: Path) -> None:
    model_id = publish_tuned(tmp_path, tiny_model_dir, tuned_copy(tiny_model_dir, 4, True))
    result = extract_run(Registry(tmp_path), model_id, rank=4, label="small", validate=False)
    dropped = result.extraction.dropped
    assert result.model_id.endswith("-small:40")
    assert {n.rsplit(".", 2)[-2] for n in dropped} == {
        "q_norm", "k_norm", "post_attention_layernorm", "post_feedforward_layernorm"
    }  # fmt: skip
    assert 0 < result.extraction.kept < 1


def test_only_a_full_fine_tune_is_extracted(tiny_model_dir: Path, tmp_path: Path) -> None:
    from adapter_files import publish_random

    ckpt = publish_random(tmp_path, "tide", tiny_model_dir)
    with pytest.raises(ExtractError, match="'lora' checkpoint"):
        extract_run(Registry(tmp_path), f"tide@{ckpt.manifest.run}", 8, validate=False)
    with pytest.raises(ExtractError, match="no checkpoint"):
        extract_run(Registry(tmp_path), "tide@run-9", 8, validate=False)


def test_a_trained_full_fine_tune_extracts_from_the_command_line(
    tmp_path: Path, tiny_model_dir: Path, persona_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`persona extract-lora` on a real (tiny) full fine-tune: a float16 LoRA run whose
    validation loss, measured as stored, is the fine-tune's own at full rank."""
    from train_files import toy_rows, train, write_persona

    from studio.cli import main

    folder = write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(4)[:2])
    train([str(folder), "--model", str(tiny_model_dir), "--iters", "3", "--val-every", "3",
           "--fine-tune-type", "full", "--layers", "-1", "--learning-rate", "1e-3"])  # fmt: skip
    registry = Registry(persona_home / "adapters")
    (full,) = registry.checkpoints("toy", "run-1")[-1:]
    code = main(["extract-lora", "toy@run-1", "--rank", "64", "--dtype", "float16"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.startswith("toy@run-2-lora64:3: rank 64 keeps 100.0% of the change")
    (lora,) = registry.checkpoints("toy", "run-2-lora64")
    assert lora.manifest.lora.fine_tune_type == "lora"
    stored = mx.load(str(lora.path / "adapters.safetensors"))
    assert {v.dtype for v in stored.values()} == {mx.float16}
    # The unfoldable norms moved too, so the match is close rather than exact.
    assert lora.manifest.metrics["val_loss"] == pytest.approx(full.manifest.metrics["val_loss"],
                                                              abs=0.02)  # fmt: skip
    assert main(["extract-lora", "toy@run-2-lora64"]) == 1
    assert "only a 'full' or 'dora' fine-tune needs extracting" in capsys.readouterr().err


def test_a_norm_channel_the_base_zeroes_is_left_and_the_rest_folded() -> None:
    """Gemma scales by 1 + weight: a channel at -1 reaches no layer, so only it is not folded."""
    norm, layer = "model.layers.0.input_layernorm.weight", "model.layers.0.self_attn.q_proj.weight"
    w = np.arange(6, dtype=np.float32).reshape(3, 2) + 1
    base = {norm: mx.array([-1.0, 0.5]), layer: mx.array(w)}
    tuned = {norm: mx.array([-0.5, 1.0]), layer: mx.array(w)}
    result = extract_lora(base, tuned, 2, "gemma3_text")
    a = np.array(result.weights["model.layers.0.self_attn.q_proj.lora_a"])
    b = np.array(result.weights["model.layers.0.self_attn.q_proj.lora_b"])
    np.testing.assert_allclose((a @ b).T, w * np.array([1.0, 2.0 / 1.5]) - w, atol=1e-5)
    assert result.folded == (norm,)
    assert result.dropped == (f"{norm} (channels the base zeroes)",)


def test_the_index_refuses_a_full_checkpoint_before_any_load(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """So `/v1/models` lists only what can answer, and a request names the command."""
    from server.hotswap.index import CheckpointIndex

    model_id = publish_tuned(tmp_path, tiny_model_dir, tuned_copy(tiny_model_dir, 5, False))
    extract_run(Registry(tmp_path), model_id, rank=4, validate=False)
    index = CheckpointIndex(Registry(tmp_path), lambda: content_hash(tiny_model_dir))
    asyncio.run(index.rescan("tide"))
    assert [c.manifest.run for c in index.usable("tide")] == ["run-2-lora4"]
    (full,) = [c for c in index.checkpoints("tide") if c.manifest.run == "run-1-full"]
    assert f"`persona extract-lora {model_id}`" in (index.refusal(full.manifest.key) or "")


def test_a_dora_checkpoint_is_served_as_mlx_lm_runs_it(
    tiny_model_dir: Path, tiny_model: Any, make_engine: Callable[..., Engine], tmp_path: Path
) -> None:
    """A DoRA checkpoint (mlx-lm's own layers, each output row rescaled by its magnitude) is
    refused by the engine with the extract hint, and at full rank the extracted LoRA scores
    exactly as the DoRA model itself does."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    dora, _ = load_model(tiny_model_dir)
    dora.freeze()
    linear_to_lora_layers(dora, 2, {"rank": 4, "scale": 8.0, "dropout": 0.0}, use_dora=True)
    mx.random.seed(5)
    trained = {
        name: value + 0.05 * mx.random.normal(value.shape)
        for name, value in tree_flatten(dora.trainable_parameters())
    }
    assert any(name.endswith(".m") for name in trained)
    dora.load_weights(list(trained.items()), strict=False)
    model_id = publish_tuned(tmp_path, tiny_model_dir, trained, 12, "dora", rank=4, scale=8.0)

    result = extract_run(Registry(tmp_path), model_id, rank=256, validate=False)
    assert result.model_id == "tide@run-2-lora256:12"
    assert result.extraction.dropped == ()
    assert result.extraction.kept == pytest.approx(1.0)
    _, tokenizer = tiny_model
    chat = [{"role": "user", "content": "What do gulls eat?"}]
    tokens = list(tokenizer.apply_chat_template(chat, add_generation_prompt=True))
    tokens += tokenizer.encode("Chips, mostly, and crabs.", add_special_tokens=False)
    want = logprobs_of(dora, tokens)
    base_model, _ = load_model(tiny_model_dir)
    assert np.abs(logprobs_of(base_model, tokens) - want).max() > 0.05
    got = served_logprobs(make_engine, tmp_path, model_id, result.model_id, tokens)
    np.testing.assert_allclose(got, want, atol=2e-3)
