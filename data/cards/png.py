"""Read a PNG's text chunks and size without decoding its pixels, every length capped.

A card's text lives in `tEXt`, `zTXt` or `iTXt` chunks. Compressed text is inflated in steps
that stop at `MAX_TEXT_BYTES`, so a 1 MB chunk that would inflate to 1 GB is refused after
reading a little more than the cap. The picture's pixel count is read from `IHDR` and checked
against `MAX_PIXELS` before anything decodes it.
"""

from __future__ import annotations

import struct
import zlib

MAX_TEXT_BYTES = 32 * 1024 * 1024
"""The most one text chunk may inflate to (a card with a large lorebook is a few MB)."""
MAX_PIXELS = 5000 * 5000
"""The largest picture a card may carry: decoding one costs 4 bytes a pixel."""
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class PngError(ValueError):
    """A PNG that cannot be read safely; the message names the problem (not the file)."""


def inflate(data: bytes, limit: int, what: str) -> bytes:
    """zlib-decompress `data`, refusing output over `limit` bytes as soon as it is exceeded."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise PngError(f"{what} is not valid compressed data: {exc}") from None
    if len(out) > limit or inflater.unconsumed_tail:
        raise PngError(f"{what} inflates to more than {limit} bytes")
    if not inflater.eof:
        raise PngError(f"{what} is cut short")
    return out


def picture_size(payload: bytes) -> tuple[int, int]:
    """(width, height) from the `IHDR` chunk; PngError if there is none."""
    if not payload.startswith(PNG_MAGIC) or payload[12:16] != b"IHDR" or len(payload) < 24:
        raise PngError("no IHDR chunk: not a PNG")
    width, height = struct.unpack(">II", payload[16:24])
    return width, height


def check_pixels(payload: bytes) -> None:
    """PngError if the picture has more than MAX_PIXELS pixels (nothing is decoded)."""
    width, height = picture_size(payload)
    if width * height > MAX_PIXELS:
        raise PngError(
            f"the picture is {width}x{height} ({width * height / 1e6:.0f} megapixels); "
            f"a card's picture may have at most {MAX_PIXELS / 1e6:.0f} megapixels"
        )


def text_chunks(payload: bytes, limit: int = MAX_TEXT_BYTES) -> dict[str, str]:
    """Every text chunk by keyword, checked: CRCs, lengths, and inflated sizes."""
    check_pixels(payload)
    found: dict[str, str] = {}
    pos = len(PNG_MAGIC)
    while pos < len(payload):
        if pos + 12 > len(payload):
            raise PngError(f"the file is cut short at byte {pos}")
        length, kind = struct.unpack(">I4s", payload[pos : pos + 8])
        end = pos + 8 + length
        if end + 4 > len(payload):
            raise PngError(f"chunk {kind!r} at byte {pos} runs past the end of the file")
        data = payload[pos + 8 : end]
        (crc,) = struct.unpack(">I", payload[end : end + 4])
        if zlib.crc32(kind + data) != crc:
            raise PngError(f"chunk {kind!r} at byte {pos} has a bad CRC")
        pos = end + 4
        if kind == b"IEND":
            break
        text = _text(kind, data, limit)
        if text is not None:
            found[text[0]] = text[1]
    return found


def _text(kind: bytes, data: bytes, limit: int) -> tuple[str, str] | None:
    keyword, _, rest = data.partition(b"\0")
    key = keyword.decode("latin-1")
    what = f"the {key!r} text chunk"
    if kind == b"tEXt":
        return key, rest.decode("latin-1")
    if kind == b"zTXt":
        return key, inflate(rest[1:], limit, what).decode("latin-1")
    if kind == b"iTXt":
        flag = rest[:1]
        _language, _, rest = rest[2:].partition(b"\0")
        _translated, _, text = rest.partition(b"\0")
        raw = inflate(text, limit, what) if flag == b"\x01" else text
        try:
            return key, raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PngError(f"{what} is not valid UTF-8: {exc.reason}") from None
    return None
