"""`persona train PERSONA`: train an adapter from the card's `[training]` settings.

The flags build a `TrainOrder` (`order.py`), the same typed document that `--config FILE` reads
(a fine-tuning job writes one), and both take the same path from there.
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
from data.guard import GENERAL_ID

from .order import GuardRun, NewRun, ResumeRun, TrainOrder, read_order

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
    "max_grad_norm": "clip each step's gradient to this global L2 norm (0 = no clipping)",
    "val_fraction": "share of rows held out for validation, in [0, 1)",
    "warmup": "warmup steps (default: 10%% of the run, at most 10)",
    "val_every": "steps between validations (default: about 4 per epoch)",
    "checkpoint_every": "steps between checkpoints (default: about 2 per epoch)",
    "patience": "stop after this many validations without improvement (0 = never)",
    "seed": "in [0, 2**64)",
}


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the `train` arguments: run control, then one override flag per `[training]` key."""
    parser.add_argument("persona", nargs="?", help="persona name, or a folder holding persona.toml")
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="run the trainer config in FILE (JSON; - for stdin) instead of flags",
    )
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


RUN_FLAGS = ("epochs", "iters", "resume", "label", "model", "init_from", "adapters", "personas")
"""Flags that describe the run; a `--config` document holds all of them."""


def _flag(name: str) -> str:
    return "--from" if name == "init_from" else "--" + name.replace("_", "-")


def usage_problem(args: argparse.Namespace) -> str | None:
    """Why these flags cannot start a trainer (exit 2), or None."""
    if args.config is not None:
        given = [n for n in RUN_FLAGS if getattr(args, n)] + sorted(overrides_of(args))
        if args.persona is not None:
            given.insert(0, "persona")
        if given:
            names = ", ".join("PERSONA" if n == "persona" else _flag(n) for n in given)
            return f"--config holds the whole run: drop {names}"
        return None
    if args.persona is None:
        return "name a persona (or pass --config FILE)"
    if getattr(args, "method", None) == "guard":
        unused = sorted(set(overrides_of(args)) - GUARD_FLAGS)
        unused += [n for n in ("epochs", "iters", "resume", "init_from") if getattr(args, n)]
        if unused:
            names = ", ".join(_flag(n) for n in unused)
            return f"--method guard trains a probe, not an adapter: drop {names}"
    return None


def order_of(args: argparse.Namespace) -> TrainOrder:
    """The typed order the flags ask for: the card's settings with the overrides applied, the
    starting checkpoint resolved; PrepareError or ConfigError when that cannot be trained."""
    from adapters.registry import SAFE_NAME, Registry
    from data.home import adapters_dir

    from .config import ConfigError
    from .initial import with_init
    from .prepare import TrainRequest, new_config, resolve_persona

    adapters = str(args.adapters) if args.adapters else None
    dirs = tuple(args.personas)
    overrides = overrides_of(args)
    if getattr(args, "method", None) == "guard":
        guard = GuardRun(persona=args.persona, base_model=args.model, seed=args.seed or 0)
        if args.persona != GENERAL_ID:
            # Found here, with the extra persona folders, so the order names it by folder.
            guard = msgspec.structs.replace(
                guard, persona=str(resolve_persona(args.persona, dirs).folder)
            )
        return TrainOrder(job=guard, adapters=adapters)
    registry = Registry(args.adapters or adapters_dir())
    if args.resume:
        given = sorted(overrides) + [
            n for n in ("epochs", "iters", "model", "init_from") if getattr(args, n) is not None
        ]
        if given:
            raise ConfigError(
                f"--resume continues {args.resume} with its own settings; drop "
                + ", ".join(_flag(n) for n in given)
            )
        persona = args.persona
        if not (SAFE_NAME.fullmatch(persona) and registry.run_dir(persona, args.resume).is_dir()):
            persona = resolve_persona(args.persona, dirs).name
        return TrainOrder(job=ResumeRun(persona=persona, run=args.resume), adapters=adapters)
    if args.epochs is not None:
        overrides = overrides | {"epochs": args.epochs}
    request = TrainRequest(
        persona=args.persona,
        overrides=overrides,
        iters=args.iters,
        model=args.model,
        persona_dirs=dirs,
        init_from=args.init_from,
    )
    config = with_init(new_config(request), registry, request.init_from, overrides)
    return TrainOrder(job=NewRun(config=config, label=args.label), adapters=adapters)


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
    """Run `persona train`: build the order from the flags (or read `--config`) and train it."""
    from .events import Error, json_lines, progress_lines

    emit = json_lines() if args.json else progress_lines()
    problem = usage_problem(args)
    if problem is not None:
        emit(Error(message=problem))
        return 2
    from adapters.blas import ensure_fast_blas, warn_if_slow
    from adapters.private_tmp import use_private_tmp

    use_private_tmp()
    warn_if_slow(ensure_fast_blas())
    try:
        order = read_order(args.config) if args.config is not None else order_of(args)
    except Exception as exc:
        return _failed(exc, emit)
    if isinstance(order.job, GuardRun):
        return _train_guard(order, emit)
    return train(order, emit)


def train(order: TrainOrder, emit: Any) -> int:
    """Train a new or resumed adapter run; the exit code (0, 1 on error, 130 after SIGINT)."""
    from .events import Error
    from .session import start_session

    stop = StopSignal()
    stop.install()
    trainer: Any = None
    try:
        session = start_session(order, stop.event, emit)
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
        if trainer is not None:
            trainer.fail(str(exc) or type(exc).__name__)
        return _failed(exc, emit)
    finally:
        if trainer is not None and trainer.lock is not None:
            trainer.lock.close()  # releases the run folder for the next trainer in this process
    return stop.exit_code if outcome.reason == "stopped" else 0


def _failed(exc: Exception, emit: Any) -> int:
    """Report an error as the last event (a traceback on stderr only when unexpected); 1."""
    from .events import Error
    from .session import EXPECTED

    if not isinstance(exc, EXPECTED):
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    emit(Error(message=str(exc) or type(exc).__name__))
    return 1


GUARD_FLAGS = frozenset({"method", "seed"})
"""`[training]` flags that `--method guard` takes; the others tune an adapter."""


def _train_guard(order: TrainOrder, emit: Any) -> int:
    """Train the persona's guard and publish it beside its runs."""
    import os

    if "numpy" not in sys.modules:
        # The probe's many small NumPy fits lose more to thread hand-offs than they gain.
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from adapters.guard.probe import feature_reads
    from adapters.guard.train import GuardTrainError, describe_reads, persona_data, train_guard
    from adapters.registry import Registry
    from data.home import adapters_dir

    from .events import Error
    from .model import load_base

    job = order.job
    assert isinstance(job, GuardRun)
    try:
        data = persona_data(job.persona)
        base = load_base(job.base_model or data.base_model)
        folder = Registry(Path(order.adapters) if order.adapters else adapters_dir()).persona_dir(
            data.persona
        )
        manifest = train_guard(data, base, folder, emit, seed=job.seed, log=_stderr)
    except (GuardTrainError, ValueError) as exc:
        emit(Error(message=str(exc)))
        return 1
    _stderr(
        f"guard for {manifest.persona}: {describe_reads(feature_reads(manifest))}, threshold "
        f"{manifest.threshold:.3f}, cross-validated recall "
        f"{manifest.metrics['cv_recall_at_3pct']:.3f} at 3% false flags"
    )
    return 0


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
