"""The page routes of `persona serve`: on, locked to personas, or off; never in the schema."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings, load_settings

KEY = "k"
AUTH = {"Authorization": f"Bearer {KEY}"}
PAGE_PATHS = ("/", "/chat/pip", "/web/chat.js", "/web/chat.css")


def _app(settings: ServerSettings, engine: Any, catalog: Catalog, web: str) -> Any:
    changed = msgspec.structs.replace(settings, web=web, api_key=KEY)
    return create_app(changed, engine, catalog=catalog)


async def test_pages_answer_without_a_key_and_stay_out_of_the_schema(
    settings: ServerSettings, engine: Any, catalog: Catalog
) -> None:
    async with AsyncTestClient(_app(settings, engine, catalog, "on")) as client:
        for path in PAGE_PATHS:
            response = await client.get(path)
            assert response.status_code == 200, path
            assert response.headers["x-content-type-options"] == "nosniff"
        page = await client.get("/")
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (await client.get("/chat/nobody")).json()["error"]["code"] == "persona_not_found"
        assert (await client.get("/web/index.html")).status_code == 404
        assert (await client.get("/web/..%2Fapp.py")).status_code == 404
        assert (await client.get("/v1/models")).status_code == 401
        schema = (await client.get("/openapi.json", headers=AUTH)).json()
    assert "/v1/chat/completions" in schema["paths"]
    assert not [p for p in schema["paths"] if p == "/" or p.startswith(("/chat", "/web"))]


async def test_locked_serves_the_persona_pages_and_what_they_need_only(
    settings: ServerSettings, engine: Any, catalog: Catalog, base: str
) -> None:
    async with AsyncTestClient(_app(settings, engine, catalog, "locked")) as client:
        assert (await client.get("/chat/pip")).status_code == 200
        assert (await client.get("/web/chat.js")).status_code == 200
        for path in ("/v1/models", "/v1/personas", "/v1/personas/pip", "/health"):
            assert (await client.get(path, headers=AUTH)).status_code == 200, path
        for path in ("/", "/docs", "/openapi.json", "/metrics", "/v1/adapters", "/v1/files",
                     "/v1/fine_tuning/jobs", "/v1/evals"):  # fmt: skip
            assert (await client.get(path, headers=AUTH)).status_code == 404, path
        for path in ("/v1/completions", "/v1/responses", "/v1/files"):
            response = await client.post(path, headers=AUTH, json={"model": "pip", "prompt": "x"})
            assert response.status_code in (404, 405), path
        message = {"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 2}
        reply = await client.post(
            "/v1/chat/completions", headers=AUTH, json={"model": "pip", **message}
        )
        assert reply.status_code == 200
        refused = await client.post(
            "/v1/chat/completions", headers=AUTH, json={"model": base, **message}
        )
        assert refused.status_code == 404
        assert refused.json()["error"]["param"] == "model"
        assert "personas only" in refused.json()["error"]["message"]


async def test_no_web_turns_the_pages_off(
    settings: ServerSettings, engine: Any, catalog: Catalog
) -> None:
    async with AsyncTestClient(_app(settings, engine, catalog, "off")) as client:
        for path in PAGE_PATHS:
            assert (await client.get(path)).status_code in (401, 404), path
            assert (await client.get(path, headers=AUTH)).status_code == 404, path
        assert (await client.get("/v1/models", headers=AUTH)).status_code == 200


@pytest.mark.parametrize(
    ("flags", "web"),
    [([], "on"), (["--no-web"], "off"), (["--web", "locked"], "locked"), (["--web", "off"], "off")],
)
def test_serve_flags_choose_the_web_mode(flags: list[str], web: str, tmp_path: Path) -> None:
    import argparse

    from server.cli import configure

    parser = argparse.ArgumentParser()
    configure(parser)
    args = parser.parse_args(flags)
    settings = load_settings({"web": args.web}, path=tmp_path / "none.toml", environ={})
    assert settings.web == web


def test_serve_refuses_both_web_flags_and_an_unknown_mode(tmp_path: Path) -> None:
    import argparse

    from server.cli import configure
    from server.settings import SettingsError

    parser = argparse.ArgumentParser()
    configure(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-web", "--web", "locked"])
    with pytest.raises(SettingsError, match="web"):
        load_settings(path=tmp_path / "none.toml", environ={"PERSONA_WEB": "sometimes"})
