"""Every export carries a README.md model card built from the run's own record."""

from __future__ import annotations

import json
from pathlib import Path

from export_files import export
from train_files import SYSTEM, toy_rows, train, write_persona


def test_model_card_tells_where_the_weights_came_from(
    tiny_model_dir: Path, tmp_path: Path, persona_home: Path
) -> None:
    persona = write_persona(tmp_path / "personas" / "toy", toy_rows(), valid=toy_rows(4)[:2])
    train([str(persona), "--model", str(tiny_model_dir), "--iters", "4", "--val-every", "2"])
    run_dir = persona_home / "adapters" / "toy" / "run-1"
    record = json.loads((run_dir / "run.json").read_text())
    record["eval"] = {"4": {"score": 0.61, "completion": 0.9}, "2": {"score": 0.2}}
    (run_dir / "run.json").write_text(json.dumps(record))

    out = tmp_path / "out"
    assert export(["toy@run-1:4", "--to", "peft", "--out", str(out), "--model",
                   str(tiny_model_dir), "--personas", str(tmp_path / "personas")]) == 0  # fmt: skip
    card = (out / "README.md").read_text()
    assert card.startswith("---\nbase_model: tiny-gemma3")
    assert f"> {SYSTEM}" in card
    assert "| rank | 4 |" in card
    assert "| batch_size | 2 |" in card
    assert "| training rows | 13 |" in card
    assert f"| train sha256 | `{record['dataset']['train_sha256']}` |" in card
    assert "| val_loss |" in card
    assert "| score | 0.610 |" in card  # this checkpoint's eval, not step 2's
    assert "| score | 0.200 |" not in card
    assert "adapter_model.safetensors" in card
