"""Training methods: how a job's `method` becomes the trainer's settings.

Each method is one function in `METHODS`, from the request and the card's `[training]` to a
`TrainingPlan`: the `[training]` overrides and the values the job reports. `supervised` is SFT;
`dpo` is OpenAI's DPO (preference pairs, from a starting checkpoint that is also its reference
model); `orpo` is ORPO, which this server takes in DPO's shape under its own key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.training.config import ConfigError, apply_overrides
from data.card import MAX_BETA, Training

from .types import (
    LORA_FIELDS,
    CreateJobRequest,
    GuardMethod,
    Hyperparameters,
    Method,
    PreferenceHyperparameters,
    PreferenceMethod,
    SupervisedMethod,
)


class MethodError(ValueError):
    """A method or hyperparameter the server cannot train with; `param` names the field."""

    def __init__(self, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.param = param


@dataclass(frozen=True)
class TrainingPlan:
    """What the trainer is told for one job."""

    overrides: dict[str, object]
    """`[training]` keys that differ from the card."""
    hyperparameters: Hyperparameters
    """The values the job reports (resolved: never `auto`)."""
    method: Method | None = None
    """The job's `method`, resolved (set by `plan_training`)."""


MAX_LEARNING_RATE = 1.0
"""The largest learning rate a multiplier may give; beyond it Adam's steps diverge at once."""


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _settings_keys(request: CreateJobRequest, kind: str) -> None:
    """Refuse settings given under another method's key (they would be silently unused)."""
    method = request.method
    if method is None:
        return
    for other in ("supervised", "dpo", "orpo", "guard", "reinforcement"):
        if other != kind and getattr(method, other) is not None:
            raise MethodError(
                f"method.type is {kind!r}, so method.{other} is not used; give {kind}'s "
                f"settings in method.{kind}",
                f"method.{other}",
            )


HYPERPARAMETER_NAMES = {
    "epochs": "n_epochs",
    "batch_size": "batch_size",
    "learning_rate": "learning_rate_multiplier",
    "beta": "beta",
}
"""`[training]` keys that a job takes as OpenAI's hyperparameters, under OpenAI's names."""


def _card_names(request: CreateJobRequest, kind: str) -> None:
    """Refuse a hyperparameter sent as an extra field under its `[training]` name."""
    for name, openai in HYPERPARAMETER_NAMES.items():
        if getattr(request, name) is None:
            continue
        if name == "beta" and kind not in PREFERENCE_METHODS:
            raise MethodError("beta applies to method.type dpo or orpo only", name)
        raise MethodError(
            f"{name} is not taken as an extra field: give {openai} in "
            f"method.{kind}.hyperparameters",
            name,
        )


def _shared(
    given: Hyperparameters | PreferenceHyperparameters, card: Training, where: str
) -> dict[str, object]:
    """The overrides of the hyperparameters every method shares."""
    overrides: dict[str, object] = {}
    for name, key in (("n_epochs", "epochs"), ("batch_size", "batch_size")):
        value = getattr(given, name)
        if isinstance(value, int):
            if value < 1:
                raise MethodError(f"{name} must be >= 1", f"{where}.{name}")
            overrides[key] = value
    multiplier = given.learning_rate_multiplier
    if _number(multiplier):
        rate = card.learning_rate * float(multiplier)  # type: ignore[arg-type]
        if not 0 < rate <= MAX_LEARNING_RATE:
            raise MethodError(
                f"learning_rate_multiplier must be > 0 and give a learning rate <= "
                f"{MAX_LEARNING_RATE:g} (the card's is {card.learning_rate:g})",
                f"{where}.learning_rate_multiplier",
            )
        overrides["learning_rate"] = rate
    return overrides


def supervised(request: CreateJobRequest, card: Training) -> TrainingPlan:
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
    overrides = _shared(given, card, "hyperparameters")
    if card.method != "sft":
        overrides["method"] = "sft"  # a job's method is its own, whatever the card trains with
    return TrainingPlan(overrides, given)


