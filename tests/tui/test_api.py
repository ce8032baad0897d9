"""tui/api.py: every failure becomes one ApiError; streams and events decode as the server sends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest

from tui.api import ApiClient, ApiError, normalize_url
from tui.sse import SseDecoder
from tui.wire import ChatMessage, SamplingOverrides


def client_for(handler) -> ApiClient:  # type: ignore[no-untyped-def]
    return ApiClient("http://localhost/v1/", transport=httpx.MockTransport(handler))


def sse(*payloads: object) -> bytes:
    lines = []
    for p in payloads:
        if isinstance(p, str) and p.startswith(":"):
            lines.append(f"{p}\n\n")  # a comment, as servers send for keep-alive
        else:
            lines.append(f"data: {p if isinstance(p, str) else json.dumps(p)}\n\n")
    return "".join(lines).encode()


async def drain(stream: AsyncIterator[object], into: list[object]) -> None:
    """Collect a stream's items until it ends or raises."""
    async for item in stream:
        into.append(item)


def chunk(content: str | None = None, finish: str | None = None, **extra: object) -> dict:
    """A chunk with every field the server writes (`choices=[]` for the closing usage chunk)."""
    delta = {} if content is None else {"content": content}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": "juni",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        "system_fingerprint": "fp_test",
        "persona_adapter": None,
        **extra,
    }


def failure(message: str, kind: str = "server_error") -> dict:
    """OpenAI's error envelope, as the server writes it."""
    return {"error": {"message": message, "type": kind, "param": None, "code": None}}


def test_normalize_url_strips_v1_and_slashes() -> None:
    assert normalize_url("http://h:8000/v1/") == "http://h:8000"
    assert normalize_url(" http://h:8000 ") == "http://h:8000"


async def test_openai_error_envelope_becomes_readable_api_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "message": "model 'nobody' does not exist",
                "type": "invalid_request_error",
                "param": "model",
                "code": "model_not_found",
            }
        }
        return httpx.Response(404, json=body)

    client = client_for(handler)
    with pytest.raises(ApiError) as caught:
        await client.persona("nobody")
    assert caught.value.title == "Not found (404)"
    assert "does not exist" in caught.value.message
    assert "(param: model)" in caught.value.message
    assert caught.value.status == 404


async def test_non_json_error_body_is_still_readable() -> None:
    client = client_for(lambda r: httpx.Response(502, text="Bad Gateway from proxy"))
    with pytest.raises(ApiError, match="Bad Gateway from proxy") as caught:
        await client.models()
    assert caught.value.title == "Server error (502)"


async def test_connection_refused_is_unreachable_not_a_traceback() -> None:
    client = ApiClient("http://127.0.0.1:9")  # the discard port: nothing listens
    with pytest.raises(ApiError) as caught:
        await client.models()
    assert caught.value.unreachable
    assert caught.value.title == "Server unreachable"
    health = await client.health()
    assert health.state == "down"


async def test_garbled_body_is_unexpected_reply() -> None:
    client = client_for(lambda r: httpx.Response(200, text="{not json"))
    with pytest.raises(ApiError, match="unreadable"):
        await client.models()


async def test_health_states() -> None:
    answers = iter(
        [
            httpx.Response(
                503,
                json={
                    "status": "loading",
                    "model": "gemma-3-270m",
                    "message": "the model is loading",
                },
            ),
            httpx.Response(
                503, json={"status": "failed", "model": "x", "message": "no such folder"}
            ),
            httpx.Response(200, json={"status": "ok", "model": "gemma-3-270m"}),
        ]
    )
    client = client_for(lambda r: next(answers))
    loading, failed, ready = [await client.health() for _ in range(3)]
    assert (loading.state, loading.detail) == ("loading", "the model is loading")
    assert (failed.state, failed.detail) == ("failed", "no such folder")
    assert (ready.state, ready.model) == ("ready", "gemma-3-270m")


async def test_chat_streams_text_adapter_version_and_usage() -> None:
    seen: dict[str, object] = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.update(json.loads(request.content))
        body = sse(
            chunk("Splish", persona_adapter="run-2:40"),
            ": keepalive",
            chunk("-splash!", persona_adapter="run-2:40"),
            chunk(None, "stop", persona_adapter="run-2:40"),
            chunk(
                choices=[],
                persona_adapter="run-2:40",
                usage={"prompt_tokens": 9, "completion_tokens": 3, "total_tokens": 12},
            ),
            "[DONE]",
        )
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    client = client_for(handler)
    pieces = [
        p
        async for p in client.chat(
            "juni", [ChatMessage("user", "hi")], SamplingOverrides(temperature=0.3, seed=7)
        )
    ]
    assert "".join(p.text for p in pieces) == "Splish-splash!"
    assert pieces[0].adapter == "run-2:40"
    assert any(p.finish_reason == "stop" for p in pieces)
    assert pieces[-1].completion_tokens == 3
    assert seen["model"] == "juni"
    assert seen["temperature"] == 0.3
    assert seen["seed"] == 7
    assert "top_p" not in seen  # unset overrides leave the persona's defaults in charge
    assert seen["stream_options"] == {"include_usage": True}


