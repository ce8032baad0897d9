"""Hostile request bodies end in a 4xx in OpenAI's envelope on every route, never a 500."""

from __future__ import annotations

from typing import Any

import httpx2
from litestar import Litestar

from data.json_depth import MAX_DEPTH

CHAT_LINE = (
    b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
)
DEEP = b"[" * 1000 + b"]" * 1000
"""The smallest attack: 2 KB of brackets, deeper than any decoder's stack."""


def error(response: httpx2.Response) -> dict[str, Any]:
    body = response.json()
    assert set(body) == {"error"}
    return dict(body["error"])


def body_routes(app: Litestar) -> list[tuple[str, str]]:
    """Every (method, path) that takes a body, path parameters filled with a plausible value."""
    found = set()
    for route in app.routes:
        for method in getattr(route, "methods", ()):
            if method in ("POST", "PUT", "PATCH"):
                path = route.path
                for name in route.path_parameters:
                    path = path.replace("{" + f"{name}:str" + "}", "pip")
                    path = path.replace("{" + f"{name}:int" + "}", "1")
                found.add((method, path))
    return sorted(found)


async def test_deep_json_is_a_400_naming_the_limit_on_every_route(
    http: httpx2.AsyncClient, app: Litestar
) -> None:
    routes = body_routes(app)
    assert len(routes) > 10
    headers = {"Content-Type": "application/json"}
    for deep in (DEEP, b'{"model": "pip", "messages": ' + b'{"a": ' * 999 + b"1" + b"}" * 1000):
        for method, path in routes:
            if path == "/v1/files":
                continue  # multipart: see the upload test
            response = await http.request(method, path, content=deep, headers=headers)
            assert response.status_code == 400, (path, response.text)
            assert error(response)["code"] == "json_too_deep"
            assert f"deeper than {MAX_DEPTH} levels" in error(response)["message"]


async def test_nesting_at_the_limit_is_decoded_as_usual(http: httpx2.AsyncClient) -> None:
    depth = MAX_DEPTH - 3
    nested = "[" * depth + "]" * depth
    body = (
        '{"model": "pip", "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],'
        f' "metadata": {{"deep": "{nested}"}}, "user": {nested}}}'
    )
    response = await http.post(
        "/v1/chat/completions", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert error(response)["code"] != "json_too_deep"  # `user` is a string: a typed 400


async def test_an_uploaded_line_nested_too_deeply_is_named_by_line(
    http: httpx2.AsyncClient,
) -> None:
    good = (
        b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    )
    for purpose in ("fine-tune", "evals"):
        content = good + b"\n" + DEEP + b"\n"
        response = await http.post(
            "/v1/files", files={"file": ("deep.jsonl", content)}, data={"purpose": purpose}
        )
        assert response.status_code == 400, response.text
        assert f"line 2: JSON is nested deeper than {MAX_DEPTH}" in error(response)["message"]


async def test_an_upload_of_bad_lines_gets_a_bounded_report(http: httpx2.AsyncClient) -> None:
    for purpose in ("fine-tune", "evals"):
        for content in (b"x\n" * 50_000, (b'{"' + b"k" * 5000 + b'": 1}\n') * 200):
            response = await http.post(
                "/v1/files", files={"file": ("bad.jsonl", content)}, data={"purpose": purpose}
            )
            assert response.status_code == 400
            message = error(response)["message"]
            assert len(response.content) < 40_000, len(response.content)
            assert "line 50:" in message
            assert "line 51:" not in message
            assert "more (the first 50 are shown)" in message


async def test_the_files_folder_has_a_quota(
    settings: Any, engine: Any, catalog: Any, running: Any
) -> None:
    import msgspec

    from server.app import create_app

    line = (
        b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
    )
    one = line + b"\n"
    app = create_app(
        msgspec.structs.replace(settings, max_files_total_bytes=len(one) * 2 + 10),
        engine,
        catalog=catalog,
    )
    async with (
        running(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):

        async def upload(content: bytes) -> httpx2.Response:
            return await http.post(
                "/v1/files", files={"file": ("a.jsonl", content)}, data={"purpose": "fine-tune"}
            )

        first = await upload(one)
        assert first.status_code == 200, first.text
        assert (await upload(one)).status_code == 200
        full = await upload(one)
        assert full.status_code == 413
        assert error(full)["code"] == "files_quota_exceeded"
        assert "max_files_total_bytes" in error(full)["message"]
        bad = await upload(b"x\n")
        assert bad.status_code == 400  # small enough to fit: checked, refused, not kept
        assert (await http.delete(f"/v1/files/{first.json()['id']}")).status_code == 200
        again = await upload(one)
        assert again.status_code == 200, again.text
        content = await http.get(f"/v1/files/{again.json()['id']}/content")
        assert content.content == one
        root = app.state.files.root
        assert not [p for p in root.iterdir() if p.name.startswith(".")]


async def test_uploads_have_their_own_body_limit(
    settings: Any, engine: Any, catalog: Any, running: Any
) -> None:
    import msgspec

    from server.app import create_app

    lines = [
        b'{"messages": [{"role": "user", "content": "a%d"}, {"role": "assistant", "content": "b"}]}'
        % i
        for i in range(300)
    ]
    dataset = b"\n".join(lines) + b"\n"
    small_json = msgspec.structs.replace(settings, max_body_bytes=4_000, max_file_bytes=30_000)
    app = create_app(small_json, engine, catalog=catalog)
    async with (
        running(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app), base_url="http://localhost"
        ) as http,
    ):
        # A file over the JSON bodies' limit but under max_file_bytes is taken...
        upload = await http.post(
            "/v1/files", files={"file": ("a.jsonl", dataset)}, data={"purpose": "fine-tune"}
        )
        assert len(dataset) > 4_000
        assert upload.status_code == 200, upload.text
        # ...while a JSON body that size is still refused on every other route.
        chat = await http.post(
            "/v1/chat/completions",
            json={"model": "pip", "messages": [{"role": "user", "content": "x" * len(dataset)}]},
        )
        assert chat.status_code == 413
        assert set(chat.json()) == {"error"}
        # A body past max_file_bytes and its framing is refused before it is read through.
        huge = await http.post(
            "/v1/files",
            files={"file": ("b.jsonl", dataset * 400)},
            data={"purpose": "fine-tune"},
        )
        assert huge.status_code == 413
        assert error(huge)["code"] == "request_too_large"
        assert [f["filename"] for f in (await http.get("/v1/files")).json()["data"]] == ["a.jsonl"]
