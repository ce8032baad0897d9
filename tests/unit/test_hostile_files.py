"""Hostile files end in one clear line naming the file and the problem, never a traceback."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from data.home import personas_dir
from data.json_depth import MAX_DEPTH, NestingError, check_depth
from studio.cli import main

DEEP = b"[" * 1000 + b"]" * 1000
CHAT = b'{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
LIMIT = f"nested deeper than {MAX_DEPTH} levels"


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, False),
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), True),
        (b"[" * (MAX_DEPTH + 1), True),  # unterminated, as a decoder would still recurse
        (b'{"a":' * (MAX_DEPTH + 1) + b"1" + b"}" * (MAX_DEPTH + 1), True),
        (b'["' + b"[" * 1000 + b'"]', False),  # brackets inside a string are text
        (b'["\\"' + b"[" * 1000 + b'"]', False),  # an escaped quote does not end the string
        (b'["\\\\"' + b"[" * 1000, True),  # an escaped backslash does
        (b"[}" * 1000, False),  # mismatched, not deep: the decoder reports it
        ("[" * 200, True),
    ],
)
def test_the_depth_check(text: bytes | str, deep: bool) -> None:
    if deep:
        with pytest.raises(NestingError, match=LIMIT):
            check_depth(text)
    else:
        check_depth(text)


def test_data_check_names_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "deep.jsonl"
    path.write_bytes(CHAT + b"\n" + DEEP + b"\n")
    assert main(["data", "check", str(path)]) != 0
    out = "".join(capsys.readouterr())
    assert f"{path}:2: JSON is {LIMIT}" in out
    assert "Traceback" not in out


@pytest.mark.parametrize("payload", [DEEP, b"\n" + DEEP, b'{"a": ' * 1000 + b"}" * 1000])
def test_data_import_refuses_deep_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes
) -> None:
    folder = personas_dir() / "tamsin"
    folder.mkdir(parents=True)
    (folder / "persona.toml").write_text('name = "tamsin"\nsystem_prompt = "You are Tamsin."\n')
    source = tmp_path / "deep.json"
    source.write_bytes(payload)
    code = main(["data", "import", str(source), "--to", "tamsin", "--no-tokenizer"])
    out = "".join(capsys.readouterr())
    assert code != 0
    assert LIMIT in out
    assert not (folder / "dataset.jsonl").exists()


def png_card(text: str) -> bytes:
    info = PngInfo()
    info.add_text("chara", text)
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def charx(members: dict[str, bytes]) -> bytes:
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


@pytest.mark.parametrize(
    ("suffix", "payload"),
    [
        (".json", DEEP),
        (".png", png_card(base64.b64encode(DEEP).decode())),
        (".charx", charx({"card.json": DEEP})),
    ],
)
def test_card_import_refuses_deep_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, payload: bytes
) -> None:
    source = tmp_path / f"deep{suffix}"
    source.write_bytes(payload)
    assert main(["import", str(source), "--name", "deep"]) != 0
    out = "".join(capsys.readouterr())
    assert str(source) in out
    assert LIMIT in out
    assert "Traceback" not in out
    assert not (personas_dir() / "deep").exists()
