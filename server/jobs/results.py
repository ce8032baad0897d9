"""A job's result file: the run's metrics as CSV, one row per step, as OpenAI's results file."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from adapters.training.record import read_record

COLUMNS = ("step", "train_loss", "valid_loss", "learning_rate", "tokens_per_sec")


def metrics_csv(run_dir: Path) -> bytes:
    """`step,train_loss,valid_loss,learning_rate,tokens_per_sec` from the run's `run.json`."""
    record = read_record(run_dir)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for point in record.metrics:
        values = (point.step, point.train_loss, point.val_loss, point.lr, point.tokens_per_sec)
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue().encode()
