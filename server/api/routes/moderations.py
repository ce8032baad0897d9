"""`POST /v1/moderations`: a persona's guard, or the shipped general guard, as OpenAI's
moderation endpoint.

`model` names a persona whose card has a `[guard]` (its trained guard answers) or
`persona-guard` (the general guard, trained on the shipped general sets; also the default).
OpenAI's own categories, which these guards do not judge, are always present (clients validate
them) and reported false with score 0, except `self-harm` and `self-harm/intent`, which carry a
guard's `self_harm` category. A guard's own categories are added under their own names.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from litestar import post
from litestar.params import JSONBody
from msgspec import UNSET, Struct, UnsetType

from data.guard import GENERAL_ID
from server.api.guarded import GuardUnavailableError
from server.engine.engine import Engine
from server.errors import InvalidRequestError, ModelNotFoundError, error_responses
from server.guard import LoadedGuard
from server.state import ServerState

OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
"""Every category OpenAI's moderation result carries (the SDK's types require them)."""
ALIASES = {"self_harm": ("self-harm", "self-harm/intent")}
"""A guard category that also answers for OpenAI's own categories."""
MAX_INPUTS = 32
MAX_CHARS = 20_000


class ModerationRequest(Struct, frozen=True, kw_only=True):
    """OpenAI's moderation request: text or a list of texts."""

    input: Any
    model: str | UnsetType = UNSET


class ModerationResult(Struct, frozen=True):
    """One input's result, in OpenAI's shape."""

    flagged: bool
    categories: dict[str, bool]
    category_scores: dict[str, float]
    category_applied_input_types: dict[str, list[str]]


class ModerationResponse(Struct, frozen=True):
    """`POST /v1/moderations`'s reply; `persona_guard_threshold` is the threshold applied."""

    id: str
    model: str
    results: list[ModerationResult]
    persona_guard_threshold: float


@post(
    "/v1/moderations",
    status_code=200,
    summary="Classify text with a persona's guard",
    responses=error_responses(400, 404, 503),
    tags=["openai"],
)
async def moderations(data: JSONBody[ModerationRequest], state: ServerState) -> ModerationResponse:
    """Score each input with the named guard; one result per input, in order."""
    texts = _texts(data.input)
    engine, _ = state.require_runner()
    model = data.model if isinstance(data.model, str) else GENERAL_ID
    guard, threshold, persona = _guard(state, model, engine)
    started = time.perf_counter()
    scores = await state.guards.score(engine, guard, texts, threshold)
    state.metrics.guard_seconds.observe(time.perf_counter() - started)
    results = []
    for text, score in zip(texts, scores, strict=True):
        state.guards.record(persona, "moderation", score, "flag" if score.flagged else "none", text)
        flags = {c: score.flagged and c == score.category for c in score.scores}
        values = {c: round(p, 6) for c, p in score.scores.items()}
        categories = dict.fromkeys(OPENAI_CATEGORIES, False)
        category_scores = dict.fromkeys(OPENAI_CATEGORIES, 0.0)
        for own, names in ALIASES.items():
            for name in names if own in values else ():
                categories[name], category_scores[name] = flags[own], values[own]
        categories |= flags
        category_scores |= values
        results.append(
            ModerationResult(
                flagged=score.flagged,
                categories=categories,
                category_scores=category_scores,
                category_applied_input_types={c: ["text"] for c in categories},
            )
        )
    used = threshold if threshold is not None else guard.manifest.threshold
    return ModerationResponse(f"modr-{uuid.uuid4().hex}", model, results, used)


def _texts(value: Any) -> list[str]:
    """The inputs as texts; multimodal parts and other shapes are refused by name."""
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        texts = list(value)
    elif isinstance(value, list) and any(isinstance(v, dict) for v in value):
        raise InvalidRequestError(
            "only text input is supported: input must be a string or a list of strings",
            param="input",
        )
    else:
        raise InvalidRequestError(
            "input must be a non-empty string or a non-empty list of strings", param="input"
        )
    if len(texts) > MAX_INPUTS:
        raise InvalidRequestError(
            f"input holds {len(texts)} texts; at most {MAX_INPUTS} per request", param="input"
        )
    for index, text in enumerate(texts):
        if len(text) > MAX_CHARS:
            raise InvalidRequestError(
                f"input[{index}] has {len(text)} characters; at most {MAX_CHARS}", param="input"
            )
    return texts


def _guard(state: ServerState, model: str, engine: Engine) -> tuple[LoadedGuard, float | None, str]:
    """The guard a `model` names, the threshold to apply, and the name it is counted under."""
    if model == GENERAL_ID:
        guard = state.guards.get(GENERAL_ID, engine)
        if guard is None:
            raise GuardUnavailableError(
                f"the general guard is not available: {state.guards.errors.get(model, 'missing')}"
            )
        return guard, None, GENERAL_ID
    persona = state.catalog.get(model)
    if persona is None:
        raise ModelNotFoundError(
            f"The model '{model}' does not exist: name a persona with a [guard] or '{GENERAL_ID}'",
            param="model",
        )
    if persona.card.guard is None:
        raise InvalidRequestError(
            f"persona {model!r} has no [guard] in its card; use '{GENERAL_ID}' or add one",
            param="model",
        )
    guard = state.guards.get(persona.name, engine)
    if guard is None:
        raise GuardUnavailableError(
            f"persona {model!r} has a [guard] but no usable trained guard; run "
            f"`persona train {model} --method guard`"
        )
    return guard, persona.card.guard.threshold, persona.name
