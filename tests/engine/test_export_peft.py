"""`persona export --to peft`: PEFT's own formula on the exported file equals the MLX adapter.

The oracle is an independent NumPy implementation of PEFT's LoRA (and DoRA) forward pass,
`W x + (alpha / r) B A x`, times `m / ||W + (alpha / r) B A||` per output row for DoRA, read from
the exported `adapter_model.safetensors` and `adapter_config.json` alone.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_files import export, mlx_outputs, peft_forward, publish_adapter
from safetensors.numpy import load_file

SQUARE_KEYS = ("self_attn.q_proj", "self_attn.o_proj")
"""64 -> 64 in the tiny model: with rank 64 both factors are square."""


@pytest.mark.parametrize(
    ("kind", "rank", "keys"),
    [("lora", 4, None), ("lora", 64, SQUARE_KEYS), ("dora", 4, None), ("dora", 64, SQUARE_KEYS)],
)
def test_peft_matches_mlx(
    tiny_model_dir: Path, tmp_path: Path, kind: str, rank: int, keys: tuple[str, ...] | None
) -> None:
    root = tmp_path / "adapters"
    ckpt = publish_adapter(
        root, "toy", tiny_model_dir, fine_tune_type=kind, rank=rank, keys=keys, seed=rank
    )
    out = tmp_path / "peft"
    assert export(["toy", "--to", "peft", "--out", str(out), "--model", str(tiny_model_dir),
                   "--adapters", str(root)]) == 0  # fmt: skip
    config = json.loads((out / "adapter_config.json").read_text())
    tensors = load_file(str(out / "adapter_model.safetensors"))
    assert config["peft_type"] == "LORA"
    assert config["r"] == rank
    assert config["lora_alpha"] == pytest.approx(20.0 * rank)
    assert config["layers_to_transform"] == [4, 5]
    assert config["use_dora"] is (kind == "dora")
    expected_modules = {k.rsplit(".", 1)[1] for k in keys} if keys else {
        "q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}  # fmt: skip
    assert set(config["target_modules"]) == expected_modules

    base = load_file(str(tiny_model_dir / "model.safetensors"))
    rng = np.random.default_rng(1)
    names = sorted(
        k.removeprefix("base_model.model.").removesuffix(".lora_A.weight")
        for k in tensors
        if k.endswith(".lora_A.weight")
    )
    assert len(names) == 2 * len(expected_modules)
    inputs = {n: rng.standard_normal((3, base[f"{n}.weight"].shape[1])) for n in names}
    got = mlx_outputs(tiny_model_dir, ckpt.path, inputs)
    for name in names:
        prefix = f"base_model.model.{name}"
        a, b = tensors[f"{prefix}.lora_A.weight"], tensors[f"{prefix}.lora_B.weight"]
        out_dim, in_dim = base[f"{name}.weight"].shape
        assert a.shape == (rank, in_dim)
        assert b.shape == (out_dim, rank)
        expected = peft_forward(inputs[name], base[f"{name}.weight"], tensors, prefix, config)
        assert np.abs(expected - got[name]).max() < 1e-4, name
        if rank == in_dim == out_dim:
            # The trap this test exists for: untransposed square factors load and compute garbage.
            wrong = dict(tensors)
            wrong[f"{prefix}.lora_A.weight"] = a.T
            wrong[f"{prefix}.lora_B.weight"] = b.T
            bad = peft_forward(inputs[name], base[f"{name}.weight"], wrong, prefix, config)
            assert np.abs(bad - got[name]).max() > 1e-2, name


def test_full_fine_tune_is_refused_as_adapter(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "adapters"
    # Only the declared type matters here: the refusal comes before any weight is read.
    publish_adapter(root, "toy", tiny_model_dir, fine_tune_type="full")
    out = tmp_path / "out"
    code = export(["toy@run-1", "--to", "peft", "--out", str(out), "--model", str(tiny_model_dir),
                   "--adapters", str(root)])  # fmt: skip
    assert code == 1
    assert "full fine-tune" in capsys.readouterr().err
    assert not out.exists()


def test_bad_ids_and_busy_folders_are_refused(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "adapters"
    publish_adapter(root, "toy", tiny_model_dir)
    common = ["--model", str(tiny_model_dir), "--adapters", str(root)]
    assert export(["../etc", "--to", "peft", "--out", str(tmp_path / "a"), *common]) == 1
    assert "invalid model id" in capsys.readouterr().err
    assert export(["toy@run-9", "--to", "peft", "--out", str(tmp_path / "a"), *common]) == 1
    assert "no checkpoints" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    for extra in ([], ["--force"]):  # --force never deletes a folder that is not an export
        assert export(["toy", "--to", "peft", "--out", str(busy), *extra, *common]) == 1
        assert "not an earlier export" in capsys.readouterr().err
        assert (busy / "keep.txt").read_text() == "mine"
    again = tmp_path / "again"
    assert export(["toy", "--to", "peft", "--out", str(again), *common]) == 0
    assert export(["toy", "--to", "gguf", "--out", str(again), *common]) == 1
    assert "--force" in capsys.readouterr().err
    assert export(["toy", "--to", "gguf", "--out", str(again), "--force", *common]) == 0
    assert sorted(p.name for p in again.iterdir()) == ["README.md", "toy-run-1-10-lora.gguf"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
