"""`--to ollama`: a folder ready for `ollama create NAME -f Modelfile`.

It holds the embedded base GGUF, the persona's LoRA GGUF and a Modelfile: `FROM` the base,
`ADAPTER` the LoRA, Gemma 3's chat `TEMPLATE` in Ollama's Go-template syntax, `SYSTEM` from the
card, one `PARAMETER` per card sampling default that Ollama has, and `PARAMETER stop` on
`<end_of_turn>`, without which a Gemma model runs on past the end of its turn.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import msgspec

from data.atomic import write_text

from .gguf_lora import file_name, write_adapter
from .gguf_lora import refusal as lora_refusal
from .gguf_model import embedded_gguf
from .readme import model_card
from .source import ExportOptions, ExportSource

TEMPLATE = """\
{{- $system := "" }}
{{- range .Messages }}
{{- if eq .Role "system" }}{{ $system = .Content }}
{{- else if eq .Role "user" }}<start_of_turn>user
{{ if $system }}{{ $system }}

{{ $system = "" }}{{ end }}{{ .Content }}<end_of_turn>
{{ else if eq .Role "assistant" }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}<start_of_turn>model
"""
"""Gemma 3's turns as `adapters.chat_template` writes them (system folded into the first user
turn, `assistant` written as `model`); BOS comes from the GGUF's `add_bos_token`."""

PARAMETERS = {
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "min_p": "min_p",
    "repetition_penalty": "repeat_penalty",
    "repetition_context_size": "repeat_last_n",
    "max_tokens": "num_predict",
    "seed": "seed",
}
"""Card `[sampling]` key -> Ollama Modelfile PARAMETER name."""
NOT_CARRIED = ("min_tokens", "presence_penalty", "frequency_penalty")
"""Card sampling keys with no Modelfile PARAMETER: send them per request."""
STOP = "<end_of_turn>"


def refusal(source: ExportSource) -> str | None:
    """Why the persona cannot be an Ollama base + adapter folder, or None."""
    if (reason := lora_refusal(source)) is not None:
        return reason
    if not source.embedded:
        return "the Ollama folder ships the embedded base GGUF; use --to gguf-full for other bases"
    system = source.card.system_prompt if source.card else ""
    if '"""' in system:
        return 'the system prompt contains """, which a Modelfile string cannot hold'
    return None


def modelfile(source: ExportSource, base: str, adapter: str) -> str:
    """The Modelfile text."""
    lines = [f"FROM ./{base}", f"ADAPTER ./{adapter}", f'TEMPLATE """{TEMPLATE}"""']
    if source.card is not None:
        lines.append(f'SYSTEM """{source.card.system_prompt}"""')
        sampling = msgspec.to_builtins(source.card.sampling)
        for key, name in PARAMETERS.items():
            if key in sampling:
                lines.append(f"PARAMETER {name} {sampling[key]}")
        for stop in sampling.get("stop") or []:
            lines.append(f"PARAMETER stop {json.dumps(stop)}")
    lines.append(f'PARAMETER stop "{STOP}"')
    return "\n".join(lines) + "\n"


def write(source: ExportSource, folder: Path, options: ExportOptions) -> None:
    """Copy the base GGUF, write the LoRA GGUF, the Modelfile and the model card."""
    base = embedded_gguf()
    shutil.copyfile(base, folder / base.name)
    adapter = file_name(source)
    write_adapter(source, folder / adapter)
    write_text(folder / "Modelfile", modelfile(source, base.name, adapter))
    persona = source.manifest.persona
    skipped = [
        k for k in NOT_CARRIED if source.card and getattr(source.card.sampling, k) is not None
    ]
    usage = f"```sh\nollama create {persona} -f Modelfile\nollama run {persona}\n```"
    if skipped:
        usage += (
            "\n\nNot expressible as a Modelfile PARAMETER (send per request): "
            + ", ".join(f"`{k}`" for k in skipped)
            + "."
        )
    files = {
        base.name: "the embedded base model (llama.cpp's Q4_K_M conversion of Gemma 3 270M)",
        adapter: "the persona's LoRA adapter",
        "Modelfile": "FROM, ADAPTER, TEMPLATE, SYSTEM, PARAMETER",
    }
    write_text(folder / "README.md", model_card(source, "ollama", files, usage))
