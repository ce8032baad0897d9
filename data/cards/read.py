"""Read a character card file: card JSON, a PNG with a `ccv3` or `chara` text chunk, or CHARX.

The form is told by the file's first bytes, not its name. A PNG's `ccv3` chunk (V3) wins over
`chara` (V2), and chunk keywords match whatever their case. A CHARX file is a zip holding
`card.json` and the card's assets under `assets/`.
"""

from __future__ import annotations

import base64
import binascii
import io
import zipfile
from pathlib import Path, PurePosixPath

import msgspec

from .spec import Card, CardError, decode_card

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
MAX_CARD_BYTES = 64 * 1024 * 1024
"""A card file, or the sum of a CHARX file's assets, may not be larger than this."""


class CardFile(msgspec.Struct, frozen=True):
    """A card as read from a file, with the picture and assets that came with it."""

    card: Card
    form: str
    """`json`, `png` (with the chunk read) or `charx`."""
    image: bytes | None = None
    """The card's PNG picture (its text chunks are replaced on export)."""
    assets: dict[str, bytes] = {}
    """CHARX assets by their path inside the zip (`assets/icon/main.png`)."""


def read_card_file(path: Path) -> CardFile:
    """Read any supported card form; raise CardError naming the file and what is wrong."""
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise CardError(f"{path}: {size} bytes is larger than a card may be")
        payload = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{path}: cannot read: {exc.strerror}") from None
    return read_card_bytes(payload, path)


def read_card_bytes(payload: bytes, path: Path) -> CardFile:
    """Read a card from its bytes (an upload); `path` names it in errors."""
    if len(payload) > MAX_CARD_BYTES:
        raise CardError(f"{path}: {len(payload)} bytes is larger than a card may be")
    if payload.startswith(PNG_MAGIC):
        return _from_png(path, payload)
    if payload.startswith(ZIP_MAGIC):
        return _from_charx(path, payload)
    return CardFile(decode_card(payload, str(path)), "json")


def _from_png(path: Path, payload: bytes) -> CardFile:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(payload)) as image:
            image.load()
            chunks = dict(getattr(image, "text", {}) or {})
    except (OSError, ValueError, UnidentifiedImageError) as exc:
        raise CardError(f"{path}: not a readable PNG: {exc}") from None
    by_key = {key.casefold(): (key, value) for key, value in chunks.items()}
    for wanted in ("ccv3", "chara"):
        if wanted in by_key:
            key, text = by_key[wanted]
            break
    else:
        found = ", ".join(repr(k) for k in chunks) or "none"
        raise CardError(
            f"{path}: not a character card: no 'ccv3' or 'chara' text chunk (found: {found})"
        )
    try:
        decoded = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CardError(f"{path}: the {key!r} chunk is not valid base64: {exc}") from None
    card = decode_card(decoded, f"{path} ({key} chunk)")
    return CardFile(card, f"png ({key})", image=payload)


def _from_charx(path: Path, payload: bytes) -> CardFile:
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except zipfile.BadZipFile as exc:
        raise CardError(f"{path}: not a readable CHARX zip: {exc}") from None
    with archive:
        names = archive.namelist()
        if "card.json" not in names:
            raise CardError(f"{path}: card.json: missing; a CHARX file holds card.json at its root")
        card = decode_card(archive.read("card.json"), f"{path} (card.json)")
        assets: dict[str, bytes] = {}
        total = 0
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith("assets/"):
                continue
            if not _safe(info.filename):
                raise CardError(f"{path}: {info.filename}: an asset path may not leave assets/")
            total += info.file_size
            if total > MAX_CARD_BYTES:
                raise CardError(f"{path}: the assets are larger than a card may be")
            assets[info.filename] = archive.read(info)
    return CardFile(card, "charx", image=_icon(card, assets), assets=assets)


def _safe(name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and not name.startswith("/") and ".." not in parts and "\\" not in name


def _icon(card: Card, assets: dict[str, bytes]) -> bytes | None:
    """The main icon, when it is a PNG packed in the CHARX file."""
    for asset in card.data.assets or []:
        if asset.type == "icon" and asset.uri.startswith("embeded://"):
            data = assets.get(asset.uri.removeprefix("embeded://"))
            if data is not None and data.startswith(PNG_MAGIC):
                return data
    return None
