"""`POST /v1/personas/{id}/evals/suite`: a first eval suite from the persona's tagged records,
held out from training (`data.heldout`)."""

from __future__ import annotations

import msgspec
from litestar import post
from litestar.handlers import HTTPRouteHandler
from litestar.params import FromPath, JSONBody

from data.heldout import HoldOutError, hold_out_suite
from server.api.routes.records import persona_entry, writable
from server.errors import AppError, ConflictError, InvalidRequestError, error_responses
from server.state import ServerState
from server.wire.records import SuiteBuild, SuiteBuilt


def _refused(exc: HoldOutError) -> AppError:
    if exc.kind == "exists":
        return ConflictError(str(exc), code="suite_exists")
    if exc.kind == "invalid" and str(exc).startswith("share"):
        return InvalidRequestError(str(exc), param="share", code="invalid_value")
    return InvalidRequestError(str(exc), code="invalid_dataset")


@post(
    "/v1/personas/{persona_id:str}/evals/suite",
    summary="Hold out an eval suite",
    tags=["evals"],
    status_code=201,
    sync_to_thread=True,
    responses=error_responses(400, 404, 409),
)
def build_suite(
    persona_id: FromPath[str], data: JSONBody[SuiteBuild], state: ServerState
) -> SuiteBuilt:
    """Write `eval.jsonl` from a share of the tagged records, which leave the training file."""
    entry = persona_entry(state, persona_id)
    folder = writable(entry)
    try:
        built = hold_out_suite(folder, entry.card, data.share, data.seed)
    except HoldOutError as exc:
        raise _refused(exc) from None
    return msgspec.convert(msgspec.to_builtins(built), SuiteBuilt)


def suite_routes() -> list[HTTPRouteHandler]:
    """The suite-building route, for the app factory."""
    return [build_suite]
