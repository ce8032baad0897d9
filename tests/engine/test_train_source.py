"""What `persona data import` appends is what `persona train` reads, whatever files exist."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.training.prepare import TrainRequest, new_config
from data.dataset import read_dataset
from data.home import personas_dir
from studio.cli import main

RECORD = {
    "messages": [
        {"role": "user", "content": "Where do the gulls sleep?"},
        {"role": "assistant", "content": "On the harbour wall, in a long grey row."},
    ]
}
OLD = {
    "messages": [
        {"role": "user", "content": "Hello?"},
        {"role": "assistant", "content": "Hello, and welcome to the harbour."},
    ]
}


@pytest.mark.parametrize(
    "present",
    [(), ("dataset.jsonl",), ("train.jsonl",), ("dataset.jsonl", "train.jsonl", "valid.jsonl")],
)
def test_an_imported_record_is_what_training_reads(
    persona_home: Path, tmp_path: Path, present: tuple[str, ...]
) -> None:
    folder = personas_dir() / "tamsin"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text('name = "tamsin"\nsystem_prompt = "You are Tamsin."\n')
    for name in present:
        (folder / name).write_text(json.dumps(OLD) + "\n")
    source = tmp_path / "source.jsonl"
    source.write_text(json.dumps(RECORD) + "\n")
    assert main(["data", "import", str(source), "--to", "tamsin", "--no-tokenizer"]) == 0
    config = new_config(TrainRequest("tamsin"))
    trained = [r.record.messages[-1].content for r in read_dataset(Path(config.train_file)).rows]
    assert trained[-1] == RECORD["messages"][-1]["content"]
