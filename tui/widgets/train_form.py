"""The hyperparameters of the next training run, prefilled from the persona's card."""

from __future__ import annotations

from typing import Any

import msgspec
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label

from ..wire import Training
from .sampling_form import show_number


class TrainOverrides(msgspec.Struct, frozen=True, omit_defaults=True):
    """Hyperparameters of one run; `None` keeps the card's value."""

    epochs: int | None = None
    learning_rate: float | None = None
    rank: int | None = None
    scale: float | None = None
    layers: int | None = None
    batch_size: int | None = None
    max_seq_length: int | None = None
    val_every: int | None = None
    checkpoint_every: int | None = None


def card_values(training: Training) -> TrainOverrides:
    """The card's `[training]` (as the server reports it) as a full set of form values."""
    names = TrainOverrides.__struct_fields__
    return TrainOverrides(**{n: getattr(training, n) for n in names})


def job_body(values: TrainOverrides, card: TrainOverrides) -> dict[str, Any]:
    """The fine-tuning job fields for the values that differ from the card.

    Epochs and batch size travel as OpenAI's hyperparameters, the learning rate as OpenAI's
    multiplier of the card's, the LoRA settings as extra fields.
    """
    diff = {
        name: value
        for name, value in msgspec.structs.asdict(values).items()
        if value is not None and value != getattr(card, name)
    }
    hyper: dict[str, Any] = {}
    if "epochs" in diff:
        hyper["n_epochs"] = diff.pop("epochs")
    if "batch_size" in diff:
        hyper["batch_size"] = diff.pop("batch_size")
    if "learning_rate" in diff and card.learning_rate:
        hyper["learning_rate_multiplier"] = diff.pop("learning_rate") / card.learning_rate
    body: dict[str, Any] = dict(diff)
    if hyper:
        body["method"] = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
    return body


FIELDS: tuple[tuple[str, str, str], ...] = (
    ("epochs", "epochs", "integer"),
    ("learning_rate", "learning rate", "number"),
    ("rank", "LoRA rank", "integer"),
    ("scale", "LoRA scale", "number"),
    ("layers", "layers", "integer"),
    ("batch_size", "batch size", "integer"),
    ("max_seq_length", "max seq length", "integer"),
    ("val_every", "val every", "integer"),
    ("checkpoint_every", "checkpoint every", "integer"),
)
"""(field, label, input type) of each editable hyperparameter."""


def parse_values(texts: dict[str, str]) -> tuple[TrainOverrides, list[str]]:
    """Values typed in the form, and a problem per field that is not a valid number."""
    values: dict[str, Any] = {}
    problems = []
    for name, label, kind in FIELDS:
        text = texts.get(name, "").strip()
        if not text:
            continue
        try:
            value = int(text) if kind == "integer" else float(text)
        except ValueError:
            problems.append(f"{label}: {text!r} is not a number")
            continue
        if value <= 0 and name != "layers":
            problems.append(f"{label}: must be greater than 0")
            continue
        values[name] = value
    return msgspec.convert(values, TrainOverrides), problems


class TrainForm(Vertical):
    """One input per hyperparameter; blank keeps the card's value."""

    def compose(self) -> ComposeResult:
        """A label and an input per field."""
        yield Label("Hyperparameters (from the card; edit freely)", classes="section-title")
        with Grid(classes="form-grid"):
            for name, label, kind in FIELDS:
                yield Label(label)
                yield Input(id=f"train-{name}", type=kind, compact=True)

    def _input(self, name: str) -> Input:
        return self.query_one(f"#train-{name}", Input)

    def fill(self, values: TrainOverrides) -> None:
        """Show a full set of values."""
        for name, _, _ in FIELDS:
            value = getattr(values, name)
            self._input(name).value = "" if value is None else show_number(value)

    def read(self) -> tuple[TrainOverrides, list[str]]:
        """The values as typed, and any problems with them."""
        return parse_values({name: self._input(name).value for name, _, _ in FIELDS})
