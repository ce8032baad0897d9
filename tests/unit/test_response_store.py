"""Stored responses: atomic files in the home folder, bounded in count and age, ids never paths."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest

from server.errors import NotFoundError
from server.response_store import ResponseStore, StoredResponse, Turn
from server.wire.responses import ReplyFormat, ResponseObject


def stored(text: str = "hi") -> StoredResponse:
    """A minimal finished response."""
    response = ResponseObject(
        id=f"resp_{uuid.uuid4().hex}",
        created_at=int(time.time()),
        status="completed",
        model="pip",
        output=[],
        instructions=None,
        max_output_tokens=None,
        previous_response_id=None,
        temperature=1.0,
        top_p=1.0,
        text=ReplyFormat({"type": "text"}),
        metadata={},
        store=True,
        usage=None,
    )
    return StoredResponse(response, [], [Turn("user", text)])


def test_saved_responses_load_back_and_leave_no_temp_files(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "responses", max_count=10, max_age_seconds=3600)
    one = stored("first")
    store.save(one)
    assert store.load(one.response.id) == one
    assert [p.name for p in store.folder.iterdir()] == [f"{one.response.id}.json"]
    store.delete(one.response.id)
    with pytest.raises(NotFoundError):
        store.load(one.response.id)
    with pytest.raises(NotFoundError):
        store.delete(one.response.id)


def test_the_oldest_go_beyond_the_count(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "responses", max_count=2, max_age_seconds=3600)
    saved = []
    for n in range(3):
        item = stored(str(n))
        store.save(item)
        when = time.time() - 10 + n
        os.utime(store.folder / f"{item.response.id}.json", (when, when))
        saved.append(item)
    newest = stored("3")
    store.save(newest)
    for gone in saved[:2]:
        with pytest.raises(NotFoundError):
            store.load(gone.response.id)
    assert store.load(saved[2].response.id) == saved[2]
    assert store.load(newest.response.id) == newest


def test_expired_and_malformed_ids_are_not_found(tmp_path: Path) -> None:
    store = ResponseStore(tmp_path / "responses", max_count=10, max_age_seconds=60)
    old = stored()
    store.save(old)
    path = store.folder / f"{old.response.id}.json"
    os.utime(path, (time.time() - 120, time.time() - 120))
    with pytest.raises(NotFoundError):
        store.load(old.response.id)
    assert not path.exists()
    (tmp_path / "secret.json").write_text("{}")
    for bad in ("../secret", "resp_../../secret", "resp_ABC", ""):
        with pytest.raises(NotFoundError):
            store.load(bad)
