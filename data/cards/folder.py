"""Write an imported card as a persona folder, all or nothing.

The folder is assembled under a hidden temporary name inside the personas folder and renamed
into place only when complete, so a failed import leaves nothing behind and discovery (which
skips dot-folders) never sees half a persona.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import tomlkit

from ..atomic import staged_folder
from ..card import PersonaCard
from ..personas import DATASET
from ..records import encode_record
from .persona import Imported
from .read import CardFile, read_card_file
from .spec import CardError, card_json

CARD_JSON = "card.json"
"""The card as imported (macros unresolved, lorebook and extensions kept): what export writes."""
AVATAR = "avatar.png"


def card_tags(folder: Path) -> tuple[str, ...]:
    """The `tags` of the character card a persona was imported from, if any."""
    if not (folder / CARD_JSON).is_file():
        return ()
    try:
        return tuple(read_card_file(folder / CARD_JSON).card.data.tags)
    except CardError:
        return ()


def card_toml(card: PersonaCard) -> str:
    """`persona.toml` text for an imported card: only the keys the card sets."""
    document = tomlkit.document()
    document.add(tomlkit.comment("Imported from a character card; the original is card.json."))
    document["name"] = card.name
    document["display_name"] = card.display_name
    if card.description:
        document["description"] = card.description
    document["base_model"] = card.base_model
    document["system_prompt"] = _multiline(card.system_prompt)
    if card.greetings:
        document["greetings"] = [_multiline(g) for g in card.greetings]
    if card.post_history_instructions:
        document["post_history_instructions"] = _multiline(card.post_history_instructions)
    return tomlkit.dumps(document)


def write_persona(imported: Imported, source: CardFile, personas: Path) -> Path:
    """Create `personas/<name>/` from an import; raise CardError if it exists already."""
    target = personas / imported.card.name
    if target.exists():
        raise CardError(
            f"a persona named {imported.card.name!r} exists already at {target}; "
            "pass --name to import under another name"
        )
    try:
        _write(imported, source, target)
    except OSError as exc:  # the disk, or a file system that refuses an asset's name
        raise CardError(f"{target}: cannot write the persona: {exc}") from None
    return target


def _write(imported: Imported, source: CardFile, target: Path) -> None:
    with staged_folder(target) as staging:
        (staging / "persona.toml").write_text(card_toml(imported.card), encoding="utf-8")
        (staging / CARD_JSON).write_bytes(card_json(source.card.raw, source.card.spec))
        if source.image is not None:
            (staging / AVATAR).write_bytes(source.image)
        for name, payload in source.assets.items():
            path = staging.joinpath(*PurePosixPath(name).parts)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(payload)
        if imported.records:
            lines = b"".join(encode_record(r) + b"\n" for r in imported.records)
            (staging / DATASET).write_bytes(lines)


def _multiline(text: str) -> tomlkit.items.String | str:
    if "\n" not in text:
        return text
    return tomlkit.string(text, multiline=True)
