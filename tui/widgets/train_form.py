"""The method, starting point and hyperparameters of the next run, prefilled from the card."""

from __future__ import annotations

from typing import Any

import msgspec
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.widgets import Input, Label, Select

from server.hotswap.types import PersonaAdapters

from ..wire import Training
from .sampling_form import show_number

METHODS: tuple[tuple[str, str], ...] = (
    ("SFT: learn the chat replies", "sft"),
    ("DPO: pairs, from a checkpoint", "dpo"),
    ("ORPO: pairs, from any start", "orpo"),
)
"""(label, card `method`) of each training method the server's jobs take."""


class TrainOverrides(msgspec.Struct, frozen=True, omit_defaults=True):
    """Hyperparameters of one run; `None` keeps the card's value."""

    epochs: int | None = None
    iters: int | None = None
    """A fixed number of steps instead of epochs (no card key: the run's own choice)."""
    learning_rate: float | None = None
    rank: int | None = None
    scale: float | None = None
    layers: int | None = None
    batch_size: int | None = None
    max_seq_length: int | None = None
    val_every: int | None = None
    checkpoint_every: int | None = None
    method: str | None = None
    """`sft`, `dpo` or `orpo`, the card's `[training]` spelling."""
    beta: float | None = None
    """DPO's beta, ORPO's lambda."""


def card_values(training: Training) -> TrainOverrides:
    """The card's `[training]` (as the server reports it) as a full set of form values."""
    names = TrainOverrides.__struct_fields__
    return TrainOverrides(**{n: getattr(training, n, None) for n in names})


def job_body(values: TrainOverrides, card: TrainOverrides) -> dict[str, Any]:
    """The fine-tuning job fields for the values that differ from the card.

    Epochs and batch size travel as OpenAI's hyperparameters, the learning rate as OpenAI's
    multiplier of the card's, `beta` as OpenAI's DPO hyperparameter (ORPO's too), all under
    `method`; the LoRA settings as extra fields. A preference method is always named, since a
    job without `method` is supervised.
    """
    diff = {
        name: value
        for name, value in msgspec.structs.asdict(values).items()
        if value is not None and value != getattr(card, name)
    }
    method = values.method or card.method or "sft"
    diff.pop("method", None)
    beta = diff.pop("beta", None)
    hyper: dict[str, Any] = {}
    if "epochs" in diff:
        hyper["n_epochs"] = diff.pop("epochs")
    if "batch_size" in diff:
        hyper["batch_size"] = diff.pop("batch_size")
    if "learning_rate" in diff and card.learning_rate:
        hyper["learning_rate_multiplier"] = diff.pop("learning_rate") / card.learning_rate
    body: dict[str, Any] = dict(diff)
    if method == "sft":
        if hyper:
            body["method"] = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
        return body
    if beta is not None:
        hyper["beta"] = beta
    body["method"] = {"type": method} | ({method: {"hyperparameters": hyper}} if hyper else {})
    return body


def start_options(persona: str, adapters: list[PersonaAdapters]) -> list[tuple[str, str]]:
    """(label, model id) of each checkpoint a run of `persona` may start from, newest run
    first: its best, then every step, newest first."""
    found = next((a for a in adapters if a.persona == persona), None)
    options: list[tuple[str, str]] = []
    for run in reversed(found.runs if found else []):
        if run.best is not None:
            options.append((f"{run.run}:best (step {run.best})", f"{persona}@{run.run}:best"))
        for ckpt in reversed(run.checkpoints):
            options.append((ckpt.version, f"{persona}@{ckpt.version}"))
    return options


FIELDS: tuple[tuple[str, str, str], ...] = (
    ("epochs", "epochs", "integer"),
    ("iters", "iterations", "integer"),
    ("learning_rate", "learning rate", "number"),
    ("rank", "LoRA rank", "integer"),
    ("scale", "LoRA scale", "number"),
    ("layers", "layers", "integer"),
    ("batch_size", "batch size", "integer"),
    ("max_seq_length", "max seq length", "integer"),
    ("val_every", "val every", "integer"),
    ("checkpoint_every", "checkpoint every", "integer"),
    ("beta", "beta (DPO/ORPO)", "number"),
)
"""(field, label, input type) of each editable hyperparameter."""
PLACEHOLDERS = {
    "iters": "all epochs",
    "val_every": "auto",
    "checkpoint_every": "auto",
}
"""What a blank input means where the card may leave a value unset."""


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
    """The method, the checkpoint to start from, and one input per hyperparameter; a blank
    input keeps the card's value."""

    def __init__(self) -> None:
        super().__init__()
        self.starts: list[tuple[str, str]] = []
        """(label, model id) of the checkpoints offered to start from."""

    def compose(self) -> ComposeResult:
        """The method and start pickers, then a label and an input per field."""
        yield Label("Method", classes="section-title")
        yield Select[str](METHODS, id="train-method", allow_blank=False, value="sft")
        yield Label("Start from", classes="section-title")
        yield Select[str]([], id="train-from", prompt="the base model")
        yield Label("Hyperparameters (from the card; edit freely)", classes="section-title")
        with Grid(classes="form-grid"):
            for name, label, kind in FIELDS:
                yield Label(label)
                hint = PLACEHOLDERS.get(name, "")
                yield Input(id=f"train-{name}", type=kind, compact=True, placeholder=hint)

    @property
    def method_select(self) -> Select[str]:
        """SFT, DPO or ORPO."""
        return self.query_one("#train-method", Select)

    @property
    def start_select(self) -> Select[str]:
        """The checkpoint the run starts from; blank starts from the base model."""
        return self.query_one("#train-from", Select)

    @property
    def start(self) -> str | None:
        """The chosen checkpoint's model id, or None for the base model."""
        value = self.start_select.value
        return value if isinstance(value, str) else None

    def _input(self, name: str) -> Input:
        return self.query_one(f"#train-{name}", Input)

    def fill(self, values: TrainOverrides) -> None:
        """Show a full set of values."""
        for name, _, _ in FIELDS:
            value = getattr(values, name)
            self._input(name).value = "" if value is None else show_number(value)
        self.method_select.value = values.method or "sft"

    def set_starts(self, options: list[tuple[str, str]]) -> None:
        """Offer these checkpoints to start from, keeping the choice when it is still there."""
        chosen = self.start
        self.starts = list(options)
        self.start_select.set_options(options)
        if chosen in {value for _, value in options}:
            self.start_select.value = chosen

    def read(self) -> tuple[TrainOverrides, list[str]]:
        """The values as typed, and any problems with them."""
        values, problems = parse_values({name: self._input(name).value for name, _, _ in FIELDS})
        method = self.method_select.value
        if isinstance(method, str):
            values = msgspec.structs.replace(values, method=method)
        return values, problems
