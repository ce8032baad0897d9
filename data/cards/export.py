"""`export_card`: a persona as a character card: V2 JSON, V3 JSON and a PNG carrying both.

A persona imported from a card is written from the card it came from (`card.json`), so every
field, the lorebook and unknown extensions go out as they came in. A persona made here is
written from its `persona.toml`: its system prompt, greetings, post-history instructions and up to
`EXAMPLES` of its records tagged `example` (else its first records) as `mes_example`.
The PNG holds a `chara` chunk (V2) and a `ccv3` chunk (V3), base64 JSON, as SillyTavern writes.
"""

from __future__ import annotations

import base64
import hashlib
import io
from pathlib import Path
from typing import Any

from ..atomic import write_bytes
from ..dataset import read_dataset
from ..personas import PersonaEntry
from ..records import as_messages
from .folder import AVATAR, CARD_JSON
from .png import PngError, check_pixels
from .read import read_card_file
from .spec import V2, V3, CardError, card_json

EXAMPLES = 3
PICTURE_SIZE = (400, 600)
"""The picture made for a persona without one: SillyTavern's avatar proportions."""


def export_card(entry: PersonaEntry, out_dir: Path, replace: bool = False) -> list[Path]:
    """Write `<name>.v2.json`, `<name>.v3.json` and `<name>.png` into `out_dir`; return them.

    Raises CardError when the persona's `card.json` or picture cannot be read, or when one of
    the files exists already and `replace` is false; OSError when `out_dir` cannot be written.
    Files are written atomically and only inside `out_dir`.
    """
    names = [out_dir / f"{entry.name}{suffix}" for suffix in (".v2.json", ".v3.json", ".png")]
    there = [str(p) for p in names if p.exists()]
    if there and not replace:
        raise CardError(f"{', '.join(there)} exists already; pass --force to replace it")
    raw = card_data(entry)
    v2, v3 = card_json(raw, V2), card_json(raw, V3)
    picture = entry.folder / AVATAR
    image = picture.read_bytes() if picture.is_file() else None
    outputs = {
        out_dir / f"{entry.name}.v2.json": v2,
        out_dir / f"{entry.name}.v3.json": v3,
        out_dir / f"{entry.name}.png": card_png(v2, v3, image, entry.name),
    }
    for path, payload in outputs.items():
        write_bytes(path, payload)
    return list(outputs)


def card_data(entry: PersonaEntry) -> dict[str, Any]:
    """The card's `data` object: the imported card's as it was, else built from the persona."""
    stored = entry.folder / CARD_JSON
    if stored.is_file():
        return read_card_file(stored).card.raw
    card = entry.card
    greetings = card.greetings or [""]
    return {
        "name": card.title,
        "description": card.description,
        "system_prompt": card.system_prompt,
        "first_mes": greetings[0],
        "alternate_greetings": greetings[1:],
        "post_history_instructions": card.post_history_instructions,
        "mes_example": _mes_example(entry),
        "tags": [],
        "creator": "",
        "character_version": "",
        "extensions": {},
    }


def card_png(v2: bytes, v3: bytes, image: bytes | None, seed: str) -> bytes:
    """PNG bytes of `image` (or a plain picture) with `chara` and `ccv3` text chunks."""
    from PIL import Image
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("chara", base64.b64encode(v2).decode("ascii"))
    info.add_text("ccv3", base64.b64encode(v3).decode("ascii"))
    if image is not None:
        try:
            check_pixels(image)
        except PngError as exc:
            raise CardError(f"the persona's picture: {exc}") from None
        try:
            picture = Image.open(io.BytesIO(image))
        except (OSError, ValueError) as exc:
            raise CardError(f"the persona's picture cannot be read: {exc}") from None
    else:
        colour = tuple(hashlib.sha256(seed.encode()).digest()[:3])
        picture = Image.new("RGB", PICTURE_SIZE, colour)
    out = io.BytesIO()
    try:
        with picture:
            # Only the chunks given here are written: an old `chara` or `ccv3` is never kept.
            picture.save(out, format="PNG", pnginfo=info)
    except (OSError, ValueError) as exc:
        raise CardError(f"the persona's picture cannot be read: {exc}") from None
    return out.getvalue()


def _mes_example(entry: PersonaEntry) -> str:
    path = entry.train_file
    if path is None:
        return ""
    rows = read_dataset(path).rows
    chosen = [r for r in rows if "example" in r.record.tags] or list(rows)
    blocks = []
    for row in chosen[:EXAMPLES]:
        lines = [
            f"{'{{user}}' if m.role == 'user' else '{{char}}'}: {m.content}"
            for m in as_messages(row.record)
            if m.role != "system"
        ]
        blocks.append("<START>\n" + "\n".join(lines))
    return "\n".join(blocks)
