"""A persona made by a fine-tuning job is written whole with a TOML library, or not at all."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from data.atomic import staged_folder
from data.card import load_card
from data.home import personas_dir
from tests.api.job_helpers import FAST, dataset


async def upload(http: httpx2.AsyncClient, content: bytes) -> str:
    response = await http.post(
        "/v1/files", files={"file": ("t.jsonl", content)}, data={"purpose": "fine-tune"}
    )
    assert response.status_code == 200, response.text
    return str(response.json()["id"])


async def test_an_emoji_system_prompt_makes_a_valid_card(
    http: httpx2.AsyncClient, base: str
) -> None:
    system = 'You are 🤖 "Emo", who says \\ and """ and \x7f.'
    file_id = await upload(http, dataset(system))
    response = await http.post(
        "/v1/fine_tuning/jobs",
        json={"model": base, "training_file": file_id, "suffix": "emoji", **FAST},
    )
    assert response.status_code == 200, response.text
    await http.post(f"/v1/fine_tuning/jobs/{response.json()['id']}/cancel")
    card = load_card(personas_dir() / "emoji")
    assert card.system_prompt == system
    assert "\\ud83e" not in (personas_dir() / "emoji" / "persona.toml").read_text()
    assert [p.name for p in personas_dir().iterdir()] == ["emoji"]  # no staging folder left


async def test_a_lone_surrogate_is_refused_at_upload(http: httpx2.AsyncClient) -> None:
    system = json.dumps({"x": "\ud83e"})[7:-2]  # valid JSON escapes, but not text
    lines = dataset("PLACEHOLDER").replace(b"PLACEHOLDER", system.encode())
    response = await http.post(
        "/v1/files", files={"file": ("t.jsonl", lines)}, data={"purpose": "fine-tune"}
    )
    assert response.status_code == 400
    assert "surrogate" in response.json()["error"]["message"]


def test_a_staged_folder_is_all_or_nothing(tmp_path: Path) -> None:
    target = tmp_path / "personas" / "cog"

    def fail() -> None:
        with staged_folder(target) as staging:
            (staging / "persona.toml").write_text("half")
            raise RuntimeError("the write failed")

    with pytest.raises(RuntimeError):
        fail()
    assert list(target.parent.iterdir()) == []
    with staged_folder(target) as staging:
        (staging / "persona.toml").write_text('name = "cog"')
    assert (target / "persona.toml").is_file()

    def again() -> None:
        with staged_folder(target) as staging:
            (staging / "persona.toml").write_text("other")

    with pytest.raises(FileExistsError):
        again()
    assert [p.name for p in target.parent.iterdir()] == ["cog"]
    assert (target / "persona.toml").read_text() == 'name = "cog"'
