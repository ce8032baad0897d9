"""Character cards: V2 PNG, V3 JSON and CHARX in; V2, V3 and PNG out; every field kept."""

from __future__ import annotations

import base64
import io
import json
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from data.card import load_card
from data.cards.persona import system_prompt
from data.cards.read import read_card_file
from data.dataset import read_dataset
from data.home import personas_dir
from studio.cli import main

CARDS = Path(__file__).parents[1] / "fixtures" / "cards"


def png_with(chunks: dict[str, str], size: tuple[int, int] = (8, 12)) -> bytes:
    info = PngInfo()
    for key, value in chunks.items():
        info.add_text(key, value)
    out = io.BytesIO()
    Image.new("RGB", size, (1, 2, 3)).save(out, format="PNG", pnginfo=info)
    return out.getvalue()


def b64(value: object) -> str:
    return base64.b64encode(json.dumps(value).encode()).decode()


def card_data(folder: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((folder / "card.json").read_text())["data"]


def test_a_v2_png_card_becomes_a_persona_that_passes_the_checker(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["import", str(CARDS / "tamsin.png")]) == 0
    assert "as persona 'tamsin-reed'" in capsys.readouterr().out
    folder = personas_dir() / "tamsin-reed"
    card = load_card(folder)
    assert card.display_name == "Tamsin Reed"
    # The documented order: the card's system_prompt ({{original}} = the default line),
    # description, personality, scenario; macros resolved; creator_notes nowhere.
    prompt = card.system_prompt
    assert prompt.startswith("Play Tamsin Reed, a canal lock-keeper. Stay in her voice. You are")
    order = ["Play Tamsin", "keeps Lock Seven", "personality: dry, kind", "Scenario: User has"]
    assert [prompt.index(p) for p in order] == sorted(prompt.index(p) for p in order)
    assert "{{" not in prompt
    assert "CREATOR-ONLY" not in (folder / "persona.toml").read_text()
    assert card.greetings[0].endswith("with the paddles, User.")
    assert len(card.greetings) == 3
    assert card.post_history_instructions == "Keep Tamsin Reed's replies under eighty words."
    rows = read_dataset(folder / "dataset.jsonl").rows
    assert [r.record.tags for r in rows] == [("example",)] * 3
    assert [len(r.record.messages) for r in rows] == [2, 4, 2]  # type: ignore[union-attr]
    kept = card_data(folder)
    assert kept["character_book"]["entries"][0]["unknown_entry_field"] == [1, 2, 3]
    assert kept["extensions"]["studio_unknown"] == {"nested": [True, None, 3.5]}
    assert (folder / "avatar.png").read_bytes() == (CARDS / "tamsin.png").read_bytes()
    assert main(["data", "check", "tamsin-reed", "--no-tokenizer"]) == 0
    assert "0 errors" in capsys.readouterr().out


def test_a_v3_nickname_stands_for_char_and_empty_parts_are_left_out() -> None:
    assert main(["import", str(CARDS / "osric.v3.json"), "--name", "oz", "--user", "Pat"]) == 0
    card = load_card(personas_dir() / "oz")
    assert card.system_prompt == (
        "You are Oz.\n\nOz runs the last ferry across the Marrow Estuary. He talks to the tide "
        "like an old colleague.\n\nOz's personality: cheerful, superstitious, generous with "
        "biscuits"
    )
    assert card.greetings == [
        "All aboard that's coming aboard! Mind the step, Pat, it's older than me.",
        "Tide's turning, Pat. Hop on or wave me off.",
    ]
    assert card.post_history_instructions == ""


def test_a_charx_zip_brings_its_icon_and_assets(tmp_path: Path) -> None:
    data = json.loads((CARDS / "osric.v3.json").read_text())
    data["data"]["assets"] = [
        {
            "type": "icon",
            "uri": "embeded://assets/icon/images/main.png",
            "name": "main",
            "ext": "png",
        }
    ]
    icon = png_with({})
    charx = tmp_path / "osric.charx"
    with zipfile.ZipFile(charx, "w") as archive:
        archive.writestr("card.json", json.dumps(data))
        archive.writestr("assets/icon/images/main.png", icon)
        archive.writestr("readme.txt", "not an asset")
    assert main(["import", str(charx)]) == 0
    folder = personas_dir() / "osric-vantablade"
    assert (folder / "avatar.png").read_bytes() == icon
    assert (folder / "assets" / "icon" / "images" / "main.png").read_bytes() == icon
    assert not (folder / "readme.txt").exists()


def test_import_export_import_keeps_every_field(tmp_path: Path) -> None:
    for source, name in ((CARDS / "tamsin.png", "first"), (CARDS / "osric.v3.json", "ferry")):
        assert main(["import", str(source), "--name", name]) == 0
        out = tmp_path / name
        assert main(["export", name, "--to", "card", "--out", str(out)]) == 0
        assert sorted(p.name for p in out.iterdir()) == [
            f"{name}.png",
            f"{name}.v2.json",
            f"{name}.v3.json",
        ]
        v2 = json.loads((out / f"{name}.v2.json").read_text())
        v3 = json.loads((out / f"{name}.v3.json").read_text())
        assert (v2["spec"], v2["spec_version"], v3["spec"], v3["spec_version"]) == (
            "chara_card_v2", "2.0", "chara_card_v3", "3.0"
        )  # fmt: skip
        assert v2["name"] == v2["data"]["name"]  # V1 readers find the top-level fields
        with Image.open(out / f"{name}.png") as image:  # Pillow is the outside reader here
            chunks = dict(image.text)  # type: ignore[attr-defined]
        assert json.loads(base64.b64decode(chunks["chara"])) == v2
        assert json.loads(base64.b64decode(chunks["ccv3"])) == v3
        original = read_card_file(source).card.raw
        for exported in (out / f"{name}.png", out / f"{name}.v2.json", out / f"{name}.v3.json"):
            again = read_card_file(exported).card.raw
            assert {k: again[k] for k in original} == original
            assert set(again) - set(original) <= {"group_only_greetings", "creator_notes"}
        assert main(["import", str(out / f"{name}.png"), "--name", f"{name}-again"]) == 0
        first, second = (
            load_card(personas_dir() / name),
            load_card(personas_dir() / f"{name}-again"),
        )
        assert (first.system_prompt, first.greetings) == (second.system_prompt, second.greetings)
        assert (personas_dir() / name / "dataset.jsonl").read_bytes() == (
            personas_dir() / f"{name}-again" / "dataset.jsonl"
        ).read_bytes()


def test_ccv3_wins_over_chara_and_keywords_match_in_any_case(tmp_path: Path) -> None:
    v2 = {"spec": "chara_card_v2", "spec_version": "2.0", "data": {"name": "Old Name"}}
    v3 = {"spec": "chara_card_v3", "spec_version": "3.0", "data": {"name": "New Name"}}
    path = tmp_path / "both.png"
    path.write_bytes(png_with({"CHARA": b64(v2), "CcV3": b64(v3)}))
    loaded = read_card_file(path)
    assert (loaded.card.spec, loaded.card.data.name) == ("chara_card_v3", "New Name")


def test_a_sample_persona_exports_as_a_card(tmp_path: Path) -> None:
    assert main(["export", "vell", "--to", "card", "--out", str(tmp_path)]) == 0
    data = read_card_file(tmp_path / "vell.png").card.data
    assert data.name == "Vell"
    assert (
        data.system_prompt
        == load_card(Path(__file__).parents[2] / "data" / "samples" / "vell").system_prompt
    )
    assert data.mes_example.startswith("<START>\n{{user}}: ")
    assert system_prompt(read_card_file(tmp_path / "vell.v3.json").card).startswith(
        data.system_prompt
    )


def js(value: object) -> bytes:
    return json.dumps(value).encode()


V2_NO_NAME = {"spec": "chara_card_v2", "data": {"nickname": "x"}}
BAD_CARDS = [
    (png_with({"chara": "not base64 at all!"}), "the 'chara' chunk is not valid base64"),
    (png_with({"Title": "a picture"}), "no 'ccv3' or 'chara' text chunk (found: 'Title')"),
    (png_with({"chara": b64(V2_NO_NAME)}), "data.name: missing"),
    (js({"name": "x", "description": "a V1 card"}), "spec: missing; not a character card"),
    (js({"spec": "chara_card_v3", "data": {"name": "  "}}), "data.name: must not be empty"),
    (
        js({"spec": "chara_card_v2", "data": {"name": "x", "tags": "a"}}),
        "data.tags: expected array, got str",
    ),
    (b"{broken", "not valid JSON"),
]


@pytest.mark.parametrize(("payload", "message"), BAD_CARDS)
def test_bad_cards_name_the_field_and_write_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: bytes, message: str
) -> None:
    path = tmp_path / "card.bin"
    path.write_bytes(payload)
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert message in err
    assert "nothing was written" in err
    assert not personas_dir().exists() or not any(personas_dir().iterdir())