async def test_chat_refused_request_raises_before_any_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {
            "error": {
                "message": "temperature: must be <= 2",
                "type": "invalid_request_error",
                "param": "temperature",
                "code": None,
            }
        }
        return httpx.Response(400, json=body)

    client = client_for(handler)
    with pytest.raises(ApiError, match="temperature") as caught:
        async for _ in client.chat("juni", [ChatMessage("user", "hi")], SamplingOverrides()):
            pass
    assert caught.value.title == "Request refused (400)"


async def test_error_inside_an_open_stream() -> None:
    body = sse(chunk("Hel"), failure("engine stopped"))
    client = client_for(lambda r: httpx.Response(200, content=body))
    got: list[object] = []
    with pytest.raises(ApiError, match="engine stopped"):
        await drain(client.chat("juni", [ChatMessage("user", "hi")], SamplingOverrides()), got)
    assert [p.text for p in got] == ["Hel"]  # type: ignore[attr-defined]


async def test_a_chunk_that_is_neither_a_chunk_nor_an_error_is_an_unexpected_reply() -> None:
    body = sse(chunk("Hel"), {"id": "chatcmpl-1", "choices": "nope"}, "[DONE]")
    client = client_for(lambda r: httpx.Response(200, content=body))
    got: list[object] = []
    with pytest.raises(ApiError, match="unreadable") as caught:
        await drain(client.chat("juni", [ChatMessage("user", "hi")], SamplingOverrides()), got)
    assert caught.value.title == "Unexpected reply"
    assert [p.text for p in got] == ["Hel"]  # type: ignore[attr-defined]


async def test_a_raw_line_separator_in_a_reply_stays_in_the_reply() -> None:
    # msgspec (like the server) writes U+2028, U+2029 and U+0085 raw inside JSON strings.
    text = "one\u2028two\u2029three\x85four"
    body = b"".join(
        b"data: " + json.dumps(c, ensure_ascii=False).encode() + b"\n\n"
        for c in (chunk(text), chunk(None, "stop"))
    )
    body += b"data: [DONE]\n\n"

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})

    pieces = [
        p
        async for p in client_for(handler).chat(
            "juni", [ChatMessage("user", "hi")], SamplingOverrides()
        )
    ]
    assert "".join(p.text for p in pieces) == text


async def test_stream_cut_without_done_is_connection_lost() -> None:
    client = client_for(lambda r: httpx.Response(200, content=sse(chunk("Hel"))))
    with pytest.raises(ApiError, match="ended early") as caught:
        async for _ in client.chat("juni", [ChatMessage("user", "hi")], SamplingOverrides()):
            pass
    assert caught.value.unreachable


async def test_admin_calls_send_the_contract_bodies() -> None:
    requests: list[tuple[str, str, bytes]] = []
    state = {
        "persona": "juni",
        "mode": "pinned",
        "active": "run-1:20",
        "loaded": ["run-1:20"],
        "last_error": None,
        "runs": [
            {
                "run": "run-1",
                "status": "done",
                "best": 20,
                "latest": 40,
                "checkpoints": [
                    {
                        "step": 20,
                        "version": "run-1:20",
                        "created": 1.0,
                        "metrics": {"val_loss": 2.0},
                    }
                ],
            }
        ],
    }

    def handler(request: httpx.Request) -> httpx.Response:
        requests.append((request.method, request.url.path, request.content))
        if request.url.path == "/v1/adapters":
            return httpx.Response(200, json={"object": "list", "data": [state]})
        return httpx.Response(200, json=state)

    client = client_for(handler)
    entry = await client.activate("juni", "run-1", 20)
    assert entry.active == "run-1:20"
    assert entry.runs[0].checkpoints[0].metrics == {"val_loss": 2.0}
    await client.follow("juni")
    listed = await client.adapters()
    assert listed[0].persona == "juni"
    assert requests[0] == ("POST", "/v1/adapters/juni/activate", b'{"run":"run-1","step":20}')
    assert requests[1][:2] == ("POST", "/v1/adapters/juni/follow")


async def test_adapter_events_decode_and_end_with_connection_lost() -> None:
    body = (
        b": hello\n\n"
        b"event: adapter\n"
        b'data: {"type":"loaded","persona":"juni","version":"run-1:20","message":"","time":1.5}'
        b"\n\n"
    )
    client = client_for(lambda r: httpx.Response(200, content=body))
    events: list = []  # type: ignore[type-arg]
    with pytest.raises(ApiError) as caught:
        await drain(client.adapter_events(), events)
    assert [(e.type, e.version) for e in events] == [("loaded", "run-1:20")]
    assert caught.value.unreachable


def test_sse_decoder_joins_data_lines_and_skips_comments() -> None:
    decoder = SseDecoder()
    fed = [decoder.feed(line) for line in [": ping", "event: adapter", "data: a", "data: b", ""]]
    assert fed[:4] == [None, None, None, None]
    assert fed[4] is not None
    assert (fed[4].event, fed[4].data) == ("adapter", "a\nb")
    assert decoder.feed("") is None  # a blank line with nothing pending dispatches nothing
