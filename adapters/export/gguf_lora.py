"""`--to gguf`: a llama.cpp LoRA adapter GGUF for the embedded Gemma 3 base.

llama.cpp reads `general.type = adapter`, `adapter.type = lora` and `adapter.lora.alpha`, and
scales each update by `alpha / r`, so alpha is written as mlx-lm's `scale * r`. Tensors are named
after the base tensor they adapt (`blk.N.attn_q.weight.lora_a` / `.lora_b`); stored in NumPy order
they are PEFT's A (r, in) and B (out, r), which GGUF records as ggml shapes (in, r) and (r, out),
the orientation llama.cpp checks when it loads an adapter.
"""

from __future__ import annotations

from pathlib import Path

from data.atomic import write_text

from .gguf_model import ARCH, gemma3_problem, gguf_name
from .lora import read_lora
from .readme import model_card
from .source import ExportOptions, ExportSource


def refusal(source: ExportSource) -> str | None:
    """Why this checkpoint cannot be a llama.cpp LoRA adapter, or None."""
    kind = source.lora.fine_tune_type
    if kind == "full":
        return "a full fine-tune has no LoRA factors; export it with --to gguf-full"
    if kind == "dora":
        return (
            "llama.cpp LoRA adapters have no DoRA magnitude vector, so the adapter would compute "
            "another function; export the fused model with --to gguf-full instead"
        )
    return gemma3_problem(source)


def file_name(source: ExportSource) -> str:
    """`<persona>-<run>-<step>-lora.gguf`."""
    m = source.manifest
    return f"{m.persona}-{m.run}-{m.step}-lora.gguf"


def write_adapter(source: ExportSource, path: Path) -> None:
    """Write the LoRA adapter GGUF to `path` (F32 factors)."""
    from gguf import GGUFWriter

    modules = read_lora(source)
    writer = GGUFWriter(str(path), arch=ARCH)
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", source.lora.scale * source.lora.rank)
    writer.add_name(f"{source.model_id} LoRA")
    for m in modules:
        target = gguf_name(f"model.layers.{m.layer}.{m.key}.weight")
        writer.add_tensor(f"{target}.lora_a", m.a)
        writer.add_tensor(f"{target}.lora_b", m.b)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def write(source: ExportSource, folder: Path, options: ExportOptions) -> None:
    """Write the adapter GGUF and the model card."""
    name = file_name(source)
    write_adapter(source, folder / name)
    usage = (
        "The base is the embedded `gemma-3-270m-q4_k_m.gguf` (or any GGUF of "
        f"`{source.base_name}`).\n\n"
        "```sh\n"
        f"llama-cli -m gemma-3-270m-q4_k_m.gguf --lora {name} -cnv\n"
        "```"
    )
    files = {name: "LoRA adapter (llama.cpp names, alpha = scale x rank, F32 factors)"}
    write_text(folder / "README.md", model_card(source, "gguf", files, usage))
