"""`--to web`: a static folder that runs the persona in a browser, offline, with no server.

It holds the fused model as a q8_0 GGUF (the `gguf-full` export), llama.cpp built for
WebAssembly (`@wllama/wllama`, see `studio.wllama`), `persona.json` (system prompt, resolved
sampling defaults, greetings, guard replies, adapter version) and the same page `persona serve`
shows at `/chat/{persona}`, switched to talk to wllama. Any static server works
(`python -m http.server`); without cross-origin isolation headers wllama runs one thread.
"""

from __future__ import annotations

import json
import re
import shutil
import tomllib
from pathlib import Path
from typing import Any

import msgspec

from adapters.export.gguf_full import refusal as gguf_refusal
from adapters.export.gguf_full import write as write_gguf
from adapters.export.readme import model_card
from adapters.export.source import ExportError, ExportOptions, ExportSource
from data.atomic import write_text

QUANT = "q8_0"
"""The smallest tensor type `gguf-full` writes: about half the f16 file, near-f16 replies."""
CONTEXT = 2048
"""Tokens of context the page asks llama.cpp for."""
MAX_TOKENS = 512
"""Reply length when neither the card nor the base model sets one (the server's default)."""
UNUSED = re.compile(r"<unused[0-9]+>")
PAGE_FILES = ("chat.js", "chat.css")


def refusal(source: ExportSource) -> str | None:
    """Why the persona cannot run in llama.cpp as one fused GGUF, or None."""
    return gguf_refusal(source)


def write(source: ExportSource, folder: Path, options: ExportOptions) -> None:
    """Write the GGUF, wllama, persona.json, the page and the model card into `folder`."""
    from studio.wllama import WllamaError, ensure_wllama

    try:
        wllama = ensure_wllama()
    except WllamaError as exc:
        raise ExportError(str(exc)) from None
    model_dir = folder / "model"
    model_dir.mkdir()
    write_gguf(source, model_dir, ExportOptions(quant=QUANT, model=options.model))
    (model_dir / "README.md").unlink()  # the folder's own model card below describes it all
    gguf = next(model_dir.glob("*.gguf"))
    (folder / "wllama").mkdir()
    for file in wllama.iterdir():
        shutil.copyfile(file, folder / "wllama" / file.name)
    page = Path(__file__).resolve().parent.parent / "server" / "web"
    for name in PAGE_FILES:
        shutil.copyfile(page / name, folder / name)
    html = (page / "index.html").read_text()
    html = html.replace('data-backend="server"', 'data-backend="wllama"').replace("/web/", "./")
    write_text(folder / "index.html", html)
    config = persona_config(source, f"model/{gguf.name}")
    write_text(folder / "persona.json", json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    files = {
        "index.html, chat.js, chat.css": "the chat page (`persona serve`'s locked page)",
        "persona.json": "system prompt, sampling defaults, greetings, adapter version",
        f"model/{gguf.name}": f"the fused model, {QUANT} matrices, F32 norms, Gemma 3 tokenizer",
        "wllama/": f"llama.cpp in WebAssembly (@wllama/wllama {_wllama_version()}, MIT, LICENCE)",
    }
    usage = (
        "```sh\npython -m http.server 8080   # then open http://127.0.0.1:8080/\n```\n\n"
        "Runs offline once loaded; any static file server works. Served without the "
        "cross-origin isolation headers (COOP/COEP), llama.cpp runs on one thread."
    )
    write_text(folder / "README.md", model_card(source, "web", files, usage))
    _publishable(folder)


def _publishable(folder: Path) -> None:
    """World-readable files and folders: a web server may run as another user than the export."""
    folder.chmod(0o755)
    for path in folder.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)


def persona_config(source: ExportSource, model_path: str) -> dict[str, Any]:
    """What the page needs to play the persona: `persona.json`'s contents."""
    from server.catalog import card_layer, generation_config_layer, merge, server_defaults

    card = source.card
    sampling = merge(
        [card_layer(card), generation_config_layer(source.base_path)],
        server_defaults(MAX_TOKENS),
    )
    specials, unused = _special_tokens(source.base_path)
    return {
        "id": source.manifest.persona,
        "display_name": (card.display_name if card else "") or source.manifest.persona,
        "description": card.description if card else "",
        "system_prompt": card.system_prompt if card else "",
        "post_history_instructions": card.post_history_instructions if card else "",
        "greetings": list(card.greetings) if card else [],
        "guard_replies": guard_replies(source.card_folder),
        "sampling": msgspec.to_builtins(sampling),
        "adapter": source.manifest.version,
        "model": model_path,
        "context": CONTEXT,
        "special_tokens": specials,
        "special_token_pattern": unused,
    }


def guard_replies(folder: Path | None) -> list[str]:
    """The replies of a persona folder's `[guard]` table (a list, or a table of named replies);
    [] when the card has no such table or it holds something else."""
    if folder is None:
        return []
    try:
        raw = tomllib.loads((folder / "persona.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return []
    guard = raw.get("guard")
    replies = guard.get("replies") if isinstance(guard, dict) else None
    if isinstance(replies, dict):
        replies = list(replies.values())
    if not isinstance(replies, list):
        return []
    return [r for r in replies if isinstance(r, str)]


def _special_tokens(base: Path) -> tuple[list[str], str | None]:
    """The tokenizer's special tokens (llama.cpp reads these in prompt text as control tokens);
    Gemma's thousands of `<unusedN>` as one pattern."""
    try:
        added = json.loads((base / "tokenizer.json").read_text()).get("added_tokens", [])
    except (OSError, ValueError):
        return [], None
    specials = [t["content"] for t in added if t.get("special") and t.get("content")]
    named = [s for s in specials if not UNUSED.fullmatch(s)]
    return named, ("<unused[0-9]+>" if len(named) < len(specials) else None)


def _wllama_version() -> str:
    from studio.wllama import VERSION

    return VERSION
