"""Hostile files end in one clear line naming the file and the problem, never a traceback."""

from __future__ import annotations

import base64
import io
import json
import struct
import warnings
import zipfile
import zlib
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from data.cards.png import MAX_TEXT_BYTES
from data.cards.read import MAX_CARD_BYTES
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
    ids=["json", "png", "charx"],  # a zip holds its build time: ids from bytes would vary
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


GOOD_CARD = json.dumps({"spec": "chara_card_v2", "data": {"name": "Tess", "description": "x"}})


def zip_of(members: list[tuple[zipfile.ZipInfo | str, bytes]]) -> bytes:
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate names made on purpose
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for info, data in members:
                archive.writestr(info, data)
    return out.getvalue()


def member(name: str, compress: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.compress_type = compress
    return info


def stored_then_corrupted() -> bytes:
    payload = zip_of([("card.json", GOOD_CARD.encode()), (member("assets/a.bin", 0), b"A" * 64)])
    return payload.replace(b"A" * 64, b"A" * 63 + b"B")


def patched(local: int, central: int, value: int) -> bytes:
    """A CHARX whose asset's headers hold `value` at these offsets (flags, method)."""
    payload = bytearray(zip_of([("card.json", GOOD_CARD.encode()), ("assets/a.bin", b"x" * 64)]))
    for signature, offset in ((b"PK\x03\x04", local), (b"PK\x01\x02", central)):
        at = payload.find(signature, payload.find(b"assets/a.bin") - 60)
        payload[at + offset : at + offset + 2] = value.to_bytes(2, "little")
    return bytes(payload)


CHARX_FAULTS = {
    "same name twice": (
        [("card.json", GOOD_CARD.encode()), ("assets/a.png", b"1"), ("assets/a.png", b"2")],
        "collides",
    ),
    "names differing in case": (
        [("card.json", GOOD_CARD.encode()), ("assets/a.png", b"1"), ("assets/A.png", b"2")],
        "collides",
    ),
    "a file where a folder is": (
        [("card.json", GOOD_CARD.encode()), ("assets/x", b"1"), ("assets/x/y.png", b"2")],
        "collides",
    ),
    "an over-long name": (
        [("card.json", GOOD_CARD.encode()), ("assets/" + "a" * 300 + ".png", b"1")],
        "longer than",
    ),
    "a control character": (
        [("card.json", GOOD_CARD.encode()), ("assets/a\n.png", b"1")],
        "control character",
    ),
    "bzip2": (
        [("card.json", GOOD_CARD.encode()), (member("assets/a.png", zipfile.ZIP_BZIP2), b"1")],
        "compression method 12",
    ),
    "a card.json that inflates past the cap": (
        [("card.json", b" " * (MAX_TEXT_BYTES + 10))],
        "inflates to more than",
    ),
    "assets that inflate past the cap": (
        [("card.json", GOOD_CARD.encode())]
        + [(f"assets/{i}.bin", b"\0" * (MAX_CARD_BYTES // 3)) for i in range(4)],
        "inflates to more than",
    ),
}


@pytest.mark.parametrize("fault", list(CHARX_FAULTS))
def test_a_broken_charx_is_one_line_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], fault: str
) -> None:
    members, problem = CHARX_FAULTS[fault]
    assert_refused(tmp_path, capsys, zip_of(members), problem)


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (stored_then_corrupted(), "Bad CRC"),
        (patched(8, 10, 99), "compression method 99"),
        (patched(6, 8, 0x1), "encrypted"),
        (b"PK\x03\x04" + b"\0" * 40, "not a readable CHARX zip"),
    ],
    ids=["bad-crc", "method-99", "encrypted", "no-directory"],
)
def test_a_corrupt_charx_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes, problem: str
) -> None:
    assert_refused(tmp_path, capsys, payload, problem)


