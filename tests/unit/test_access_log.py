"""Health polls stay out of the access log; every other request is logged."""

from __future__ import annotations

import logging

import pytest
import uvicorn

from server.access_log import HealthPollFilter, quiet_health_polls


def access(path: str, status: int) -> logging.LogRecord:
    """An access record as uvicorn makes it."""
    return logging.LogRecord(
        "uvicorn.access", logging.INFO, "h11_impl.py", 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", status), None,
    )  # fmt: skip


@pytest.mark.parametrize(("path", "kept"), [
    ("/health", False), ("/health?x=1", False), ("/v1/models", True), ("/healthz", True),
])  # fmt: skip
def test_filter(path: str, kept: bool) -> None:
    assert HealthPollFilter().filter(access(path, 503)) is kept


def test_the_filter_survives_uvicorns_logging_setup() -> None:
    quiet_health_polls()
    quiet_health_polls()
    uvicorn.Config(app=lambda *_: None, log_level="info")  # configures logging, as run() does
    logger = logging.getLogger("uvicorn.access")
    assert sum(isinstance(f, HealthPollFilter) for f in logger.filters) == 1
    assert not logger.filter(access("/health", 503))
    assert logger.filter(access("/v1/chat/completions", 200))
