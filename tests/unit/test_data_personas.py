"""Persona discovery: search order, overrides, and bad cards reported rather than raised."""

from __future__ import annotations

from pathlib import Path

import pytest

from data.personas import PersonaError, default_dirs, discover, resolve, sample_personas_dir


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
    entry = resolve("vell")
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


def test_resolve_finds_a_sample_by_name_read_only() -> None:
    entry = resolve("juni")
    assert entry.folder == sample_personas_dir() / "juni"
    assert entry.read_only
    assert entry.train_file == entry.folder / "train.jsonl"
    assert entry.data_files == [entry.folder / "train.jsonl"]


def test_resolve_takes_a_folder_whatever_its_card_calls_itself(tmp_path: Path) -> None:
    write_card(tmp_path / "somewhere", "pip")
    entry = resolve(str(tmp_path / "somewhere"))
    assert (entry.name, entry.folder) == ("pip", tmp_path / "somewhere")
    assert not entry.read_only
    assert entry.train_file is None
    assert entry.append_file == tmp_path / "somewhere" / "dataset.jsonl"


def test_a_user_persona_shadows_the_sample_and_is_writable(persona_home: Path) -> None:
    write_card(persona_home / "personas" / "juni", "juni", 'display_name = "Mine"\n')
    entry = resolve("juni")
    assert entry.folder == persona_home / "personas" / "juni"
    assert entry.card.display_name == "Mine"
    assert not entry.read_only


def test_extra_dirs_reach_resolve(tmp_path: Path) -> None:
    write_card(tmp_path / "extra" / "pip", "pip")
    assert resolve("pip", [tmp_path / "extra"]).folder == tmp_path / "extra" / "pip"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("parrot", "no persona named 'parrot' (known: juni, vell)"),
        ("./nowhere/parrot", "./nowhere/parrot: no persona folder (no persona.toml in it)"),
    ],
)
def test_a_missing_persona_is_a_clear_error_naming_it(given: str, message: str) -> None:
    with pytest.raises(PersonaError) as caught:
        resolve(given)
    assert str(caught.value) == message


def test_a_broken_card_in_a_named_folder_is_an_error_naming_the_key(tmp_path: Path) -> None:
    write_card(tmp_path / "typo", "typo", "[sampling]\ntemprature = 0.5\n")
    with pytest.raises(PersonaError, match=r"unknown key 'sampling.temprature'"):
        resolve(str(tmp_path / "typo"))


@pytest.mark.parametrize(
    ("present", "train", "append"),
    [
        ((), None, "dataset.jsonl"),
        (("dataset.jsonl",), "dataset.jsonl", "dataset.jsonl"),
        (("train.jsonl",), "train.jsonl", "train.jsonl"),
        # After `persona data split` both exist: new records go where training reads.
        (("dataset.jsonl", "train.jsonl", "valid.jsonl"), "train.jsonl", "train.jsonl"),
    ],
)
def test_one_rule_for_the_training_set(
    tmp_path: Path, present: tuple[str, ...], train: str | None, append: str
) -> None:
    write_card(tmp_path / "pip", "pip")
    for name in present:
        (tmp_path / "pip" / name).write_text("")
    entry = resolve(str(tmp_path / "pip"))
    assert entry.train_file == (tmp_path / "pip" / train if train else None)
    assert entry.append_file == tmp_path / "pip" / append
    assert entry.append_file == (entry.train_file or entry.append_file)
    assert (entry.dataset_file is not None) == ("dataset.jsonl" in present)
    valid = [tmp_path / "pip" / "valid.jsonl"] if "valid.jsonl" in present else []
    assert entry.data_files == ([entry.train_file] if entry.train_file else []) + valid
