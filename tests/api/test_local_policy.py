"""A web page cannot drive a keyless server: Host, Origin and content type are checked first."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx2
import pytest
from litestar import Litestar
from openai.types.chat import ChatCompletion

from server.app import create_app
from server.local_policy import host_name, is_loopback
from server.settings import ServerSettings

CHAT = b'{"model": "pip", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2}'


def error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    return dict(body["error"])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True), ("LOCALHOST.", True), ("app.localhost", True), ("127.0.0.1", True),
        ("127.9.8.7", True), ("::1", True), ("[::1]", True), ("0.0.0.0", False),
        ("attacker.example", False), ("127.0.0.1.attacker.example", False),
        ("localhost.evil", False), ("", False),
    ],
)  # fmt: skip
def test_loopback_names_and_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_host_header_names_lose_their_port() -> None:
    assert host_name("127.0.0.1:8000") == "127.0.0.1"
    assert host_name("[::1]:8000") == "::1"
    assert host_name("localhost") == "localhost"


async def test_the_smallest_attack_a_text_plain_post_from_another_origin(http: Any) -> None:
    headers = {"Content-Type": "text/plain", "Origin": "http://evil.example"}
    body = b'{"run": "run-1"}'
    refused = await http.post("/v1/adapters/juni/activate", content=body, headers=headers)
    assert refused.status_code == 403
    assert error(refused)["code"] == "origin_not_allowed"
    plain = await http.post(
        "/v1/adapters/juni/activate", content=body, headers={"Content-Type": "text/plain"}
    )
    assert plain.status_code == 415
    assert error(plain)["code"] == "unsupported_media_type"


PARAMETER = re.compile(r"\{(\w+)(?::(\w+))?\}")
"""A path parameter in a Litestar route, `{name}` or `{name:type}`."""


def _example_value(match: re.Match[str]) -> str:
    """A value the parameter's type accepts, so the request reaches the route's middleware."""
    return "1" if match.group(2) == "int" else match.group(1)


async def test_every_state_changing_route_refuses_a_body_that_is_not_json(
    http: Any, app: Litestar
) -> None:
    routes = {
        (PARAMETER.sub(_example_value, route.path), method)
        for route in app.routes
        for method in getattr(route, "methods", ())
        if method in ("POST", "PUT", "PATCH", "DELETE")
    }
    assert len(routes) > 10
    for path, method in sorted(routes):
        for media in ("text/plain", "application/x-www-form-urlencoded", ""):
            headers = {"Content-Type": media} if media else {}
            response = await http.request(method, path, content=CHAT, headers=headers)
            assert response.status_code == 415, (method, path, media, response.text)


async def test_a_foreign_host_is_refused_without_a_key(http: Any) -> None:
    for host in ("attacker.example", "attacker.example:8000", "192.168.1.20:8000"):
        response = await http.get("/v1/models", headers={"Host": host})
        assert response.status_code == 403, host
        assert error(response)["code"] == "host_not_allowed"
        assert "--allowed-hosts" in error(response)["message"]
    assert (await http.get("/v1/models", headers={"Host": "127.0.0.1:8000"})).status_code == 200
    assert (await http.get("/health", headers={"Host": "[::1]:8000"})).status_code in (200, 503)


async def test_same_origin_and_sdk_requests_are_served(http: Any) -> None:
    json = {"Content-Type": "application/json; charset=utf-8"}
    own = await http.post(
        "/v1/chat/completions", content=CHAT, headers={**json, "Origin": "http://localhost"}
    )
    assert own.status_code == 200, own.text
    ChatCompletion.model_validate(own.json())
    bare = await http.post("/v1/chat/completions", content=CHAT, headers=json)
    assert bare.status_code == 200
    # A foreign origin may read (the browser withholds the response without CORS headers).
    assert (await http.get("/v1/models", headers={"Origin": "http://evil.example"})).is_success


async def _served(settings: ServerSettings, engine: Any, catalog: Any, **change: Any) -> Any:
    import msgspec

    return create_app(msgspec.structs.replace(settings, **change), engine, catalog=catalog)


async def test_operators_can_list_hosts_and_origins(
    settings: ServerSettings, engine: Any, catalog: Any, running: Any
) -> None:
    app = await _served(
        settings,
        engine,
        catalog,
        allowed_hosts=("studio.lan",),
        cors_origins=("https://game.example",),
    )
    async with (
        running(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://studio.lan:8000"
        ) as http,
    ):
        assert (await http.get("/v1/models")).status_code == 200
        other = await http.get("/v1/models", headers={"Host": "other.lan"})
        assert other.status_code == 403
        origin = {"Origin": "https://game.example", "Content-Type": "application/json"}
        preflight = await http.options(
            "/v1/chat/completions",
            headers={**origin, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.headers["access-control-allow-origin"] == "https://game.example"
        chat = await http.post("/v1/chat/completions", content=CHAT, headers=origin)
        assert chat.status_code == 200
        assert chat.headers["access-control-allow-origin"] == "https://game.example"
        evil = await http.post(
            "/v1/chat/completions",
            content=CHAT,
            headers={"Origin": "https://evil.example", "Content-Type": "application/json"},
        )
        assert evil.status_code == 403


async def test_with_a_key_any_host_is_served_and_the_key_decides(
    settings: ServerSettings, engine: Any, catalog: Any, running: Any
) -> None:
    app = await _served(settings, engine, catalog, api_key="s3cret")
    async with (
        running(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://studio.lan"
        ) as http,
    ):
        assert (await http.get("/v1/models")).status_code == 401
        keyed = await http.get("/v1/models", headers={"Authorization": "Bearer s3cret"})
        assert keyed.status_code == 200


def test_serve_refuses_a_public_interface_without_a_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from studio.cli import main

    assert main(["serve", "--host", "0.0.0.0", "--port", "1"]) == 2
    err = capsys.readouterr().err
    assert "without an API key" in err
    assert "--insecure-no-key" in err
