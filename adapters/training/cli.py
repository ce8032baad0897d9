"""`persona train PERSONA`: train an adapter from the card's `[training]` settings.

With `--json`, stdout carries only JSON events, one per line; logs and warnings go to stderr.
SIGINT or SIGTERM ends the run after the current step with a checkpoint (exit 130 or 0);
`--resume run-N` continues a stopped or killed run exactly where its last checkpoint left it.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

import msgspec

from data.card import Training

SKIP = frozenset({"epochs"})
"""Training fields whose flag is declared by hand."""


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `train` arguments: run control, then one override flag per `[training]` key."""
    parser.add_argument("persona", help="persona name, or a folder holding persona.toml")
    parser.add_argument("--epochs", type=int, help="full passes over the training rows")
    parser.add_argument("--iters", type=int, help="train exactly this many steps (not epochs)")
    parser.add_argument("--resume", metavar="RUN", help="continue a run (e.g. run-3)")
    parser.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    parser.add_argument("--model", help="base model: embedded, a folder or a hub repo id")
    parser.add_argument(
        "--from",
        dest="init_from",
        metavar="MODEL_ID",
        help="start from a checkpoint (juni@run-1:best); DPO's reference model",
    )
    parser.add_argument("--adapters", type=Path, help="adapter registry folder")
    parser.add_argument(
        "--personas", type=Path, action="append", default=[], help="extra personas folder"
    )
    group = parser.add_argument_group("overrides of the card's [training] settings")
    for field in msgspec.structs.fields(Training):
        if field.name in SKIP:
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif field.type in (int, float, str):
            group.add_argument(flag, type=field.type, metavar=field.name.upper())
        else:
            group.add_argument(flag, type=_keys, metavar="KEY,KEY", help="module names to adapt")


def _keys(text: str) -> list[str]:
    return [k.strip() for k in text.split(",") if k.strip()]


def overrides_of(args: argparse.Namespace) -> dict[str, object]:
    """The `[training]` keys given on the command line."""
    names = [f.name for f in msgspec.structs.fields(Training)]
    return {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}


class StopSignal:
    """First SIGINT/SIGTERM asks the loop to stop after its step; a second one interrupts."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def install(self) -> None:
        """Take over SIGINT and SIGTERM."""
        signal.signal(signal.SIGINT, self._handle)
        signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.signum = signum
        self.event.set()
        print("stopping after this step (again to interrupt)", file=sys.stderr, flush=True)

    @property
    def exit_code(self) -> int:
        """130 after SIGINT (as a shell expects), 0 after SIGTERM."""
        return 130 if self.signum == signal.SIGINT else 0


def run(args: argparse.Namespace) -> int:
    """Run `persona train`."""
    from adapters.blas import ensure_fast_blas, warn_if_slow

    warn_if_slow(ensure_fast_blas())
    from .events import Error, json_lines, progress_lines
    from .session import start_session

    emit = json_lines() if args.json else progress_lines()
    stop = StopSignal()
    stop.install()
    trainer: Any = None
    try:
        session = start_session(args, overrides_of(args), stop.event, emit)
        if session is None:
            return stop.exit_code
        trainer = session
        outcome = session.train()
    except KeyboardInterrupt:
        if trainer is not None:
            trainer.fail("interrupted")
        emit(Error(message="interrupted"))
        return 130
    except Exception as exc:
        from .session import EXPECTED

        if not isinstance(exc, EXPECTED):
            import traceback

            traceback.print_exc(file=sys.stderr)
        message = str(exc) or type(exc).__name__
        if trainer is not None:
            trainer.fail(message)
        emit(Error(message=message))
        return 1
    finally:
        if trainer is not None and trainer.lock is not None:
            trainer.lock.close()  # releases the run folder for the next trainer in this process
    return stop.exit_code if outcome.reason == "stopped" else 0
