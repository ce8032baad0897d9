"""Test helper: toy persona folders and in-process `persona train` runs on the tiny model."""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from adapters.training import cli
from adapters.training.events import Event
from data.card import Training

if TYPE_CHECKING:
    from adapters.training.loop import Outcome

SYSTEM = "You are Toy, a cheerful robot."

EVERY_FIELD = Training(
    method="dpo",
    beta=0.25,
    rpo_alpha=0.5,
    fine_tune_type="dora",
    rank=16,
    scale=12.5,
    dropout=0.05,
    layers=-1,
    keys=["self_attn.q_proj", "self_attn.v_proj"],
    learning_rate=2.5e-5,
    max_grad_norm=0.5,
    lr_schedule="linear",
    warmup=3,
    epochs=2,
    batch_size=2,
    max_seq_length=256,
    grad_checkpoint=True,
    val_fraction=0.2,
    val_every=5,
    checkpoint_every=7,
    patience=2,
    seed=2**64 - 1,
)
"""Every `[training]` field away from its default (DPO, so rpo_alpha may be set)."""


def write_persona(folder: Path, rows: list[dict], valid: list[dict] | None = None) -> Path:  # type: ignore[type-arg]
    """A persona folder with a card and its data."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "persona.toml").write_text(
        f'name = "toy"\nsystem_prompt = "{SYSTEM}"\n'
        "[training]\nlayers = 4\nrank = 4\nbatch_size = 2\nwarmup = 1\nseed = 3\n"
    )
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    if valid is not None:
        (folder / "valid.jsonl").write_text("".join(json.dumps(r) + "\n" for r in valid))
    return folder


def chat(question: str, answer: str) -> dict:  # type: ignore[type-arg]
    return {"messages": [{"role": "user", "content": question},
                         {"role": "assistant", "content": answer}]}  # fmt: skip


def toy_rows(n: int = 12) -> list[dict]:  # type: ignore[type-arg]
    rows = [
        chat(f"Robot, what is {i} plus {i + 3}?", f"Beep! It is {2 * i + 3}." + " Boop." * (i % 3))
        for i in range(n)
    ]
    rows.append(
        {
            "messages": [
                {"role": "user", "content": "Hello!"},
                {"role": "assistant", "content": "Hello, friend!"},
                {"role": "user", "content": "Who are you?"},
                {"role": "assistant", "content": "I am Toy."},
            ]
        }
    )
    return rows


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.configure(parser)
    return parser.parse_args(argv)


def train(argv: list[str]) -> tuple[list[Event], Outcome]:
    """Run `persona train` in process; return its events and outcome."""
    from adapters.training.session import start_session  # MLX, so only where a run trains

    events: list[Event] = []
    args = parse(argv)
    trainer = start_session(cli.order_of(args), threading.Event(), events.append)
    assert trainer is not None
    try:
        outcome = trainer.train()
    finally:
        if trainer.lock is not None:
            trainer.lock.close()
    return events, outcome


def tiny_lora_model(model_dir: Path, seed: int):  # type: ignore[no-untyped-def]
    """The tiny model with rank-4 LoRA on its last 3 blocks, in training mode; B factors are
    drawn from `seed` (non-zero, so the gradient reaches every factor)."""
    import mlx.core as mx
    from mlx_lm.tuner.utils import linear_to_lora_layers
    from mlx_lm.utils import load_model

    model, _ = load_model(model_dir)
    model.freeze()
    mx.random.seed(seed)
    linear_to_lora_layers(model, 3, {"rank": 4, "scale": 10.0, "dropout": 0.0})
    for _, module in model.named_modules():
        if hasattr(module, "lora_b"):
            module.lora_b = mx.random.normal(module.lora_b.shape) * 0.01
    model.train()
    return model
