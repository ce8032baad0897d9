"""`persona new` and `persona list` as a new user runs them: files made, messages, exit codes."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from data.card import load_card
from data.eval.suite import load_suite
from data.scaffold import EXAMPLES, ScaffoldError, create_persona, title_of
from studio.cli import main


def test_new_makes_a_checked_persona(
    persona_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "grumpy-parrot"]) == 0
    out = capsys.readouterr().out
    folder = persona_home / "personas" / "grumpy-parrot"
    assert f"in {folder}" in out
    assert "persona data check grumpy-parrot" in out
    assert "persona train grumpy-parrot" in out
    card = load_card(folder)
    assert card.name == "grumpy-parrot"
    assert card.title == "Grumpy Parrot"
    assert "# " in (folder / "persona.toml").read_text()
    cases, problems = load_suite(folder / "eval.jsonl")
    assert not problems
    assert {c.category for c in cases} == {"general", "idk", "clarify", "off_topic", "boundary"}
    tags = {json.loads(line)["tags"][0] for line in _lines(folder / "train.jsonl")}
    assert tags == {c for c, _, _ in EXAMPLES}
    assert main(["data", "check", "grumpy-parrot", "--no-tokenizer"]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    assert not [p for p in (persona_home / "personas").iterdir() if p.name.startswith(".")]


def test_new_follows_the_umask(persona_home: Path) -> None:
    import os

    old = os.umask(0o022)
    try:
        made = create_persona("parrot", persona_home / "personas")
    finally:
        os.umask(old)
    assert stat.S_IMODE(made.folder.stat().st_mode) == 0o755
    assert stat.S_IMODE((made.folder / "persona.toml").stat().st_mode) == 0o644


@pytest.mark.parametrize("name", ["Parrot", "../parrot", "a/b", "_x", "", "x" * 64, "päpagei"])
def test_new_refuses_an_invalid_name(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", name]) == 2
    assert "is not a valid persona name" in capsys.readouterr().err


def test_new_refuses_an_existing_name(
    persona_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "parrot"]) == 0
    card = persona_home / "personas" / "parrot" / "persona.toml"
    card.write_text(card.read_text() + "\n# mine\n")
    assert main(["new", "parrot"]) == 2
    assert "exists already" in capsys.readouterr().err
    assert card.read_text().endswith("# mine\n")


def test_new_from_copies_a_sample(persona_home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "otter", "--from", "juni"]) == 0
    folder = persona_home / "personas" / "otter"
    card = load_card(folder)
    assert card.name == "otter"
    assert card.title == "Juni Pebblewick (copy)"
    assert card.system_prompt.startswith("You are Juni")
    assert (folder / "train.jsonl").stat().st_size > 10_000
    assert "a copy of juni" in capsys.readouterr().out


def test_new_from_an_unknown_persona(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "otter", "--from", "nobody"]) == 2
    assert "no persona named 'nobody' (known: juni, vell)" in capsys.readouterr().err


def test_scaffold_error_leaves_nothing(persona_home: Path) -> None:
    with pytest.raises(ScaffoldError):
        create_persona("Bad Name", persona_home / "personas")
    assert not (persona_home / "personas").exists() or not any(
        (persona_home / "personas").iterdir()
    )


def test_title_of() -> None:
    assert title_of("grumpy_parrot-shop") == "Grumpy Parrot Shop"


def test_list_shows_folders_data_and_adapters(
    persona_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["new", "parrot"]) == 0
    capsys.readouterr()
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert f"parrot  Parrot\n  folder    {persona_home / 'personas' / 'parrot'}" in out
    assert "train.jsonl (10), eval.jsonl (5)" in out
    assert "juni  Juni Pebblewick" in out
    assert out.count("none trained") == 3


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


@pytest.mark.parametrize("title", ['He said "hi" \\ ok', "é\n\tü", "a\x00b"])
def test_display_names_are_escaped_in_the_card(persona_home: Path, title: str) -> None:
    made = create_persona("parrot", persona_home / "personas", title=title)
    assert load_card(made.folder).title == title


def test_a_display_name_that_cannot_be_written_is_refused(persona_home: Path) -> None:
    with pytest.raises(ScaffoldError, match="display name"):
        create_persona("parrot", persona_home / "personas", title="\ud800")
    assert not (persona_home / "personas" / "parrot").exists()
