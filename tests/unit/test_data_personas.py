"""Persona discovery: search order, overrides, and bad cards reported rather than raised."""

from __future__ import annotations

from pathlib import Path

from data.personas import default_dirs, discover, find_persona, sample_personas_dir


def write_card(folder: Path, name: str, extra: str = "") -> None:
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text(
        f'name = "{name}"\nsystem_prompt = "You are {name}."\n{extra}'
    )


def test_samples_are_discovered_by_default() -> None:
    entries, problems = discover()
    names = [e.name for e in entries]
    assert "vell" in names
    assert "juni" in names
    assert problems == []
    vell = next(e for e in entries if e.name == "vell")
    assert vell.folder == sample_personas_dir() / "vell"
    assert vell.train_file == vell.folder / "train.jsonl"
    assert vell.eval_file == vell.folder / "eval.jsonl"
    assert vell.card.sampling.temperature == 0.3


def test_user_persona_overrides_the_sample_of_the_same_name(persona_home: Path) -> None:
    user_dir = default_dirs()[0]
    assert user_dir == persona_home / "personas"
    write_card(user_dir / "vell", "vell", 'display_name = "My Vell"\n')
    entry = find_persona("vell")
    assert entry is not None
    assert entry.card.display_name == "My Vell"
    assert entry.folder == user_dir / "vell"
    assert entry.train_file is None


def test_extra_dirs_come_between_user_and_samples(tmp_path: Path) -> None:
    extra = tmp_path / "extra"
    write_card(extra / "vell", "vell", 'description = "from extra"\n')
    write_card(extra / "pip", "pip")
    entries, _ = discover(default_dirs([extra]))
    by_name = {e.name: e for e in entries}
    assert by_name["vell"].card.description == "from extra"
    assert by_name["juni"].folder.parent == sample_personas_dir()
    assert "pip" in by_name


def test_bad_card_is_reported_with_its_key_not_raised(tmp_path: Path) -> None:
    base = tmp_path / "personas"
    write_card(base / "good", "good")
    write_card(base / "typo", "typo", "[sampling]\ntemprature = 0.5\n")
    write_card(base / "wrongtype", "wrongtype", '[training]\nrank = "eight"\n')
    (base / "empty").mkdir()
    entries, problems = discover([base])
    assert [e.name for e in entries] == ["good"]
    assert [(p.file, p.severity, p.message) for p in problems] == [
        (str(base / "empty"), "warning", "no persona.toml; not a persona"),
        (str(base / "typo" / "persona.toml"), "error", "unknown key 'sampling.temprature'"),
        (
            str(base / "wrongtype" / "persona.toml"),
            "error",
            "training.rank: Expected `int`, got `str`",
        ),
    ]


def test_missing_dirs_are_skipped(tmp_path: Path) -> None:
    assert discover([tmp_path / "absent"]) == ([], [])
