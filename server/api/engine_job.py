"""Turn a checked request into an engine job: defaults merged, context fitted, parameters built."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from server.api.models import Resolved, merged
from server.api.params import Extras, check_stop, fit_context
from server.catalog import request_layer
from server.engine.types import GenerationRequest, JsonGrammar, SamplingParams
from server.errors import InvalidRequestError
from server.runner import Job
from server.state import ServerState
from server.wire.openai import SamplingFields, is_set

if TYPE_CHECKING:
    from server.engine.engine import Engine

SEED_MASK = 2**64 - 1
RANDOM_SEED = -1
"""llama.cpp's and SillyTavern's "no seed": a request with `seed: -1` is sampled unseeded."""


def plan_engine_job(
    state: ServerState,
    engine: Engine,
    resolved: Resolved,
    prompt: tuple[int, ...],
    request: SamplingFields,
    *,
    max_tokens: int | None,
    extras: Extras,
    grammar: JsonGrammar | None = None,
) -> Job:
    """Merge defaults field by field and build the generation request for one job."""
    sampling = merged(state, request_layer(request, max_tokens), resolved.persona)
    budget = fit_context(
        len(prompt),
        sampling.max_tokens,
        explicit=max_tokens is not None,
        context_length=engine.context_length,
    )
    min_tokens = sampling.min_tokens
    if min_tokens > budget:
        if is_set(request.min_tokens):
            raise InvalidRequestError(
                f"min_tokens ({min_tokens}) exceeds the completion budget ({budget})",
                param="min_tokens",
            )
        min_tokens = budget
    params = SamplingParams(
        max_tokens=budget,
        temperature=sampling.temperature,
        top_p=sampling.top_p,
        top_k=max(sampling.top_k, 0),
        min_p=sampling.min_p,
        repetition_penalty=sampling.repetition_penalty,
        repetition_context_size=sampling.repetition_context_size,
        presence_penalty=sampling.presence_penalty,
        frequency_penalty=sampling.frequency_penalty,
        min_tokens=min_tokens,
        stop=check_stop(sampling.stop),
        seed=None if sampling.seed in (None, RANDOM_SEED) else sampling.seed & SEED_MASK,
        logit_bias=extras.logit_bias,
        logprobs=extras.logprobs,
        top_logprobs=extras.top_logprobs,
    )
    generation = GenerationRequest(
        prompt=prompt, params=params, adapter=resolved.adapter, grammar=grammar
    )
    persona = resolved.persona.name if resolved.persona else None
    return Job(generation, resolved.label, persona)


def fan_out(job: Job, n: int) -> list[Job]:
    """`n` copies of a job for `n` choices; a seeded job's copies take seeds seed, seed+1, ..."""
    params = job.request.params
    jobs = []
    for index in range(n):
        seed = None if params.seed is None else (params.seed + index) & SEED_MASK
        request = replace(job.request, params=replace(params, seed=seed))
        jobs.append(replace(job, request=request))
    return jobs
