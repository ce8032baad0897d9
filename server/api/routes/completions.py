"""`POST /v1/completions`: legacy text completion of raw prompts, no chat template."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody

from server.api.completion_plan import CompletionPlan
from server.api.pipeline import Generation
from server.api.unsupported import check_completion
from server.errors import error_responses
from server.state import ServerState
from server.wire.openai import CompletionRequest


@post(
    "/v1/completions",
    status_code=200,
    summary="Create a text completion",
    responses=error_responses(400, 404, 503),
    tags=["openai"],
)
async def completions(
    data: JSONBody[CompletionRequest], request: Request[Any, Any, Any], state: ServerState
) -> Response[Any]:
    """Continue each prompt with the base model or a persona's adapter (no system prompt).

    Choice `p * n + k` is the k-th of `n` completions of prompt p, as in OpenAI's API.
    """
    check_completion(data)
    gen = Generation.start(state, data.model)
    return await gen.respond(await CompletionPlan.read(data, gen), request.receive)
