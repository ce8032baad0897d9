"""What a new user reads: help texts, and the export of a persona that does not exist."""

from __future__ import annotations

from pathlib import Path

import pytest

from studio.cli import build_parser, main

PERSONAS_HELP = "extra folder of personas, searched after your own"


def help_of(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit):
        main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_data_subcommands_have_descriptions() -> None:
    import argparse

    parser = build_parser()
    [data] = [a for a in parser._subparsers._group_actions if a.dest == "command"]  # type: ignore[union-attr]
    data_parser = data.choices["data"]  # type: ignore[attr-defined]
    [actions] = [a for a in data_parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(actions.choices) >= {"check", "stats", "pairs", "split", "import", "draft"}
    for name, command in actions.choices.items():
        assert command.description, f"persona data {name} --help has no description"


def test_train_overrides_list_allowed_values(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of(["train"], capsys)
    assert "--method {sft,dpo,orpo,guard}" in text
    assert "--lr-schedule {constant,linear,cosine}" in text
    assert "--fine-tune-type {lora,dora,full}" in text
    assert "about 4 per epoch" in text


@pytest.mark.parametrize("command", ["train", "eval", "tune-sampling", "export", "serve", "new"])
def test_personas_is_described_one_way(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert PERSONAS_HELP in help_of([command], capsys)


def test_export_summary_names_every_format(capsys: pytest.CaptureFixture[str]) -> None:
    text = help_of([], capsys)
    assert "(card, peft, gguf, gguf-full, ollama, mlx)" in text


def test_export_of_an_unknown_persona(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "parrot", "--to", "gguf", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert "no persona named 'parrot' (known: juni, vell)" in err
    assert not (tmp_path / "x").exists()


def test_export_of_an_untrained_persona(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "parrot"]) == 0
    assert main(["export", "parrot", "--to", "gguf", "--out", str(tmp_path / "x")]) == 1
    assert "train it first: persona train parrot" in capsys.readouterr().err
