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
CHOICES = {
    "method": ("sft", "dpo", "orpo", "guard"),
    "fine_tune_type": ("lora", "dora", "full"),
    "lr_schedule": ("constant", "linear", "cosine"),
}
"""The values a `[training]` key takes, listed in `--help` and checked by argparse."""
FIELD_HELP = {
    "beta": "preference strength (DPO beta, ORPO lambda), in (0, 100]",
    "rpo_alpha": "DPO only: weight of the preferred reply's NLL (RPO), in [0, 100]",
    "layers": "last transformer blocks to adapt (-1 for all)",
    "learning_rate": "in (0, 1]",
    "val_fraction": "share of rows held out for validation, in [0, 1)",
    "warmup": "warmup steps (default: 10%% of the run, at most 10)",
    "val_every": "steps between validations (default: about 4 per epoch)",
    "checkpoint_every": "steps between checkpoints (default: about 2 per epoch)",
    "patience": "stop after this many validations without improvement (0 = never)",
    "seed": "in [0, 2**64)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `train` arguments: run control, then one override flag per `[training]` key."""
    parser.add_argument("persona", help="persona name, or a folder holding persona.toml")
    parser.add_argument("--epochs", type=int, help="full passes over the training rows")
    parser.add_argument("--iters", type=int, help="train exactly this many steps (not epochs)")
    parser.add_argument("--resume", metavar="RUN", help="continue a run (e.g. run-3)")
    parser.add_argument(
        "--label", help="name the run run-N-LABEL (a fine-tuning job's suffix does this)"
    )
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
        "--personas",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="extra folder of personas, searched after your own (repeatable)",
    )
    group = parser.add_argument_group("overrides of the card's [training] settings")
    for field in msgspec.structs.fields(Training):
        if field.name in SKIP:
            continue
        flag = "--" + field.name.replace("_", "-")
        if field.type is bool:
            group.add_argument(flag, action=argparse.BooleanOptionalAction, default=None)
        elif field.name in CHOICES:
            group.add_argument(flag, choices=CHOICES[field.name], help=FIELD_HELP.get(field.name))
        elif field.type in (int, float, str, int | None):
            kind = int if field.type == int | None else field.type
            group.add_argument(
                flag, type=kind, metavar=field.name.upper(), help=FIELD_HELP.get(field.name)
            )
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
    from adapters.private_tmp import use_private_tmp

    use_private_tmp()
    warn_if_slow(ensure_fast_blas())
    from .events import Error, json_lines, progress_lines
    from .session import start_session

    emit = json_lines() if args.json else progress_lines()
    if getattr(args, "method", None) == "guard":
        return _train_guard(args, emit)
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


GUARD_FLAGS = frozenset({"method", "seed"})
"""`[training]` flags that `--method guard` takes; the others tune an adapter."""


def _train_guard(args: argparse.Namespace, emit: Any) -> int:
    """`--method guard`: train the persona's guard and publish it beside its runs."""
    import os

    if "numpy" not in sys.modules:
        # The probe's many small NumPy fits lose more to thread hand-offs than they gain.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from adapters.guard.train import GuardTrainError, persona_data, train_guard
    from adapters.registry import Registry
    from data.home import adapters_dir

    from .events import Error
    from .model import load_base

    unused = sorted(set(overrides_of(args)) - GUARD_FLAGS)
    unused += [n for n in ("epochs", "iters", "resume", "init_from") if getattr(args, n)]
    if unused:
        names = ", ".join("--from" if n == "init_from" else "--" + n.replace("_", "-")
                          for n in unused)  # fmt: skip
        emit(Error(message=f"--method guard trains a probe, not an adapter: drop {names}"))
        return 2
    try:
        data = persona_data(args.persona, tuple(args.personas))
        base = load_base(args.model or data.base_model)
        folder = Registry(args.adapters or adapters_dir()).persona_dir(data.persona)
        manifest = train_guard(data, base, folder, emit, seed=args.seed or 0, log=_stderr)
    except (GuardTrainError, ValueError) as exc:
        emit(Error(message=str(exc)))
        return 1
    _stderr(
        f"guard for {manifest.persona}: block {manifest.layer} ({manifest.pooling}), threshold "
        f"{manifest.threshold:.3f}, cross-validated recall "
        f"{manifest.metrics['cv_recall_at_3pct']:.3f} at 3% false flags"
    )
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
