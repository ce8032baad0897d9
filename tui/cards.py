"""Read a persona's card from disk for the training defaults the Train screen starts from.

Training runs on this machine (as a `persona train` child process), so its defaults come from the
same persona folders the trainer reads; the server's API carries only sampling defaults.
"""

from __future__ import annotations

from .training import TrainOverrides


class CardMissingError(Exception):
    """No readable card for the persona on this machine."""


def local_personas() -> list[str]:
    """Names of the personas this machine can train, in discovery order."""
    from data.personas import discover

    entries, _problems = discover()
    return [e.name for e in entries]


def training_defaults(persona: str) -> TrainOverrides:
    """The card's training settings as a full set of values."""
    # Imported here: discovery reads files, and the TUI loads it only when a screen asks.
    from data.personas import discover

    entries, problems = discover()
    entry = next((e for e in entries if e.name == persona), None)
    if entry is None:
        detail = "; ".join(str(p) for p in problems) or "it is not in any personas folder"
        raise CardMissingError(f"no card for {persona!r} on this machine ({detail})")
    t = entry.card.training
    return TrainOverrides(
        epochs=t.epochs,
        learning_rate=t.learning_rate,
        rank=t.rank,
        scale=t.scale,
        layers=t.layers,
        batch_size=t.batch_size,
        max_seq_length=t.max_seq_length,
        val_every=t.val_every,
        checkpoint_every=t.checkpoint_every,
    )


def changed(values: TrainOverrides, defaults: TrainOverrides) -> TrainOverrides:
    """Only the values that differ from the card (the rest stay `None`)."""
    import msgspec

    diff = {
        name: value
        for name, value in msgspec.structs.asdict(values).items()
        if value is not None and value != getattr(defaults, name)
    }
    return TrainOverrides(**diff)
