"""The training loop, driven from code: steps, validation, checkpoints, early stopping, stop.

Epochs are first-class: each epoch's batches come from `epoch_batches(seed, epoch)`, so every row
is used once per epoch and a resumed run sees exactly the batches it would have seen. A stop
request (SIGINT/SIGTERM in the CLI) is honoured between steps: the current step is checkpointed
and the run is marked `stopped`, ready for `--resume`.
"""

from __future__ import annotations

import math
import resource
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import mlx.core as mx
import mlx.nn as nn
import mlx.optimizers as optim
import msgspec

from adapters.manifest import CONFIG, WEIGHTS
from adapters.registry import set_marker
from data.atomic import write_bytes

from .batching import epoch_batches, eval_batches
from .checkpoint import manifest_for, publish
from .dataset import Example
from .distributed import World, world, zero_grads
from .events import Best, Checkpoint, Done, Emit, Start, Step, Val
from .loss import TokenLoss
from .model import adapter_config, lora_params, make_trainable
from .preference import PairExample, PreferenceLoss, attach_reference
from .prepare import Prepared, config_dict
from .record import MetricPoint, RunRecord, write_record
from .schedule import build_schedule
from .state import TrainerState, load_state, step_seed

RECORD_EVERY = 10
"""Rewrite `run.json` at least this often (in steps), besides every validation and checkpoint."""


@dataclass(frozen=True)
class Outcome:
    """How a run ended."""

    step: int
    reason: str
    """`finished`, `early_stop` or `stopped`."""
    best_step: int | None
    best_val_loss: float | None


def total_steps(prepared: Prepared) -> int:
    """Optimizer steps of the whole run: `iters`, else epochs x batches per epoch."""
    if prepared.config.iters is not None:
        return prepared.config.iters
    return prepared.config.training.epochs * prepared.dataset.batches_per_epoch


