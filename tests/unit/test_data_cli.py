"""`persona data check|stats|split` as a user runs them: output lines and exit codes."""

from __future__ import annotations

import shutil
from pathlib import Path

import msgspec
import pytest

from data.personas import sample_personas_dir
from data.stats import DatasetStats
from studio.cli import main

FIXTURES = Path(__file__).parents[1] / "fixtures" / "datasets"


def test_check_prints_file_line_and_fails_on_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["data", "check", str(FIXTURES / "bad.jsonl")])
    out, _ = capsys.readouterr()
    assert code == 1
    lines = out.splitlines()
    assert f"{FIXTURES / 'bad.jsonl'}:2: not valid JSON: Input data was truncated" in lines
    assert len(lines) == 23
    assert "errors" in lines[-1]  # the summary ends stdout


def test_check_with_warnings_only_passes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", str(FIXTURES / "warnings_only.jsonl")]) == 0
    out, _ = capsys.readouterr()
    assert out.count("warning:") == 2
    assert out.splitlines()[-1] == "2 records checked: 0 errors, 2 warnings"


def test_check_a_persona_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "vell", "--no-tokenizer"]) == 0
    out, _ = capsys.readouterr()
    assert "0 errors" in out


def test_unknown_path_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "check", "no-such-persona"]) == 2
    assert "no such file, folder or persona" in capsys.readouterr().err


def test_card_errors_name_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "persona.toml").write_text('name = "p"\nsystem_prompt = "x"\n[style]\nbaned = []\n')
    shutil.copy(FIXTURES / "warnings_only.jsonl", folder / "train.jsonl")
    assert main(["data", "check", str(folder)]) == 1
    assert f"{folder / 'persona.toml'}: unknown key 'style.baned'" in capsys.readouterr().out


def test_stats_json_and_histogram(capsys: pytest.CaptureFixture[str]) -> None:
    path = str(FIXTURES / "stats_small.jsonl")
    assert main(["data", "stats", path, "--json"]) == 0
    stats = msgspec.json.decode(capsys.readouterr().out.strip(), type=DatasetStats)
    assert stats.records == 5
    assert main(["data", "stats", path, "--width", "10"]) == 0
    assert "   0-19 ██████████    3   50%" in capsys.readouterr().out


def make_persona(tmp_path: Path) -> Path:
    folder = tmp_path / "mine"
    folder.mkdir()
    sample = sample_personas_dir() / "vell"
    shutil.copy(sample / "persona.toml", folder / "persona.toml")
    shutil.copy(sample / "train.jsonl", folder / "dataset.jsonl")
    shutil.copy(sample / "eval.jsonl", folder / "eval.jsonl")
    return folder


def test_split_writes_deterministic_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_persona(tmp_path)
    source = (folder / "dataset.jsonl").read_text().splitlines()
    assert main(["data", "split", str(folder)]) == 0
    out = capsys.readouterr().out
    train = (folder / "train.jsonl").read_text().splitlines()
    valid = (folder / "valid.jsonl").read_text().splitlines()
    assert sorted(train + valid) == sorted(source)
    assert len(valid) == round(0.1 * len(source))  # the card's val_fraction
    assert "0 overlap training" in out
    first = (folder / "valid.jsonl").read_bytes()
    assert main(["data", "split", str(folder)]) == 0
    assert (folder / "valid.jsonl").read_bytes() == first
    assert main(["data", "split", str(folder), "--seed", "99"]) == 0
    assert (folder / "valid.jsonl").read_bytes() != first


def test_split_refuses_to_overwrite_its_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = make_persona(tmp_path)
    (folder / "dataset.jsonl").rename(folder / "train.jsonl")
    assert main(["data", "split", str(folder)]) == 2
    assert "would overwrite train.jsonl; pass --out" in capsys.readouterr().err
    assert main(["data", "split", str(folder), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "valid.jsonl").exists()


def test_split_never_writes_into_a_sample(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "split", "vell"]) == 2
    assert "read-only sample persona" in capsys.readouterr().err


def test_split_refuses_data_with_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copy(FIXTURES / "bad.jsonl", tmp_path / "dataset.jsonl")
    assert main(["data", "split", str(tmp_path / "dataset.jsonl")]) == 1
    assert not (tmp_path / "train.jsonl").exists()
    assert "fix these errors before splitting" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "flag", "value"),
    [
        (["data", "pairs", "vell", "--from", "vell"], "--samples", "0"),
        (["data", "pairs", "vell", "--from", "vell"], "--concurrency", "-3"),
        (["eval", "vell"], "--samples", "0"),
        (["eval", "vell"], "--concurrency", "x"),
    ],
)
def test_counts_below_one_are_refused_before_any_request(
    command: list[str], flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # Before, `--samples 0` sent nothing and then blamed the server ("no replies came back").
    with pytest.raises(SystemExit) as exited:
        main([*command, "--base-url", "http://127.0.0.1:9/v1", flag, value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}:" in err
    assert "must be at least 1" in err or "is not a whole number" in err