def test_a_charx_asset_may_not_leave_its_folder(tmp_path: Path) -> None:
    charx = tmp_path / "evil.charx"
    with zipfile.ZipFile(charx, "w") as archive:
        archive.writestr("card.json", (CARDS / "osric.v3.json").read_text())
        archive.writestr("assets/../../escape.txt", "x")
    assert main(["import", str(charx)]) == 1
    assert not (tmp_path / "escape.txt").exists()
    assert not personas_dir().exists() or not any(personas_dir().iterdir())


def test_an_existing_persona_is_never_overwritten(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(CARDS / "osric.v3.json")]) == 0
    before = (personas_dir() / "osric-vantablade" / "persona.toml").read_bytes()
    assert main(["import", str(CARDS / "osric.v3.json")]) == 1
    assert "exists already" in capsys.readouterr().err
    assert (personas_dir() / "osric-vantablade" / "persona.toml").read_bytes() == before
    assert [p.name for p in personas_dir().iterdir()] == ["osric-vantablade"]


def test_nulls_read_as_empty_and_are_written_back_as_they_came(tmp_path: Path) -> None:
    data = {"name": "Nully", "tags": None, "alternate_greetings": None, "extensions": None}
    data |= {"creator_notes": None, "creation_date": 1767225600.5}
    source = tmp_path / "nully.json"
    source.write_text(json.dumps({"spec": "chara_card_v3", "spec_version": "3.0", "data": data}))
    assert main(["import", str(source)]) == 0
    assert card_data(personas_dir() / "nully")["tags"] is None
    assert load_card(personas_dir() / "nully").greetings == []
    assert main(["export", "nully", "--to", "card", "--out", str(tmp_path / "out")]) == 0
    again = read_card_file(tmp_path / "out" / "nully.v3.json").card.raw
    assert {k: again[k] for k in data} == data
