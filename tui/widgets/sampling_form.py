"""Per-conversation sampling overrides, with the persona's defaults shown as placeholders."""

from __future__ import annotations

import msgspec
from textual import on
from textual.app import ComposeResult
from textual.containers import Grid, Vertical
from textual.message import Message
from textual.widgets import Input, Label

from ..wire import ResolvedSampling, SamplingOverrides

FIELDS: tuple[tuple[str, str, str], ...] = (
    ("temperature", "temperature", "number"),
    ("top_p", "top_p", "number"),
    ("top_k", "top_k", "integer"),
    ("min_p", "min_p", "number"),
    ("repetition_penalty", "rep. penalty", "number"),
    ("max_tokens", "max_tokens", "integer"),
    ("min_tokens", "min_tokens", "integer"),
    ("seed", "seed", "integer"),
)
"""(field, label, input type) of each overridable setting."""


def parse_overrides(values: dict[str, str]) -> SamplingOverrides:
    """Build overrides from input texts; blank or unparsable fields fall back to the default."""
    parsed: dict[str, float | int] = {}
    for name, _label, kind in FIELDS:
        text = values.get(name, "").strip()
        if not text:
            continue
        try:
            parsed[name] = int(text) if kind == "integer" else float(text)
        except ValueError:
            continue
    return msgspec.convert(parsed, SamplingOverrides)


def show_number(value: float) -> str:
    """A number as short as it can be written, and read back the same."""
    return str(value) if isinstance(value, int) else f"{value:g}"


class SamplingForm(Vertical):
    """A grid of inputs; blank means "use the persona's default" (shown as the placeholder)."""

    class Changed(Message):
        """The overrides were edited."""

        def __init__(self, overrides: SamplingOverrides) -> None:
            super().__init__()
            self.overrides = overrides

    def compose(self) -> ComposeResult:
        """A label and an input per setting."""
        yield Label("Sampling (blank = persona default)", classes="section-title")
        with Grid(classes="form-grid"):
            for name, label, kind in FIELDS:
                yield Label(label)
                yield Input(id=f"sampling-{name}", type=kind, placeholder="default", compact=True)

    def _input(self, name: str) -> Input:
        return self.query_one(f"#sampling-{name}", Input)

    @property
    def overrides(self) -> SamplingOverrides:
        """The current overrides."""
        return parse_overrides({name: self._input(name).value for name, _, _ in FIELDS})

    def show_defaults(self, defaults: ResolvedSampling) -> None:
        """Show each resolved default as its input's placeholder (`seed` may be None: unseeded)."""
        for name, _, _ in FIELDS:
            value = getattr(defaults, name)
            self._input(name).placeholder = "default" if value is None else show_number(value)

    def set_overrides(self, overrides: SamplingOverrides) -> None:
        """Fill the inputs from saved overrides (without announcing a change)."""
        with self.prevent(Input.Changed):
            for name, _, _ in FIELDS:
                value = getattr(overrides, name)
                self._input(name).value = "" if value is None else show_number(value)

    @on(Input.Changed)
    def _edited(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.Changed(self.overrides))
