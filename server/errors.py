"""One error base for the server and the one handler that renders every error in OpenAI's envelope.

OpenAI clients retry 408, 409, 429 and every 5xx, so bad input must never come back as a 5xx:
everything the client can fix is an `AppError` with a 4xx status.
"""

from __future__ import annotations

import logging
import re
from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import ResponseSpec

from data.problem import clip
from server.envelope import ErrorDetail, ErrorEnvelope

log = logging.getLogger("persona.server")

MAX_MESSAGE_CHARS = 16_000
"""No error message is longer: messages quote what the client sent, which may be huge."""


_DESCRIPTIONS = {
    400: "Bad request: a value is invalid or a field cannot be honoured",
    401: "Missing or wrong API key",
    404: "Unknown model or resource",
    413: "Request body too large",
    503: "The model is still loading; retry after the Retry-After delay",
}


def error_responses(*statuses: int) -> dict[int, ResponseSpec]:
    """OpenAPI response entries for these error statuses, all in OpenAI's envelope."""
    return {
        s: ResponseSpec(
            ErrorEnvelope, description=_DESCRIPTIONS.get(s, "Error"), generate_examples=False
        )
        for s in statuses
    }


class AppError(Exception):
    """An error the server reports to the client, with its HTTP status."""

    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request_error"
    default_code: ClassVar[str | None] = None

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if len(message) > MAX_MESSAGE_CHARS:
            message = clip(message, MAX_MESSAGE_CHARS)  # the client's own text, echoed back
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = headers or {}

    def envelope(self) -> ErrorEnvelope:
        """This error in OpenAI's envelope."""
        return ErrorEnvelope(ErrorDetail(self.message, self.type, self.param, self.code))


class InvalidRequestError(AppError):
    """The request is malformed or a value is out of range."""


class UnsupportedError(AppError):
    """A known field the server cannot honour; refused rather than silently ignored."""

    default_code = "unsupported_parameter"


class ModelNotFoundError(AppError):
    """The `model` names nothing this server serves."""

    status = 404
    default_code = "model_not_found"


class ContextLengthError(AppError):
    """The prompt (plus the requested completion) does not fit the model's context."""

    default_code = "context_length_exceeded"


class AuthError(AppError):
    """A missing or wrong API key."""

    status = 401
    default_code = "invalid_api_key"


class ModelLoadingError(AppError):
    """The base model is still loading; the client should retry after a moment."""

    status = 503
    type = "server_error"
    default_code = "model_loading"


class NotFoundError(AppError):
    """A persona or route that does not exist."""

    status = 404
    default_code = "not_found"


class ConflictError(AppError):
    """The request is about something that changed since the client read it."""

    status = 409
    default_code = "conflict"


_HTTP_TYPES = {
    401: "invalid_request_error",
    404: "invalid_request_error",
    413: "invalid_request_error",
}
_MSGSPEC_PATH = re.compile(r" - at `\$\.?(.*)`$")


def _from_http(exc: HTTPException) -> tuple[int, ErrorDetail]:
    status = exc.status_code
    if isinstance(exc, ValidationException):
        message, param = _validation_message(exc)
        return status, ErrorDetail(message, "invalid_request_error", param, "invalid_value")
    kind = "server_error" if status >= 500 else _HTTP_TYPES.get(status, "invalid_request_error")
    code = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}.get(status)
    return status, ErrorDetail(str(exc.detail), kind, None, code)


def _validation_message(exc: ValidationException) -> tuple[str, str | None]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    for item in extra:
        if isinstance(item, dict) and item.get("message"):
            text = str(item["message"])
            match = _MSGSPEC_PATH.search(text)
            param = match.group(1) if match else item.get("key")
            body = _MSGSPEC_PATH.sub("", text)
            return (f"{body} at '{param}'" if param else body), (str(param) if param else None)
    return str(exc.detail), None


def handle_exception(request: Request[Any, Any, Any], exc: Exception) -> Response[ErrorEnvelope]:
    """Render any exception in OpenAI's error envelope with the right status."""
    headers: dict[str, str] = {}
    if isinstance(exc, AppError):
        status, body, headers = exc.status, exc.envelope().error, exc.headers
    elif isinstance(exc, HTTPException):
        status, body = _from_http(exc)
        headers = dict(exc.headers or {})
    else:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        status = 500
        body = ErrorDetail("internal server error", "server_error", None, "internal_error")
    return Response(ErrorEnvelope(body), status_code=status, headers=headers)


InvalidRequest = InvalidRequestError
"""Short name, as route modules import it."""
NotFound = NotFoundError
"""Short name, as route modules import it."""
