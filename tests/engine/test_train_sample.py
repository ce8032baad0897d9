"""Shipping a trained run as a sample adapter, and installing it into a fresh registry."""

from __future__ import annotations

import json
from pathlib import Path

from train_files import toy_rows, train, write_persona

from adapters.pack_sample import pack_run
from adapters.registry import ModelRef, Registry
from adapters.sample_adapters import install_sample_adapters, sample_dir
from adapters.verify import checkpoint_problems


def test_a_packed_run_installs_with_only_its_best_checkpoint(
    tmp_path: Path, tiny_model_dir: Path, persona_home: Path
) -> None:
    folder = write_persona(tmp_path / "toy", toy_rows(), valid=toy_rows(4)[:2])
    train([str(folder), "--model", str(tiny_model_dir), "--iters", "4", "--val-every", "2",
           "--checkpoint-every", "1"])  # fmt: skip
    trained = Registry(persona_home / "adapters")
    best = trained.marker("toy", "run-1", "best")
    assert best in (2, 4)

    chosen = pack_run(trained, "toy", "run-1", tmp_path / "chosen", step=1)
    assert [p.name for p in (chosen / "checkpoints").iterdir()] == ["0000001"]
    shipped = pack_run(trained, "toy", "run-1", tmp_path / "sample")
    assert [p.name for p in (shipped / "checkpoints").iterdir()] == [f"{best:07d}"]
    record = json.loads((shipped / "run.json").read_text())
    assert record["config"]["train_file"] == "train.jsonl"
    assert str(tmp_path) not in (shipped / "run.json").read_text()

    fresh = Registry(tmp_path / "fresh")
    assert install_sample_adapters(fresh.root, tmp_path / "sample") == [
        fresh.root / "toy" / "run-1"
    ]
    assert install_sample_adapters(fresh.root, tmp_path / "sample") == []  # never overwrites
    ckpt = fresh.resolve(ModelRef("toy", "run-1", "best"))
    assert ckpt is not None
    assert ckpt.manifest.step == best
    assert fresh.marker("toy", "run-1", "latest") == best
    from adapters.base import content_hash

    assert checkpoint_problems(ckpt, content_hash(tiny_model_dir)) == []


def test_the_shipped_samples_are_complete_and_match_the_embedded_model(
    tmp_path: Path, embedded_model_dir: Path
) -> None:
    from adapters.base import content_hash

    installed = install_sample_adapters(tmp_path)
    if not sample_dir().is_dir():
        assert installed == []
        return
    registry = Registry(tmp_path)
    for run_dir in installed:
        ckpts = registry.checkpoints(run_dir.parent.name, run_dir.name)
        assert len(ckpts) == 1
        assert checkpoint_problems(ckpts[0], content_hash(embedded_model_dir)) == []
