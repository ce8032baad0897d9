"""Fixtures for the OpenAI API tests: a real engine on the tiny model, personas, clients."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest
from litestar import Litestar
from openai import AsyncOpenAI

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings

FIXTURE_PERSONAS = Path(__file__).parent.parent / "fixtures" / "personas"
"""Holds `pip`, a test persona whose card sets greedy decoding and five-token replies."""


@dataclass
class RequestLog:
    """Every request a client sent, for asserting that nothing was retried."""

    requests: list[httpx2.Request] = field(default_factory=list)

    async def __call__(self, request: httpx2.Request) -> None:
        self.requests.append(request)


@pytest.fixture
def personas_dir() -> Path:
    """An extra personas folder holding `pip`."""
    return FIXTURE_PERSONAS


@pytest.fixture
def settings(tiny_model_dir: Path, tmp_path: Path, personas_dir: Path) -> ServerSettings:
    """Settings for the tiny model with short default replies."""
    return ServerSettings(
        model=str(tiny_model_dir),
        personas_dirs=(str(personas_dir),),
        adapters_dir=str(tmp_path / "adapters"),
        max_tokens=8,
        # The shipped Juni and Vell guards read the embedded model's hidden states, so on the
        # tiny model their cards' guards cannot run (and would refuse to serve); the guard's
        # own tests turn it on with a guard trained on the tiny model.
        guard=False,
    )


@pytest.fixture
def catalog(settings: ServerSettings) -> Catalog:
    """The personas: `pip` from the test folder and the shipped samples."""
    return Catalog.discover(settings.persona_paths())


@pytest.fixture(scope="session")
def engine(tiny_model_dir: Path) -> Iterator[Any]:
    """A started engine on the tiny model, shared by the session (loading costs seconds)."""
    from server.engine.engine import Engine

    engine = Engine.load(str(tiny_model_dir), max_batch=4, max_adapters=4)
    engine.start()
    yield engine
    asyncio.run(engine.aclose())


@pytest.fixture
def base(engine: Any) -> str:
    """The base model's id (the tiny model's folder name)."""
    return str(engine.model_id)


@pytest.fixture
def app(settings: ServerSettings, engine: Any, catalog: Catalog) -> Litestar:
    """The app, serving with the test engine."""
    return create_app(settings, engine, catalog=catalog)


@pytest.fixture
def request_log() -> RequestLog:
    """Records the requests the OpenAI client sends."""
    return RequestLog()


@pytest.fixture
async def http(app: Litestar, request_log: RequestLog) -> AsyncIterator[httpx2.AsyncClient]:
    """An in-process HTTP client in this event loop, with the app's lifespan running.

    httpx2's ASGI transport runs requests concurrently (Litestar's test client serialises them).
    """
    async with (
        lifespan(app),
        httpx2.AsyncClient(
            transport=httpx2.ASGITransport(app=app),
            base_url="http://localhost",
            timeout=120,
            event_hooks={"request": [request_log]},
        ) as client,
    ):
        yield client


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    """Run the app's start-up and shut-down in a task of their own.

    Fixtures set up and tear down in different tasks; anyio's cancel scopes inside Litestar's
    lifespan must enter and exit in one.
    """
    started, stop = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with app.lifespan():
            started.set()
            await stop.wait()

    task = asyncio.create_task(hold())
    waiter = asyncio.create_task(started.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        waiter.cancel()
        task.result()
    try:
        yield
    finally:
        stop.set()
        await task


@pytest.fixture
def running() -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    """`async with running(app):` runs an app's lifespan for the block."""
    return lifespan


@pytest.fixture
def client(http: httpx2.AsyncClient) -> AsyncOpenAI:
    """The official async OpenAI client, talking to the app in process."""
    openai = AsyncOpenAI(
        base_url=str(http.base_url.join("/v1")), api_key="unused", http_client=http, max_retries=0
    )
    return openai


def token_id(engine: Any, text: str) -> int:
    """The single token id that encodes `text` (without BOS)."""
    ids = [i for i in engine.tokenizer.encode(text) if i != engine.tokenizer.bos_token_id]
    assert len(ids) == 1, f"{text!r} is {len(ids)} tokens"
    return int(ids[0])


@pytest.fixture
def force(engine: Any) -> Any:
    """`force(" cat")` gives a logit_bias that makes the random tiny model say only that token."""

    def bias(text: str) -> dict[str, int]:
        return {str(token_id(engine, text)): 100}

    return bias
