"""Model ids, names and ids in paths: one strict grammar, matched whole, never a 500."""

from __future__ import annotations

from typing import Any

import httpx2
import pytest

from adapters.registry import RegistryError, parse_model_id
from data.names import is_name, parse_number

BAD_IDS = [
    "pip@run-1:²",
    "pip@run-1:٣",
    "pip@run-1:" + "9" * 5000,
    "pip@run-1:1\n",
    "pip@run-1\n",
    "pip\n",
    "pip@run-1:-1",
    "pip@run-1: 1",
    "pip@run-1:1_000",
]


@pytest.mark.parametrize("model_id", BAD_IDS)
def test_a_bad_model_id_is_a_registry_error_that_quotes_it_briefly(model_id: str) -> None:
    with pytest.raises(RegistryError) as refused:
        parse_model_id(model_id)
    assert len(str(refused.value)) < 200


def test_the_grammar() -> None:
    assert parse_model_id("pip@run-12:345").step == 345
    assert parse_model_id("pip@run-1:best").step == "best"
    assert parse_number("123456789") == 123456789
    for bad in ("1234567890", "", "²", "1\n", "+1", "1.0", "０"):
        assert parse_number(bad) is None, bad
    assert is_name("cog")
    for bad in ("cog\n", "Cog", "-cog", "cog/", "a" * 64, "", "cög"):
        assert not is_name(bad), bad


def envelope(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}, body
    return dict(body["error"])


async def test_every_route_taking_a_model_id_answers_4xx(http: httpx2.AsyncClient) -> None:
    upload = await http.post(
        "/v1/files",
        files={
            "file": (
                "t.jsonl",
                b'{"messages": [{"role": "user", "content": "a"},'
                b' {"role": "assistant", "content": "b"}]}\n',
            )
        },
        data={"purpose": "fine-tune"},
    )
    assert upload.status_code == 200, upload.text
    file_id = upload.json()["id"]
    for model in BAD_IDS:
        bodies = {
            "/v1/chat/completions": {
                "model": model,
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1,
            },
            "/v1/completions": {"model": model, "prompt": "hi", "max_tokens": 1},
            "/v1/responses": {"model": model, "input": "hi", "max_output_tokens": 16},
            "/v1/fine_tuning/jobs": {"model": model, "training_file": file_id},
            "/v1/personas/pip/evals": {"models": [model], "suite_file": file_id},
        }
        for path, body in bodies.items():
            response = await http.post(path, json=body)
            assert 400 <= response.status_code < 500, (path, model[:20], response.text)
            assert len(envelope(response)["message"]) < 1000


async def test_a_suffix_with_a_trailing_newline_makes_no_folder(
    http: httpx2.AsyncClient, base: str
) -> None:
    from data.home import personas_dir

    upload = await http.post(
        "/v1/files",
        files={
            "file": (
                "t.jsonl",
                b'{"messages": [{"role": "user", "content": "a"},'
                b' {"role": "assistant", "content": "b"}]}\n',
            )
        },
        data={"purpose": "fine-tune"},
    )
    for suffix in ("cog\n", "cog\r\n", "Cog", "../cog"):
        response = await http.post(
            "/v1/fine_tuning/jobs",
            json={"model": base, "training_file": upload.json()["id"], "suffix": suffix},
        )
        assert response.status_code == 400, (suffix, response.text)
        assert envelope(response)["param"] == "suffix"
    assert not personas_dir().exists() or not any(personas_dir().iterdir())


async def test_ids_in_paths_are_matched_whole(http: httpx2.AsyncClient) -> None:
    for path in (
        "/v1/files/file-" + "a" * 24 + "%0A",
        "/v1/files/file-" + "é" * 24,
        "/v1/responses/resp_" + "0" * 32 + "%0A",
    ):
        response = await http.get(path)
        assert response.status_code == 404, (path, response.text)
