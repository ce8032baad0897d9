"""The cheap checkpoint checks: each broken drop is named; a good one passes and loads in mlx-lm."""

from __future__ import annotations

from pathlib import Path

import pytest
from adapter_files import BAD_KINDS, publish_bad, publish_random

from adapters.base import content_hash
from adapters.registry import Registry, read_manifest
from adapters.verify import checkpoint_problems

EXPECTED = {
    "truncated": "truncated",
    "corrupt": "corrupt",
    "missing_config": "adapter_config.json is missing",
    "wrong_base": "trained on base",
    "sha_mismatch": "sha256",
    "not_complete": "not 'complete'",
    "garbage_config": "not a valid adapter config",
}
"""Drops these checks must refuse, and a word of the reason; shapes are the engine's to refuse."""


def test_a_good_checkpoint_passes_and_loads_into_mlx_lm(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.tuner.utils import load_adapters

    ckpt = publish_random(tmp_path / "adapters", "juni", tiny_model_dir, step=10)
    assert checkpoint_problems(ckpt, content_hash(tiny_model_dir)) == []
    model, tokenizer = load(str(tiny_model_dir))
    prompt = mx.array([tokenizer.encode("Hello there")])
    base = model(prompt)
    load_adapters(model, str(ckpt.path))
    adapted = model(prompt)
    assert not mx.allclose(base, adapted).item()


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_each_broken_drop_is_described(tmp_path: Path, tiny_model_dir: Path, kind: str) -> None:
    root = tmp_path / "adapters"
    folder = publish_bad(root, "juni", tiny_model_dir, kind, run="run-1", step=20)
    manifest = read_manifest(folder)
    assert manifest is not None
    ckpt = next(c for c in Registry(root).checkpoints("juni", "run-1") if c.path == folder)
    problems = checkpoint_problems(ckpt, content_hash(tiny_model_dir))
    if kind in EXPECTED:
        assert any(EXPECTED[kind] in p for p in problems), problems
    else:
        # Wrong shapes, ranks and modules are well-formed files; the engine refuses them.
        assert problems == []


def test_a_manifest_in_the_wrong_folder_is_refused(tmp_path: Path, tiny_model_dir: Path) -> None:
    ckpt = publish_random(tmp_path / "adapters", "juni", tiny_model_dir, step=10)
    moved = ckpt.path.with_name("0000011")
    ckpt.path.rename(moved)
    problems = checkpoint_problems(type(ckpt)(ckpt.manifest, moved), None)
    assert any("sits in" in p for p in problems)


def test_weights_replaced_after_a_check_are_caught(tmp_path: Path, tiny_model_dir: Path) -> None:
    ckpt = publish_random(tmp_path / "adapters", "juni", tiny_model_dir, step=10, seed=1)
    assert checkpoint_problems(ckpt, None) == []
    other = publish_random(tmp_path / "other", "juni", tiny_model_dir, step=10, seed=2)
    (ckpt.path / "adapters.safetensors").write_bytes(
        (other.path / "adapters.safetensors").read_bytes()
    )
    assert any("sha256" in p for p in checkpoint_problems(ckpt, None))