def assert_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes, problem: str
) -> None:
    source = tmp_path / "card.charx"
    source.write_bytes(payload)
    assert main(["import", str(source), "--name", "tess"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"persona import: {source}"), err
    assert problem in err.splitlines()[0]
    assert "Traceback" not in err
    assert not personas_dir().exists() or list(personas_dir().iterdir()) == []


def chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def raw_png(width: int, height: int, *extra: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\0" * (width * 3 + 1) if width * height < 10**6 else b"\0" * 10)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + b"".join(extra)
        + chunk(b"IDAT", pixels)
        + chunk(b"IEND", b"")
    )


CARD_B64 = base64.b64encode(GOOD_CARD.encode())
ZAPPED = b"A" + CARD_B64[1:]
BOMB = zlib.compress(b"A" * (MAX_TEXT_BYTES + 1))


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (raw_png(13_000, 13_000, chunk(b"tEXt", b"chara\0" + CARD_B64)), "169 megapixels"),
        (raw_png(20_000, 20_000, chunk(b"tEXt", b"chara\0" + CARD_B64)), "400 megapixels"),
        (
            raw_png(
                4, 1, chunk(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (MAX_TEXT_BYTES + 1)))
            ),
            "inflates to more than",
        ),
        (
            raw_png(4, 1, chunk(b"iTXt", b"chara\0\1\0\0\0" + zlib.compress(b"A" * 2**26, 9))),
            "inflates to more than",
        ),
        (raw_png(4, 1, chunk(b"tEXt", b"chara\0" + CARD_B64))[:-20], "runs past the end"),
        (raw_png(4, 1, chunk(b"tEXt", b"chara\0" + CARD_B64)).replace(CARD_B64, ZAPPED), "CRC"),
    ],
    ids=["169MP", "400MP", "zTXt bomb", "iTXt bomb", "truncated", "bad CRC"],
)
def test_png_bombs_and_damage_are_refused_before_decoding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes, problem: str
) -> None:
    source = tmp_path / "card.png"
    source.write_bytes(payload)
    assert main(["import", str(source), "--name", "tess"]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"persona import: {source}: "), err
    assert problem in err.splitlines()[0]
    assert not personas_dir().exists() or list(personas_dir().iterdir()) == []


def test_a_small_raw_png_card_still_imports(tmp_path: Path) -> None:
    source = tmp_path / "card.png"
    source.write_bytes(raw_png(4, 1, chunk(b"tEXt", b"chara\0" + CARD_B64)))
    assert main(["import", str(source), "--name", "tess"]) == 0
    assert (personas_dir() / "tess" / "persona.toml").is_file()


def test_card_export_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "vell.png").write_bytes(b"mine")
    assert main(["export", "vell", "--to", "card", "--out", str(out)]) == 1
    assert "pass --force" in capsys.readouterr().err
    assert (out / "vell.png").read_bytes() == b"mine"
    assert not (out / "vell.v2.json").exists()
    assert main(["export", "vell", "--to", "card", "--out", str(out), "--force"]) == 0
    assert (out / "vell.png").read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("model_id", ["vell@run-1:²", "vell@run-1:" + "9" * 5000, "vell\n"])
def test_model_export_refuses_a_bad_id_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], model_id: str
) -> None:
    assert main(["export", model_id, "--to", "peft", "--out", str(tmp_path / "x")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert len(err) < 300


def test_data_check_lists_the_first_problems_and_counts_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"x\n" * 20_000 + (b'{"' + b"k" * 100_000 + b'": 1}\n'))
    assert main(["data", "check", str(path), "--no-tokenizer"]) == 1
    out, _ = capsys.readouterr()
    assert len(out) < 30_000
    assert f"{path}:50:" in out
    assert f"{path}:51:" not in out
    assert "... and 19951 more" in out
    assert "20001 errors" in out  # the summary goes to stdout


def test_a_teacher_answer_nested_too_deeply_is_an_answer_error() -> None:
    from data.authoring.drafts.prompt import AnswerError, read_answer

    with pytest.raises(AnswerError, match=LIMIT):
        read_answer('{"messages": ' + "[" * 1000 + "]" * 1000 + "}")


def test_a_charx_with_too_many_entries_is_refused_before_it_is_opened(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    members = [("card.json", GOOD_CARD.encode())] + [(f"assets/{i}", b"") for i in range(10_001)]
    assert_refused(tmp_path, capsys, zip_of(members), "more than 10000 entries")
