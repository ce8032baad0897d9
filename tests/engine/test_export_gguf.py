"""`persona export --to gguf` and `--to gguf-full`, read back with the `gguf` package's reader.

What llama.cpp checks when it loads an adapter is checked here too: the adapter's type and alpha
keys, tensor names after the base tensors, and the ggml shapes (in, r) and (r, out). The
function is checked numerically: PEFT's formula on the GGUF's factors equals mlx-lm's adapter.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_files import export, mlx_outputs, publish_adapter
from gguf import GGUFReader
from gguf.quants import dequantize
from safetensors.numpy import load_file

from adapters.export.gguf_model import gguf_name


def tensors_of(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a GGUF file, dequantized to float32 in NumPy (out, in) order."""
    reader = GGUFReader(path)
    out = {}
    for t in reader.tensors:
        shape = tuple(int(d) for d in reversed(t.shape.tolist()))
        out[t.name] = dequantize(t.data, t.tensor_type).astype(np.float32).reshape(shape)
    return out


def field(reader: GGUFReader, key: str) -> object:
    return reader.fields[key].contents()


def test_lora_gguf_is_what_llama_cpp_loads(tiny_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    ckpt = publish_adapter(root, "toy", tiny_model_dir, rank=4, scale=10.0, seed=3)
    out = tmp_path / "gguf"
    assert export(["toy", "--to", "gguf", "--out", str(out), "--model", str(tiny_model_dir),
                   "--adapters", str(root)]) == 0  # fmt: skip
    path = out / "toy-run-1-10-lora.gguf"
    reader = GGUFReader(path)
    assert field(reader, "general.architecture") == "gemma3"
    assert field(reader, "general.type") == "adapter"
    assert field(reader, "adapter.type") == "lora"
    assert field(reader, "adapter.lora.alpha") == pytest.approx(40.0)
    shapes = {t.name: t.shape.tolist() for t in reader.tensors}
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    assert len(shapes) == 2 * 7 * 2
    for name, ne in shapes.items():
        target, _, leaf = name.rpartition(".")
        assert target.startswith(("blk.4.", "blk.5.")), name
        hf = next(k for k in base if gguf_name(k) == target)
        out_dim, in_dim = base[hf].shape
        assert ne == ([in_dim, 4] if leaf == "lora_a" else [4, out_dim]), name

    data = tensors_of(path)
    rng = np.random.default_rng(0)
    names = sorted({n.removesuffix(".weight.lora_a") for n in data if n.endswith("lora_a")})
    hf_names = {n: next(k for k in base if gguf_name(k) == f"{n}.weight") for n in names}
    inputs = {hf[: -len(".weight")]: rng.standard_normal((2, base[hf].shape[1]))
              for hf in hf_names.values()}  # fmt: skip
    got = mlx_outputs(tiny_model_dir, ckpt.path, inputs)
    for n, hf in hf_names.items():
        a, b = data[f"{n}.weight.lora_a"], data[f"{n}.weight.lora_b"]
        x = inputs[hf[: -len(".weight")]]
        expected = x @ base[hf].T.astype(np.float64) + (40.0 / 4) * (x @ a.T) @ b.T
        assert np.abs(expected - got[hf[: -len(".weight")]]).max() < 1e-4, n


def test_dora_and_full_are_refused_for_llama_cpp(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "adapters"
    publish_adapter(root, "toy", tiny_model_dir, fine_tune_type="dora")
    common = ["--model", str(tiny_model_dir), "--adapters", str(root)]
    assert export(["toy", "--to", "gguf", "--out", str(tmp_path / "x"), *common]) == 1
    assert "no DoRA magnitude" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_fused_gguf_holds_the_fused_weights(tiny_model_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "adapters"
    ckpt = publish_adapter(root, "toy", tiny_model_dir, fine_tune_type="dora", rank=4, seed=5)
    common = ["--model", str(tiny_model_dir), "--adapters", str(root)]
    out = tmp_path / "full"
    assert export(["toy", "--to", "gguf-full", "--quant", "q8_0", "--out", str(out), *common]) == 0
    path = out / "toy-run-1-10-q8_0.gguf"
    reader = GGUFReader(path)
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert field(reader, "general.type") == "model"
    assert field(reader, "general.file_type") == 7
    assert field(reader, "gemma3.block_count") == config["num_hidden_layers"]
    assert field(reader, "gemma3.embedding_length") == config["hidden_size"]
    assert field(reader, "gemma3.attention.key_length") == config["head_dim"]
    assert len(reader.fields["tokenizer.ggml.tokens"].data) == 262144
    assert "<start_of_turn>" in str(field(reader, "tokenizer.chat_template"))
    base = load_file(str(tiny_model_dir / "model.safetensors"))
    adapter = load_file(str(ckpt.path / "adapters.safetensors"))
    data = tensors_of(path)
    assert set(data) == {gguf_name(k) for k in base}
    changed = 0
    for hf, weight in base.items():
        got = data[gguf_name(hf)]
        stem = hf.removesuffix(".weight")
        if f"{stem}.lora_a" in adapter:
            # DoRA merged by hand (PEFT's formula): m / ||W + s B A||_row * (W + s B A).
            a, b = adapter[f"{stem}.lora_a"].T, adapter[f"{stem}.lora_b"].T
            merged = weight + 20.0 * b @ a
            weight = (
                adapter[f"{stem}.m"][:, None] / np.linalg.norm(merged, axis=1)[:, None] * merged
            )
            changed += 1
        if weight.ndim == 1 and "norm" in hf:
            # llama.cpp's Gemma convention: the stored norm weight is 1 + the HF weight.
            np.testing.assert_allclose(got, weight + 1.0, atol=1e-6)
            continue
        # q8_0: one scale per 32 values, so each value is within half a step of 1/127 of its block.
        assert np.abs(got - weight).max() <= np.abs(weight).max() / 127, hf
    assert changed == 2 * 7


def test_the_export_readme_keeps_the_system_prompt_and_files_follow_the_umask(
    tiny_model_dir: Path, tmp_path: Path, persona_home: Path
) -> None:
    import os
    import shlex
    import stat

    from data.card import load_card
    from data.scaffold import create_persona

    made = create_persona("toy", persona_home / "personas")
    prompt = load_card(made.folder).system_prompt
    root = tmp_path / "adapters"
    publish_adapter(root, "toy", tiny_model_dir, rank=4, seed=1)
    out = tmp_path / "gguf"
    old = os.umask(0o022)
    try:
        assert export(["toy", "--to", "gguf", "--out", str(out), "--model", str(tiny_model_dir),
                       "--adapters", str(root)]) == 0  # fmt: skip
    finally:
        os.umask(old)
    readme = (out / "README.md").read_text()
    assert f"--lora toy-run-1-10-lora.gguf -cnv -sys {shlex.quote(prompt)}" in readme
    assert "The base is any GGUF of" in readme  # not the embedded model: no path promised
    assert stat.S_IMODE(out.stat().st_mode) == 0o755
    for path in out.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path.name
