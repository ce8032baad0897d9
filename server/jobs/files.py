"""Uploaded files: stored in the home folder under ids the server makes, never client paths.

Each file is `<root>/<id>.data` with its `file` object beside it in `<id>.json`; both are written
atomically, the object last, so a listed file always has its content.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import time
from pathlib import Path

import msgspec

from data.atomic import write_bytes

from .types import FileObject

ID_PREFIX = "file-"


class MissingFileError(LookupError):
    """No file with that id (never uploaded, or deleted)."""


def new_id(prefix: str) -> str:
    """A fresh random id such as `file-3f9c...`: 24 hex digits after the prefix."""
    return prefix + secrets.token_hex(12)


_ID = re.compile(ID_PREFIX + "[0-9a-f]{24}")


def _valid_id(file_id: str) -> bool:
    return _ID.fullmatch(file_id) is not None


class FileStore:
    """The uploaded files of one server."""

    def __init__(self, root: Path) -> None:
        self.root = root
        """The folder holding every file and its object."""

    def create(self, filename: str, purpose: str, content: bytes) -> FileObject:
        """Store `content`; the client's file name is kept only as a label."""
        file_id = new_id(ID_PREFIX)
        entry = FileObject(
            id=file_id,
            bytes=len(content),
            created_at=int(time.time()),
            filename=Path(filename).name or "upload.jsonl",
            purpose=purpose,
        )
        write_bytes(self.content_path(file_id), content)
        write_bytes(self.root / f"{file_id}.json", msgspec.json.encode(entry))
        return entry

    def staging_path(self) -> Path:
        """A fresh hidden path in the folder for an upload being received (not listed)."""
        self.root.mkdir(parents=True, exist_ok=True)
        return self.root / f".upload-{secrets.token_hex(8)}.tmp"

    def adopt(self, staged: Path, filename: str, purpose: str) -> FileObject:
        """Store a file already written at `staged` (from `staging_path`) by renaming it."""
        file_id = new_id(ID_PREFIX)
        entry = FileObject(
            id=file_id,
            bytes=staged.stat().st_size,
            created_at=int(time.time()),
            filename=Path(filename).name or "upload.jsonl",
            purpose=purpose,
        )
        os.replace(staged, self.content_path(file_id))
        write_bytes(self.root / f"{file_id}.json", msgspec.json.encode(entry))
        return entry

    def used_bytes(self) -> int:
        """The bytes every stored file (and upload being received) takes."""
        if not self.root.is_dir():
            return 0
        total = 0
        for path in self.root.iterdir():
            if path.suffix in (".data", ".tmp"):
                with contextlib.suppress(OSError):
                    total += path.stat().st_size
        return total

    def content_path(self, file_id: str) -> Path:
        """Where a file's bytes live (the id is checked, so it never escapes the folder)."""
        if not _valid_id(file_id):
            raise MissingFileError(file_id)
        return self.root / f"{file_id}.data"

    def get(self, file_id: str) -> FileObject:
        """One file's object; MissingFileError when there is none."""
        if not _valid_id(file_id):
            raise MissingFileError(file_id)
        try:
            return msgspec.json.decode(
                (self.root / f"{file_id}.json").read_bytes(), type=FileObject
            )
        except (OSError, msgspec.DecodeError, msgspec.ValidationError):
            raise MissingFileError(file_id) from None

    def content(self, file_id: str) -> bytes:
        """A file's bytes."""
        self.get(file_id)
        try:
            return self.content_path(file_id).read_bytes()
        except OSError:
            raise MissingFileError(file_id) from None

    def list(self, purpose: str | None = None) -> list[FileObject]:
        """Every file, newest first (optionally of one purpose)."""
        if not self.root.is_dir():
            return []
        found: list[tuple[int, FileObject]] = []
        for path in self.root.glob(f"{ID_PREFIX}*.json"):
            try:
                # The object is written once, so its mtime orders files made in the same second.
                found.append((path.stat().st_mtime_ns, self.get(path.stem)))
            except (OSError, MissingFileError):
                continue
        found.sort(key=lambda item: item[0], reverse=True)
        return [f for _, f in found if purpose is None or f.purpose == purpose]

    def delete(self, file_id: str) -> None:
        """Remove a file: its object first, so it stops being listed before its bytes go."""
        self.get(file_id)
        (self.root / f"{file_id}.json").unlink(missing_ok=True)
        self.content_path(file_id).unlink(missing_ok=True)