def preference(kind: str) -> Callable[[CreateJobRequest, Training], TrainingPlan]:
    """DPO or ORPO on preference pairs: the shared hyperparameters and `beta`."""

    def plan_preference(request: CreateJobRequest, card: Training) -> TrainingPlan:
        if request.hyperparameters is not None:
            raise MethodError(
                f"top-level hyperparameters are supervised's; give {kind}'s in "
                f"method.{kind}.hyperparameters",
                "hyperparameters",
            )
        settings = getattr(request.method, kind, None) if request.method else None
        given = (settings.hyperparameters if settings else None) or PreferenceHyperparameters()
        where = f"method.{kind}.hyperparameters"
        overrides = _shared(given, card, where)
        overrides["method"] = kind
        if _number(given.beta):
            if not 0 < given.beta <= MAX_BETA:  # type: ignore[operator]
                raise MethodError(f"beta must be > 0 and <= {MAX_BETA:g}", f"{where}.beta")
            overrides["beta"] = float(given.beta)  # type: ignore[arg-type]
        reported = Hyperparameters(given.n_epochs, given.batch_size, given.learning_rate_multiplier)
        return TrainingPlan(overrides, reported)

    return plan_preference


def guard(request: CreateJobRequest, card: Training) -> TrainingPlan:
    """The persona's guard: a probe on the base model, trained from the card's `[guard]`
    categories; no adapter, so no LoRA settings or hyperparameters."""
    if request.hyperparameters is not None:
        raise MethodError("method.type guard takes no hyperparameters", "hyperparameters")
    given = [name for name in LORA_FIELDS if getattr(request, name) is not None]
    if given:
        raise MethodError(
            f"method.type guard trains a probe, not an adapter: drop {', '.join(given)}",
            given[0],
        )
    return TrainingPlan({"method": "guard"}, Hyperparameters())


METHODS: dict[str, Callable[[CreateJobRequest, Training], TrainingPlan]] = {
    "supervised": supervised,
    "dpo": preference("dpo"),
    "orpo": preference("orpo"),
    "guard": guard,
}
"""Every `method.type` this server trains."""

PREFERENCE_METHODS = frozenset({"dpo", "orpo"})
"""Methods that train on preference pairs (`preference.jsonl`), not chat records."""


def plan_training(request: CreateJobRequest, card: Training) -> tuple[TrainingPlan, Training]:
    """The plan for a job and the resolved training settings; MethodError for anything wrong."""
    kind = request.method.type if request.method is not None else "supervised"
    method = METHODS.get(kind)
    if method is None:
        served = ", ".join(sorted(METHODS))
        raise MethodError(f"method.type {kind!r} is not served here (served: {served})", "method")
    _settings_keys(request, kind)
    _card_names(request, kind)
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
        key = str(exc).split(" ", 1)[0]  # "rank must be >= 1": the extra field to name
        raise MethodError(str(exc), key if key in overrides else None) from None
    resolved = Hyperparameters(
        n_epochs=training.epochs,
        batch_size=training.batch_size,
        learning_rate_multiplier=training.learning_rate / card.learning_rate,
    )
    return TrainingPlan(overrides, resolved, _method(kind, resolved, training)), training


def _method(kind: str, resolved: Hyperparameters, training: Training) -> Method:
    """The job's `method` with every value resolved, as OpenAI reports it."""
    if kind == "guard":
        return Method(type="guard", guard=GuardMethod())
    if kind not in PREFERENCE_METHODS:
        return Method(type=kind, supervised=SupervisedMethod(resolved))
    hyper = PreferenceHyperparameters(
        beta=training.beta,
        n_epochs=resolved.n_epochs,
        batch_size=resolved.batch_size,
        learning_rate_multiplier=resolved.learning_rate_multiplier,
    )
    return Method(type=kind, **{kind: PreferenceMethod(hyper)})
