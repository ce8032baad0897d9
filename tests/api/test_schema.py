"""Schemathesis over /openapi.json: whatever the schema allows, the server never answers 5xx."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.specs.openapi.checks import response_schema_conformance

from server.app import create_app
from server.catalog import Catalog
from server.settings import ServerSettings

LENGTH_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens", "min_tokens")


@pytest.fixture(scope="module")
def api_schema(
    tiny_model_dir: Path, engine: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    """A real server on a loopback port (its own thread and loop) and its schema."""
    import uvicorn

    root = tmp_path_factory.mktemp("schema")
    config = ServerSettings(
        model=str(tiny_model_dir),
        personas_dirs=(str(Path(__file__).parent.parent / "fixtures" / "personas"),),
        adapters_dir=str(root / "adapters"),
        max_tokens=4,
    )
    app = create_app(config, engine, catalog=Catalog.discover(config.persona_paths()))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(6000):
        if server.started:
            break
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/openapi.json")
    server.should_exit = True
    thread.join(30)


# The adapter event stream never ends by design; tests/api/test_adapters.py covers it.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/v1/adapters/events")


@pytest.mark.serial
@pytest.mark.timeout(1800)
@schema.parametrize()
@settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: Any) -> None:
    # Bounded generation keeps the run short; every other field is left to the fuzzer.
    if isinstance(case.body, dict):
        # Random model names all end in 404; name a served model most of the time to go deeper.
        if isinstance(case.body.get("model"), str) and len(repr(case.body)) % 3:
            case.body["model"] = "pip"
        for name in LENGTH_FIELDS:
            if isinstance(case.body.get(name), int) and case.body[name] > 4:
                case.body[name] = 4
    response = case.call(timeout=120)
    assert response.status_code < 500, response.text
    if (
        response.status_code < 300
        and "event-stream" not in response.headers.get("content-type", [""])[0]
    ):
        case.validate_response(response, checks=[response_schema_conformance])
