"""Prometheus metrics of one server: requests, tokens, latency, streams and adapters in use.

Each app gets its own `CollectorRegistry`, so several apps (tests) never share counters. Names
follow vLLM's where one exists (`lora_requests_info`, `time_to_first_token_seconds`, ...).
"""

from __future__ import annotations

import dataclasses
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Any

from litestar.types import ASGIApp, Message, Receive, Scope, Send
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServerMetrics:
    """Every metric the server exports, in one registry."""

    def __init__(self, max_adapters: int, engine_stats: Callable[[], Any | None]) -> None:
        self.registry = CollectorRegistry()
        """The registry `/metrics` renders."""
        r = self.registry
        self.http_requests = Counter(
            "persona_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.prompt_tokens = Counter(
            "persona_prompt_tokens", "Prompt tokens processed", ["model"], registry=r
        )
        self.generation_tokens = Counter(
            "persona_generation_tokens", "Completion tokens generated", ["model"], registry=r
        )
        self.ttft = Histogram(
            "persona_time_to_first_token_seconds",
            "Time to the first token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.e2e = Histogram(
            "persona_e2e_request_latency_seconds",
            "Time from request to last token",
            ["model"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.finished = Counter(
            "persona_request_success",
            "Finished generations by reason",
            ["finished_reason"],
            registry=r,
        )
        self.active_streams = Gauge(
            "persona_active_streams", "Streaming responses in progress", registry=r
        )
        self.running = Gauge(
            "persona_requests_running", "Generations in progress, streamed or not", registry=r
        )
        self.adapter_requests = Counter(
            "persona_lora_requests",
            "Generation requests by persona and adapter version",
            ["persona", "adapter"],
            registry=r,
        )
        self.guard_checks = Counter(
            "persona_guard_checks",
            "Texts the persona guard scored, by persona and stage (prompt, reply, moderation)",
            ["persona", "stage"],
            registry=r,
        )
        self.guard_flags = Counter(
            "persona_guard_flags",
            "Texts the persona guard flagged, by persona, stage, category and action taken",
            ["persona", "stage", "category", "action"],
            registry=r,
        )
        self.guard_seconds = Histogram(
            "persona_guard_seconds",
            "Time to score the latest user turn before generation",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._running_adapters: Tally[str] = Tally()
        r.register(_LiveCollector(self, max_adapters, engine_stats))

    def adapter_started(self, persona: str, version: str | None) -> None:
        """Count one generation for a persona's adapter version (`base` when none)."""
        self.adapter_requests.labels(persona, version or "base").inc()
        if version is not None:
            self._running_adapters[f"{persona}@{version}"] += 1

    def adapter_finished(self, persona: str, version: str | None) -> None:
        """A generation that used an adapter is over."""
        if version is not None:
            key = f"{persona}@{version}"
            self._running_adapters[key] -= 1
            if self._running_adapters[key] <= 0:
                del self._running_adapters[key]

    def running_adapters(self) -> list[str]:
        """Adapters serving at least one generation right now."""
        return sorted(self._running_adapters)

    def render(self) -> bytes:
        """The Prometheus text exposition of every metric."""
        return generate_latest(self.registry)

    def middleware(self, app: ASGIApp) -> ASGIApp:
        """Wrap an ASGI app so each HTTP request is counted by route template and status."""

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            status = 500

            async def tap(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                await send(message)

            try:
                await app(scope, receive, tap)
            finally:
                route = str(scope.get("path_template") or "unmatched")
                self.http_requests.labels(scope["method"], route, str(status)).inc()

        return counted


class _LiveCollector(Collector):
    """Values read at scrape time: adapters in use (vLLM's `lora_requests_info`), engine stats."""

    def __init__(
        self, metrics: ServerMetrics, max_adapters: int, engine_stats: Callable[[], Any | None]
    ) -> None:
        self._metrics = metrics
        self._max = max_adapters
        self._engine_stats = engine_stats

    def collect(self) -> Iterator[GaugeMetricFamily]:
        info = GaugeMetricFamily(
            "persona_lora_requests_info",
            "Adapters with running requests; the value is the scrape time",
            labels=["max_lora", "running_lora_adapters"],
        )
        info.add_metric([str(self._max), ",".join(self._metrics.running_adapters())], time.time())
        yield info
        stats = self._engine_stats()
        if stats is None or not dataclasses.is_dataclass(stats):
            return
        for field in dataclasses.fields(stats):
            value = getattr(stats, field.name)
            name = f"persona_engine_{field.name}"
            if isinstance(value, int | float) and not isinstance(value, bool):
                yield GaugeMetricFamily(name, f"Engine statistic {field.name}", value=value)
            elif field.name == "batch_sizes":
                steps = GaugeMetricFamily(
                    "persona_engine_batch_steps",
                    "Decode steps run at each batch size",
                    labels=["size"],
                )
                for size, count in value:
                    steps.add_metric([str(size)], count)
                yield steps
