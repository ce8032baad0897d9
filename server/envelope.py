"""OpenAI's error envelope, `{"error": {"message", "type", "param", "code"}}`, as msgspec Structs.

Pure msgspec, so every room of the server renders errors with it and the TUI reads them with it;
`errors.py` holds the exceptions and the one handler that fills it in.
"""

from __future__ import annotations

from msgspec import Struct


class ErrorDetail(Struct, frozen=True):
    """The body of OpenAI's error envelope."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorEnvelope(Struct, frozen=True):
    """`{"error": {"message", "type", "param", "code"}}`: the body of every failed request, and
    the last event of a stream that fails after it started."""

    error: ErrorDetail
