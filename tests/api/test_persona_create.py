"""`POST /v1/personas` and `/v1/personas/import`: a persona made over HTTP is served at once."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
from openai import AsyncOpenAI

CARDS = Path(__file__).parents[1] / "fixtures" / "cards"


async def test_create_serves_the_new_persona(
    http: httpx.AsyncClient, client: AsyncOpenAI, persona_home: Path
) -> None:
    response = await http.post("/v1/personas", json={"name": "parrot"})
    assert response.status_code == 201
    body = response.json()
    assert body["folder"] == str(persona_home / "personas" / "parrot")
    assert body["files"] == ["persona.toml", "train.jsonl", "eval.jsonl"]
    info = (await http.get("/v1/personas/parrot")).json()
    assert info["display_name"] == "Parrot"
    assert info["data_files"] == ["train.jsonl", "eval.jsonl"]
    reply = await client.chat.completions.create(
        model="parrot", messages=[{"role": "user", "content": "hi"}], max_tokens=3
    )
    assert reply.model == "parrot"


async def test_create_a_copy(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/v1/personas", json={"name": "otter", "from": "juni", "display_name": "Otto"}
    )
    assert response.status_code == 201
    info = (await http.get("/v1/personas/otter")).json()
    assert info["display_name"] == "Otto"
    assert info["system_prompt"].startswith("You are Juni")


async def test_create_refusals_are_4xx_in_the_envelope(http: httpx.AsyncClient) -> None:
    cases = [
        ({"name": "Bad Name"}, 400, "invalid_persona_name", "is not a valid persona name"),
        ({"name": "../up"}, 400, "invalid_persona_name", "is not a valid persona name"),
        ({"name": "juni"}, 409, "persona_exists", "served already"),
        ({"name": "x", "from": "nobody"}, 404, "persona_not_found", "no persona named 'nobody'"),
    ]
    for body, status, code, words in cases:
        response = await http.post("/v1/personas", json=body)
        assert response.status_code == status, body
        error = response.json()["error"]
        assert error["code"] == code
        assert words in error["message"]
    response = await http.post("/v1/personas", json={"name": "x", "colour": "red"})
    assert response.status_code == 400
    assert "colour" in response.json()["error"]["message"]


async def test_import_a_png_card(http: httpx.AsyncClient, persona_home: Path) -> None:
    payload = base64.b64encode((CARDS / "tamsin.png").read_bytes()).decode()
    response = await http.post(
        "/v1/personas/import", json={"filename": "tamsin.png", "data": payload}
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert "persona.toml" in body["files"]
    assert Path(body["folder"]).parent == persona_home / "personas"
    info = (await http.get(f"/v1/personas/{body['id']}")).json()
    assert info["greetings"]
    again = await http.post("/v1/personas/import", json={"filename": "tamsin.png", "data": payload})
    assert again.status_code == 409


async def test_import_refuses_a_broken_card(http: httpx.AsyncClient, persona_home: Path) -> None:
    payload = base64.b64encode(b'{"spec": "chara_card_v2", "data": 3}').decode()
    response = await http.post(
        "/v1/personas/import", json={"filename": "../../etc/x.json", "data": payload}
    )
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_card"
    assert error["message"].startswith("x.json")
    assert (
        not list((persona_home / "personas").glob("*"))
        if (persona_home / "personas").exists()
        else True
    )


async def test_docs_load_nothing_from_a_cdn(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert "cdn" not in page.text.lower()
    assert "<script" not in page.text.lower()
    schema = await http.get("/docs/openapi.json")
    assert schema.status_code == 200
    assert "/v1/personas/import" in schema.json()["paths"]


async def test_a_job_refuses_iters_below_one(http: httpx.AsyncClient) -> None:
    response = await http.post("/v1/fine_tuning/jobs", json={"model": "juni", "iters": 0})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "iters"
    assert "at least 1" in error["message"]
