"""Which model a request names, and the sampling defaults it runs with.

`resolve` turns a request's `model` into the model it names (the base model, a persona, a pinned
version or a loaded LoRA) and the adapter it runs on; `merged` layers request fields over the
persona card over the base model over the server. The state holds what these read; they decide.
"""

from __future__ import annotations

from dataclasses import dataclass

from adapters.registry import ModelRef, RegistryError
from data.card import Sampling
from data.personas import PersonaEntry
from data.problem import quote
from server.catalog import RequestedModel, card_layer, merge, server_defaults
from server.engine.types import AdapterRef
from server.errors import ModelNotFoundError
from server.runner import AdapterUnavailableError
from server.state import ServerState
from server.wire.openai import ResolvedSampling


@dataclass(frozen=True)
class Resolved:
    """The model a request names, with the adapter it runs on."""

    requested: RequestedModel
    adapter: AdapterRef | None

    @property
    def persona(self) -> PersonaEntry | None:
        """The persona named, if any."""
        return self.requested.persona

    @property
    def label(self) -> str:
        """The name metrics count this request under."""
        return self.persona.name if self.persona else self.requested.model


def resolve(state: ServerState, model: str) -> Resolved:
    """The model and adapter a request's `model` names; 404 for anything not served here."""
    if model in state.lora_names() and state.catalog.get(model) is None:
        requested = RequestedModel(model, None, ModelRef(model))
    else:
        requested = state.catalog.requested_model(model, state.base_ids())
    if requested.ref is None:
        return Resolved(requested, None)
    if state.adapters is None:
        if requested.ref.run is not None:
            raise ModelNotFoundError(
                f"The model {quote(model)} does not exist: no adapters are served.",
                param="model",
            )
        return Resolved(requested, None)
    try:
        return Resolved(requested, state.adapters.resolve(requested.ref))
    except RegistryError as exc:
        if hasattr(exc, "reason"):
            raise AdapterUnavailableError(str(exc), param="model") from None
        raise ModelNotFoundError(
            f"The model {quote(model)} does not exist: {exc}", param="model"
        ) from None


def defaults(state: ServerState, persona: PersonaEntry | None) -> ResolvedSampling:
    """A persona's (or the base model's) resolved defaults, before any request field."""
    return merged(state, Sampling(), persona)


def merged(state: ServerState, request: Sampling, persona: PersonaEntry | None) -> ResolvedSampling:
    """Request fields over the persona card over the base model over the server."""
    layers = [request, card_layer(persona.card if persona else None), state.base_layer]
    return merge(layers, server_defaults(state.settings.max_tokens))
