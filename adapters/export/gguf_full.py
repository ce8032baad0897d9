"""`--to gguf-full`: the fused model as one standalone llama.cpp GGUF (f16 or q8_0).

The weights are mlx-lm's fused ones (see `mlx_fused`), written under llama.cpp's names with the
Gemma norm convention and the embedded GGUF's tokenizer, so llama.cpp or Ollama (`FROM` the
file) run the persona with no adapter.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from data.atomic import write_text

from .gguf_model import gemma3_problem, write_model_gguf
from .mlx_fused import fused_model
from .readme import model_card, system_flag
from .source import ExportOptions, ExportSource


def refusal(source: ExportSource) -> str | None:
    """Why the fused model cannot be a llama.cpp gemma3 GGUF, or None."""
    return gemma3_problem(source)


def file_name(source: ExportSource, quant: str) -> str:
    """`<persona>-<run>-<step>-<quant>.gguf`."""
    m = source.manifest
    return f"{m.persona}-{m.run}-{m.step}-{quant}.gguf"


def write(source: ExportSource, folder: Path, options: ExportOptions) -> None:
    """Fuse, then write the GGUF and the model card."""
    from mlx.utils import tree_flatten

    model, config = fused_model(source)
    import mlx.core as mx

    weights = {k: np.array(v.astype(mx.float32)) for k, v in tree_flatten(model.parameters())}
    del model
    name = file_name(source, options.quant)
    title = (
        source.card.display_name if source.card and source.card.display_name else source.model_id
    )
    write_model_gguf(folder / name, weights, config, options.quant, title)
    usage = (
        "```sh\n"
        f"llama-cli -m {name} -cnv{system_flag(source)}\n"
        f"echo 'FROM ./{name}' > Modelfile\n"
        f"ollama create {source.manifest.persona} -f Modelfile\n"
        "```"
    )
    files = {name: f"the fused model, {options.quant} matrices, F32 norms, Gemma 3 tokenizer"}
    write_text(folder / "README.md", model_card(source, "gguf-full", files, usage))