class Trainer:
    """One run of one persona, writing into its run folder."""

    def __init__(
        self,
        prepared: Prepared,
        run: str,
        run_dir: Path,
        emit: Emit,
        stop: threading.Event | None = None,
        ranks: World | None = None,
        init: Path | None = None,
    ) -> None:
        self.p = prepared
        self.run = run
        self.run_dir = run_dir
        self.emit = emit
        self.stop = stop or threading.Event()
        """Set it to end the run after the current step (with a checkpoint)."""
        self.world = ranks or world()
        """The data-parallel processes; only rank 0 writes files and events."""
        if not self.world.writer:
            self.emit = _silent
        t = prepared.config.training
        self.total = total_steps(prepared)
        self.model = prepared.base.model
        mx.random.seed(t.seed)  # the adapters' initial values
        make_trainable(self.model, t)
        if init is not None:  # `--from`: continue a published checkpoint
            self.model.load_weights(str(init / WEIGHTS), strict=False)
            mx.eval(self.model.parameters())
        self.lora = lora_params(t, self.model)
        self.adapter_config = adapter_config(
            self.lora, prepared.config.base_model, prepared.base.model_id
        )
        self.optimizer = optim.Adam(learning_rate=build_schedule(t, self.total))
        self.loss: TokenLoss | PreferenceLoss = TokenLoss(self.model)
        if t.method != "sft":
            self.loss = PreferenceLoss(self.model, t.method, t.beta, t.rpo_alpha)
        if t.method == "dpo":
            # Before any resume loads later weights: the reference is the starting checkpoint.
            splits = {"train": self.p.train, "valid": self.p.valid}
            attach_reference(run_dir, self.loss, self.model, splits, t.batch_size)  # type: ignore[arg-type]
        self.state = TrainerState(dataset_sha256=prepared.dataset.train_sha256)
        self.metrics: list[MetricPoint] = []
        self.created = time.time()
        self.resumed_from: int | None = None
        self._published: int | None = None
        self._times: deque[float] = deque(maxlen=10)
        self.lock: IO[bytes] | None = None
        """The run folder's lock, held as long as this trainer lives."""

    def resume_from(self, checkpoint_dir: Path, record: RunRecord) -> None:
        """Continue from a checkpoint: weights, optimizer, position and counters."""
        self.model.load_weights(str(checkpoint_dir / WEIGHTS), strict=False)
        self.state = load_state(checkpoint_dir, self.optimizer, self.model)
        mx.eval(self.model.parameters(), self.optimizer.state)
        self.metrics = [m for m in record.metrics if m.step <= self.state.step]
        self.created = record.created
        self.resumed_from = self.state.step
        self._published = self.state.step

    def train(self) -> Outcome:
        """Run until finished, early-stopped or asked to stop; always ends with a Done event."""
        t = self.p.config.training
        self.emit(
            Start(
                run=self.run,
                persona=self.p.config.persona,
                config=config_dict(self.p.config),
                dataset=self.p.dataset,
                total_steps=self.total,
                resumed_from=self.resumed_from,
            )
        )
        if self.world.writer:
            write_bytes(self.run_dir / CONFIG, self.adapter_config)
        self._write_record("training")
        reason = "finished"
        self.model.train()
        while self.state.step < self.total:
            if self.world.any(self.stop.is_set()):
                reason = "stopped"
                break
            self._step()
            step = self.state.step
            improved = stale = False
            if self.p.valid and (step % t.val_every == 0 or step == self.total):
                improved, stale = self._validate()
            if improved or step % t.checkpoint_every == 0 or step == self.total or stale:
                self._checkpoint()
            if improved and self.world.writer:
                set_marker(self.run_dir, "best", step)
                self.emit(Best(step=step, val_loss=self.state.best_val_loss or 0.0))
            if stale:
                reason = "early_stop"
                break
            if step % RECORD_EVERY == 0:
                self._write_record("training")
        if self.state.step > 0 and self._published != self.state.step:
            self._checkpoint()
        self._write_record("stopped" if reason == "stopped" else "done", reason)
        self.emit(Done(step=self.state.step, reason=reason))
        return Outcome(self.state.step, reason, self.state.best_step, self.state.best_val_loss)

    def fail(self, message: str) -> None:
        """Record that the run failed (the error is kept in `run.json`)."""
        self._write_record("failed", message)

    def _step(self) -> None:
        t, s = self.p.config.training, self.state
        if s.batch >= len(s.order):
            if s.order:
                s.epoch += 1
            s.order = [list(b) for b in self._epoch(s.epoch)]
            s.batch = 0
        rows = self.world.share(tuple(s.order[s.batch]))
        mx.random.seed(step_seed(t.seed, s.step))
        tic = time.perf_counter()
        if rows:
            batch = self.loss.collate(self.p.train, rows)  # type: ignore[arg-type]
            total, count, grads = self.loss.value_and_grad(self.model, batch)
            tokens = batch.tokens
        else:  # a short last batch has no rows for this rank
            total, count, tokens, grads = 0.0, 0, 0, zero_grads(self.model)
        total, count, tokens, grads = self.world.combine(total, count, tokens, grads)
        if t.max_grad_norm > 0:
            grads, _ = optim.clip_grad_norm(grads, t.max_grad_norm)
        self.optimizer.update(self.model, grads)
        mx.eval(self.model.trainable_parameters(), self.optimizer.state)
        elapsed = time.perf_counter() - tic
        lr = float(self.optimizer.learning_rate.item())
        s.step += 1
        s.batch += 1
        s.tokens += tokens
        self._times.append(elapsed)
        train_loss = total / count
        if not math.isfinite(train_loss):
            raise FloatingPointError(f"the training loss became {train_loss} at step {s.step}")
        per_step = sum(self._times) / len(self._times)
        self.metrics.append(
            MetricPoint(
                step=s.step,
                train_loss=train_loss,
                lr=lr,
                tokens_per_sec=round(tokens / elapsed, 2),
            )
        )
        self.emit(
            Step(
                step=s.step,
                epoch=round(s.epoch + s.batch / len(s.order), 4),
                train_loss=train_loss,
                lr=lr,
                tokens_per_sec=tokens / elapsed,
                it_per_sec=1.0 / elapsed,
                eta_sec=(self.total - s.step) * per_step,
                peak_memory_gb=peak_memory_gb(),
            )
        )

    def _epoch(self, epoch: int) -> list[tuple[int, ...]]:
        t = self.p.config.training
        return epoch_batches([e.length for e in self.p.train], t.batch_size, t.seed, epoch)

    def _validate(self) -> tuple[bool, bool]:
        """Validation loss; returns (improved, patience exhausted)."""
        t, s = self.p.config.training, self.state
        loss = validation_loss(self.loss, self.model, self.p.valid, t.batch_size, self.world)
        self.model.train()
        self.emit(Val(step=s.step, val_loss=loss))
        if self.metrics and self.metrics[-1].step == s.step:
            self.metrics[-1] = msgspec.structs.replace(self.metrics[-1], val_loss=loss)
        if s.best_val_loss is None or loss < s.best_val_loss:
            s.best_val_loss, s.best_step, s.stale_vals = loss, s.step, 0
            return True, False
        s.stale_vals += 1
        return False, t.patience > 0 and s.stale_vals >= t.patience

    def _checkpoint(self) -> None:
        s = self.state
        if not self.world.writer:
            self._published = s.step
            return
        point = self.metrics[-1] if self.metrics and self.metrics[-1].step == s.step else None
        metrics = {}
        if point is not None and point.train_loss is not None:
            metrics["train_loss"] = point.train_loss
        if point is not None and point.val_loss is not None:
            metrics["val_loss"] = point.val_loss
        manifest = manifest_for(
            persona=self.p.config.persona,
            run=self.run,
            step=s.step,
            epoch=s.epoch + s.batch / max(len(s.order), 1),
            base_model=self.p.config.base_model,
            base_hash=self.p.base.base_hash,
            lora=self.lora,
            metrics=metrics,
        )
        folder = publish(self.run_dir, manifest, self.model, self.optimizer, s, self.adapter_config)
        self._published = s.step
        self._write_record("training")
        self.emit(Checkpoint(step=s.step, path=str(folder), version=manifest.version))

    def _write_record(self, status: str, reason: str | None = None) -> None:
        if not self.world.writer:
            return
        c = self.p.config
        write_record(
            self.run_dir,
            RunRecord(
                persona=c.persona,
                run=self.run,
                status=status,  # type: ignore[arg-type]
                config=c,
                base_model=c.base_model,
                base_model_id=self.p.base.model_id,
                base_hash=self.p.base.base_hash,
                dataset=self.p.dataset,
                total_steps=self.total,
                created=self.created,
                updated=time.time(),
                step=self.state.step,
                best_step=self.state.best_step,
                best_val_loss=self.state.best_val_loss,
                reason=reason,
                metrics=tuple(self.metrics),
            ),
        )


def validation_loss(
    loss: TokenLoss | PreferenceLoss,
    model: nn.Module,
    examples: list[Example] | list[PairExample],
    batch_size: int,
    ranks: World | None = None,
) -> float:
    """Mean cross-entropy over every learned token of the validation rows (for DPO and ORPO,
    the mean preference loss over the validation pairs), split over the ranks."""
    model.eval()
    total, count = 0.0, 0
    for k, rows in enumerate(eval_batches([e.length for e in examples], batch_size)):
        if ranks is not None and k % ranks.size != ranks.rank:
            continue
        part, n = loss.evaluate(model, loss.collate(examples, rows))  # type: ignore[arg-type]
        total += part
        count += n
    if ranks is not None:
        total, count = ranks.sum_pair(total, count)
    return total / max(count, 1)


def _silent(_event: object) -> None:
    """The events sink of ranks other than 0."""


def peak_memory_gb() -> float:
    """The process's peak resident memory in GB (what the operating system had to provide)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 30) if sys.platform == "darwin" else peak / (1 << 20)
