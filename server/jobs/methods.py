"""Training methods: how a job's `method` becomes the trainer's settings.

Each method is one function in `METHODS`, from the request and the card's `[training]` to a
`Plan`: the `[training]` overrides and any extra trainer flags. A new method (`dpo`, say) is one
more function and one more entry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from adapters.training.config import ConfigError, apply_overrides
from data.card import Training

from .types import LORA_FIELDS, CreateJobRequest, Hyperparameters


class MethodError(ValueError):
    """A method or hyperparameter the server cannot train with; `param` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class Plan:
    """What the trainer is told for one job."""

    overrides: dict[str, object]
    """`[training]` keys that differ from the card."""
    hyperparameters: Hyperparameters
    """The values the job reports (resolved: never `auto`)."""
    flags: list[str] = field(default_factory=list)
    """Extra trainer flags a method needs beyond `[training]` overrides."""


def supervised(request: CreateJobRequest, card: Training) -> Plan:
    """Supervised fine-tuning on chat records (the trainer's own loss over assistant turns)."""
    given = request.hyperparameters
    if request.method is not None and request.method.supervised is not None:
        if request.hyperparameters is not None:
            raise MethodError(
                "give hyperparameters either in method.supervised or at the top level, not both",
                "hyperparameters",
            )
        given = request.method.supervised.hyperparameters
    given = given or Hyperparameters()
    overrides: dict[str, object] = {}
    if isinstance(given.n_epochs, int):
        overrides["epochs"] = given.n_epochs
    if isinstance(given.batch_size, int):
        overrides["batch_size"] = given.batch_size
    multiplier = given.learning_rate_multiplier
    if isinstance(multiplier, int | float) and not isinstance(multiplier, bool):
        if multiplier <= 0:
            raise MethodError(
                "learning_rate_multiplier must be > 0", "hyperparameters.learning_rate_multiplier"
            )
        overrides["learning_rate"] = card.learning_rate * float(multiplier)
    return Plan(overrides, given)


METHODS: dict[str, Callable[[CreateJobRequest, Training], Plan]] = {"supervised": supervised}
"""Every `method.type` this server trains."""


def plan_job(request: CreateJobRequest, card: Training) -> tuple[Plan, Training]:
    """The plan for a job and the resolved training settings; MethodError for anything wrong."""
    kind = request.method.type if request.method is not None else "supervised"
    method = METHODS.get(kind)
    if method is None:
        served = ", ".join(sorted(METHODS))
        raise MethodError(f"method.type {kind!r} is not served here (served: {served})", "method")
    plan = method(request, card)
    overrides = dict(plan.overrides)
    for name in LORA_FIELDS:
        value = getattr(request, name)
        if value is not None:
            overrides[name] = value
    if request.seed is not None:
        overrides["seed"] = request.seed
    try:
        training = apply_overrides(card, overrides)
    except ConfigError as exc:
        raise MethodError(str(exc)) from None
    resolved = Hyperparameters(
        n_epochs=training.epochs,
        batch_size=training.batch_size,
        learning_rate_multiplier=training.learning_rate / card.learning_rate,
    )
    return Plan(overrides, resolved, plan.flags), training


def trainer_flags(overrides: dict[str, object]) -> list[str]:
    """`--rank 4 --learning-rate 2e-4 --no-grad-checkpoint ...` for `persona train`."""
    flags: list[str] = []
    for name, value in sorted(overrides.items()):
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, list):
            flags += [flag, ",".join(str(v) for v in value)]
        else:
            flags += [flag, repr(value) if isinstance(value, float) else str(value)]
    return flags
