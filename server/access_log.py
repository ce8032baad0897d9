"""Keep health polls out of the access log.

The TUI asks `/health` every half second while the model loads (503 until ready) and every few
seconds afterwards; one access line per poll buried everything else in the server log.
"""

from __future__ import annotations

import logging

QUIET_PATHS = frozenset({"/health"})


class HealthPollFilter(logging.Filter):
    """Drops uvicorn access records for `QUIET_PATHS`; every other record passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        """False for an access line of a quiet path (uvicorn's args: client, method, path, ...)."""
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            return args[2].split("?", 1)[0] not in QUIET_PATHS
        return True


def quiet_health_polls() -> None:
    """Install the filter on uvicorn's access logger (idempotent)."""
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, HealthPollFilter) for f in logger.filters):
        logger.addFilter(HealthPollFilter())
