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
import zlib
from pathlib import Path, PurePosixPath

import msgspec

from ..problem import quote
from .png import MAX_TEXT_BYTES, PngError, text_chunks
from .spec import Card, CardError, decode_card

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ZIP_MAGIC = b"PK\x03\x04"
MAX_CARD_BYTES = 64 * 1024 * 1024
"""A card file, or the sum of a CHARX file's assets as inflated, may not be larger than this."""
COMPRESSIONS = frozenset({zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED})
"""The zip compression methods a CHARX member may use."""
MAX_NAME_CHARS = 240
MAX_PART_BYTES = 120
"""Asset paths fit every file system once they are under the persona's folder."""
READ_BLOCK = 1 << 20
MAX_MEMBERS = 10_000
"""The most entries a CHARX file may hold."""


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
    try:
        chunks = text_chunks(payload)
    except PngError as exc:
        raise CardError(f"{path}: {exc}") from None
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
    # Every entry becomes a ZipInfo when the zip is opened: count them first, from the bytes.
    if payload.count(b"PK\x01\x02") > MAX_MEMBERS:
        raise CardError(f"{path}: holds more than {MAX_MEMBERS} entries; a card holds fewer")
    try:
        archive = zipfile.ZipFile(io.BytesIO(payload))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise CardError(f"{path}: not a readable CHARX zip: {exc}") from None
    with archive:
        members = _members(path, archive)
        if "card.json" not in members:
            raise CardError(f"{path}: card.json: missing; a CHARX file holds card.json at its root")
        card = decode_card(
            _read_member(path, archive, members["card.json"], MAX_TEXT_BYTES),
            f"{path} (card.json)",
        )
        assets: dict[str, bytes] = {}
        room = MAX_CARD_BYTES
        for name, info in members.items():
            if name.startswith("assets/"):
                assets[name] = _read_member(path, archive, info, room)
                room -= len(assets[name])
    return CardFile(card, "charx", image=_icon(card, assets), assets=assets)


def _members(path: Path, archive: zipfile.ZipFile) -> dict[str, zipfile.ZipInfo]:
    """The files to read by name, each checked before a byte of it is inflated."""
    members: dict[str, zipfile.ZipInfo] = {}
    files: set[str] = set()
    folders: set[str] = set()
    for info in archive.infolist():
        name = info.filename
        if info.is_dir() or not (name == "card.json" or name.startswith("assets/")):
            continue
        if name.startswith("assets/") and not _safe(name):
            raise CardError(f"{path}: {quote(name)}: an asset path may not leave assets/")
        problem = _name_problem(name)
        if problem:
            raise CardError(f"{path}: {quote(name)}: {problem}")
        if info.flag_bits & 0x1:
            raise CardError(f"{path}: {quote(name)}: encrypted; a card's files must be readable")
        if info.compress_type not in COMPRESSIONS:
            raise CardError(
                f"{path}: {quote(name)}: compression method {info.compress_type} is not "
                "supported (only stored and deflate)"
            )
        # Two entries may not land on one file, nor a file where a folder must be (on any
        # file system: names that differ only in case collide on some).
        key = name.casefold()
        parents = {str(p) for p in PurePosixPath(key).parents if str(p) != "."}
        if key in files or key in folders or parents & files:
            raise CardError(f"{path}: {quote(name)}: collides with another entry of the same name")
        files.add(key)
        folders |= parents
        members[name] = info
    return members


def _name_problem(name: str) -> str | None:
    if len(name) > MAX_NAME_CHARS:
        return f"the path is longer than {MAX_NAME_CHARS} characters"
    for part in PurePosixPath(name).parts:
        if len(part.encode("utf-8")) > MAX_PART_BYTES:
            return f"a path part is longer than {MAX_PART_BYTES} bytes"
        if any(ord(c) < 32 for c in part) or part in (".", ".."):
            return "a path part holds a control character or is '.' or '..'"
    return None


def _read_member(path: Path, archive: zipfile.ZipFile, info: zipfile.ZipInfo, room: int) -> bytes:
    """A member's bytes, read in blocks and refused once they pass `room` (its declared size
    is not trusted); CRC and format errors become one CardError."""
    where = f"{path}: {quote(info.filename)}"
    if info.file_size > room:
        raise CardError(f"{where}: inflates to more than a card may hold ({room} bytes left)")
    parts: list[bytes] = []
    size = 0
    try:
        with archive.open(info) as member:
            while block := member.read(READ_BLOCK):
                size += len(block)
                if size > room:
                    raise CardError(
                        f"{where}: inflates to more than a card may hold ({room} bytes left)"
                    )
                parts.append(block)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as exc:
        raise CardError(f"{where}: cannot be read: {exc}") from None
    return b"".join(parts)


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
