"""Stored responses: one JSON file per response in the home folder, bounded in count and age.

A stored response keeps its reply, its listed input items and the whole conversation up to and
including its reply, so `previous_response_id` continues from one file, also after a restart.
Files are written to a temporary name and renamed into place; ids are checked against their
pattern before any path is built from them, so an id can never name another file.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
from pathlib import Path

import msgspec

from data.home import home_dir
from server.errors import NotFoundError
from server.wire.responses import InputItem, ResponseObject

log = logging.getLogger("persona.server")

ID_PATTERN = re.compile(r"resp_[0-9a-f]{32}")


class Turn(msgspec.Struct, frozen=True):
    """One message of a stored conversation (instructions are not part of it)."""

    role: str
    content: str


class StoredResponse(msgspec.Struct, frozen=True):
    """What one stored file holds."""

    response: ResponseObject
    input_items: list[InputItem]
    conversation: list[Turn]
    """Every turn before this response's reply, then the reply; not the instructions."""


class ResponseStore:
    """The stored responses of this home folder."""

    def __init__(self, folder: Path, max_count: int, max_age_seconds: float) -> None:
        self.folder = folder
        self.max_count = max_count
        self.max_age_seconds = max_age_seconds
        self._lock = threading.Lock()

    @classmethod
    def in_home(cls, max_count: int, max_age_days: float) -> ResponseStore:
        """The store in the current home folder."""
        return cls(home_dir() / "responses", max_count, max_age_days * 86400.0)

    def save(self, stored: StoredResponse) -> None:
        """Write one response atomically, then drop the oldest beyond the bounds."""
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self._path(stored.response.id)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
        temp.write_bytes(msgspec.json.encode(stored))
        os.replace(temp, path)
        self._prune()

    def load(self, response_id: str) -> StoredResponse:
        """A stored response; NotFoundError for an unknown, expired or malformed id."""
        path = self._path(response_id)
        try:
            if time.time() - path.stat().st_mtime > self.max_age_seconds:
                path.unlink(missing_ok=True)
                raise FileNotFoundError(path)
            return msgspec.json.decode(path.read_bytes(), type=StoredResponse)
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            raise _missing(response_id) from None

    def delete(self, response_id: str) -> None:
        """Remove a stored response; NotFoundError if there is none."""
        try:
            self._path(response_id).unlink()
        except OSError:
            raise _missing(response_id) from None

    def _path(self, response_id: str) -> Path:
        if not ID_PATTERN.fullmatch(response_id):
            raise _missing(response_id)
        return self.folder / f"{response_id}.json"

    def _prune(self) -> None:
        with self._lock:
            now = time.time()
            entries = []
            for path in self.folder.glob("resp_*.json"):
                with contextlib.suppress(OSError):
                    entries.append((path.stat().st_mtime, path))
            entries.sort(reverse=True)
            for n, (mtime, path) in enumerate(entries):
                if n >= self.max_count or now - mtime > self.max_age_seconds:
                    with contextlib.suppress(OSError):
                        path.unlink()


def _missing(response_id: str) -> NotFoundError:
    return NotFoundError(
        f"No response found with id '{response_id}'.", param="response_id", code="not_found"
    )
