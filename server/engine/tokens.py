"""How a single token reads in a logprobs entry: its text and its exact bytes.

A SentencePiece piece marks a leading space with `▁` and a byte-fallback token is `<0xNN>`;
decoding a lone token with the tokenizer would drop the space or give a replacement character,
so pieces are mapped by hand and other vocabularies go through `convert_tokens_to_string`. A
token whose bytes are not whole UTF-8 text on their own reads `bytes:\\xNN` (OpenAI's spelling),
so distinct byte tokens stay distinct where they would all read "\ufffd".
"""

from __future__ import annotations

import re
from typing import Any

_BYTE_PIECE = re.compile(r"<0x([0-9A-Fa-f]{2})>")
_SPM_SPACE = "\u2581"


class TokenText:
    """Cached id -> (text, bytes) for the tokens logprobs report."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._cache: dict[int, tuple[str, tuple[int, ...]]] = {}

    def __call__(self, token_id: int) -> tuple[str, tuple[int, ...]]:
        """The token's display text and its UTF-8 (or raw) bytes."""
        found = self._cache.get(token_id)
        if found is None:
            found = self._cache[token_id] = self._lookup(token_id)
        return found

    def _lookup(self, token_id: int) -> tuple[str, tuple[int, ...]]:
        piece = self._tokenizer.convert_ids_to_tokens(token_id)
        if not isinstance(piece, str):
            text = self._tokenizer.decode([token_id])
            return text, tuple(text.encode("utf-8"))
        if match := _BYTE_PIECE.fullmatch(piece):
            return _spelled(bytes([int(match.group(1), 16)]))
        if _SPM_SPACE in piece:
            text = piece.replace(_SPM_SPACE, " ")
        else:
            text = self._tokenizer.convert_tokens_to_string([piece])
        return text, tuple(text.encode("utf-8"))


def _spelled(raw: bytes) -> tuple[str, tuple[int, ...]]:
    """Text and bytes of a raw-bytes token: the text itself if it decodes, else `bytes:\\xNN`."""
    try:
        return raw.decode("utf-8"), tuple(raw)
    except UnicodeDecodeError:
        return "bytes:" + "".join(f"\\x{b:02x}" for b in raw), tuple(raw)
