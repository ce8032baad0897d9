"""Prometheus metrics: per-app registries, route templates, adapters in use, engine stats."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.metrics import ServerMetrics


@dataclass(frozen=True)
class Stats:
    active: int
    queued: int
    batch_sizes: tuple[tuple[int, int], ...]


async def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = ServerMetrics(4, lambda: None)

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 404, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(_message: Any) -> None:
        return None

    counted = metrics.middleware(app)
    scope = {"type": "http", "method": "GET", "path_template": "/v1/models/{model_id}"}
    for _ in range(2):
        await counted(scope, None, send)
    text = metrics.render().decode()
    line = (
        'persona_http_requests_total{method="GET",route="/v1/models/{model_id}",status="404"} 2.0'
    )
    assert line in text


def test_running_adapters_and_engine_stats_are_read_at_scrape_time() -> None:
    stats = Stats(active=3, queued=1, batch_sizes=((1, 10), (3, 4)))
    metrics = ServerMetrics(8, lambda: stats)
    metrics.adapter_started("juni", "run-1:50")
    metrics.adapter_started("juni", "run-1:50")
    metrics.adapter_started("pip", None)
    text = metrics.render().decode()
    assert 'persona_lora_requests_info{max_lora="8",running_lora_adapters="juni@run-1:50"}' in text
    assert 'persona_lora_requests_total{adapter="base",persona="pip"} 1.0' in text
    assert "persona_engine_active 3.0" in text
    assert 'persona_engine_batch_steps{size="3"} 4.0' in text
    metrics.adapter_finished("juni", "run-1:50")
    metrics.adapter_finished("juni", "run-1:50")
    assert metrics.running_adapters() == []


def test_each_app_has_its_own_registry() -> None:
    first, second = ServerMetrics(1, lambda: None), ServerMetrics(1, lambda: None)
    first.prompt_tokens.labels("pip").inc(5)
    assert 'persona_prompt_tokens_total{model="pip"} 5.0' in first.render().decode()
    assert 'model="pip"' not in second.render().decode()
