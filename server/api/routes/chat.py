"""`POST /v1/chat/completions`: a persona or the base model answers a conversation."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post
from litestar.params import JSONBody

from server.api.chat_plan import ChatPlan
from server.api.pipeline import Generation
from server.api.scoring import score_final_message, wants_score
from server.api.unsupported import check_chat
from server.errors import ModelNotFoundError, error_responses
from server.state import ServerState
from server.wire.openai import ChatCompletionRequest


@post(
    "/v1/chat/completions",
    status_code=200,
    summary="Create a chat completion",
    responses=error_responses(400, 404, 503),
    tags=["openai"],
)
async def chat_completions(
    data: JSONBody[ChatCompletionRequest], request: Request[Any, Any, Any], state: ServerState
) -> Response[Any]:
    """Answer a conversation as a persona (or as the base model), whole or streamed."""
    check_chat(data)
    gen = Generation.start(state, data.model)
    if wants_score(data):
        return Response(await score_final_message(data, state, gen.resolved))
    if gen.resolved.persona is None and state.settings.web == "locked":
        # A locked server's chat pages talk to personas only; the bare base model stays out.
        raise ModelNotFoundError(
            f"The model '{data.model}' is not served here: this server serves personas only.",
            param="model",
        )
    return await gen.respond(ChatPlan.read(data, gen), request.receive)
