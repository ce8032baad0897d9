"""A client-given adapter path or model id never reaches a file outside the adapters folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from watchfiles import Change

from adapters.manifest import CONFIG, MANIFEST, WEIGHTS, LoraParams, Manifest, encode_manifest
from adapters.registry import Registry, RegistryError, parse_model_id
from server.hotswap.pins import Pin, read_pins, write_pins
from server.hotswap.watch import passes, personas_of


def fake_checkpoint(root: Path, persona: str = "juni", run: str = "run-1", step: int = 50) -> Path:
    """A checkpoint folder with a manifest (the weights are placeholder bytes)."""
    folder = root / persona / run / "checkpoints" / f"{step:07d}"
    folder.mkdir(parents=True)
    (folder / WEIGHTS).write_bytes(b"weights")
    (folder / CONFIG).write_text("{}")
    manifest = Manifest(persona, run, step, "embedded", "h", LoraParams(4, 1.0), "0" * 64, 1.0)
    (folder / MANIFEST).write_bytes(encode_manifest(manifest))
    return folder


@pytest.fixture
def registry(tmp_path: Path) -> Registry:
    root = tmp_path / "adapters"
    fake_checkpoint(root)
    return Registry(root)


def test_checkpoint_paths_inside_are_accepted(registry: Registry) -> None:
    absolute = registry.checkpoint_at(str(registry.root / "juni/run-1/checkpoints/0000050"))
    relative = registry.checkpoint_at("juni/run-1/checkpoints/0000050")
    assert absolute.manifest.version == relative.manifest.version == "run-1:50"
    assert absolute.path == registry.root / "juni/run-1/checkpoints/0000050"


@pytest.mark.parametrize(
    "attempt",
    [
        "../../etc",
        "../../../../../../etc/passwd",
        "/etc",
        "/",
        "juni/../../outside",
        "%2e%2e/%2e%2e/etc",
        "..%2f..%2fetc",
        "juni/run-1",
        "juni/run-1/checkpoints",
        "juni/run-1/checkpoints/0000050/adapters.safetensors",
        "",
        "   ",
        "juni/run-1/checkpoints/0000050\x00",
        "juni/\ud800",
        "x" * 5000,
    ],
)
def test_traversal_and_non_checkpoints_are_refused(registry: Registry, attempt: str) -> None:
    (registry.root.parent / "outside").mkdir(exist_ok=True)
    with pytest.raises(RegistryError):
        registry.checkpoint_at(attempt)


def test_symlink_out_of_the_folder_is_refused(registry: Registry, tmp_path: Path) -> None:
    elsewhere = fake_checkpoint(tmp_path / "elsewhere")
    link = registry.root / "juni" / "run-1" / "checkpoints" / "0000060"
    os.symlink(elsewhere, link)
    with pytest.raises(RegistryError, match="not a checkpoint folder"):
        registry.checkpoint_at(str(link))


def test_symlink_inside_resolves_to_the_real_checkpoint(registry: Registry) -> None:
    link = registry.root / "shortcut"
    os.symlink(registry.root / "juni/run-1/checkpoints/0000050", link)
    assert registry.checkpoint_at(str(link)).manifest.step == 50


def test_missing_or_mismatched_manifest_is_refused(registry: Registry) -> None:
    folder = registry.root / "juni/run-1/checkpoints/0000050"
    moved = folder.with_name("0000070")
    folder.rename(moved)
    with pytest.raises(RegistryError, match="does not match"):
        registry.checkpoint_at(str(moved))
    (moved / MANIFEST).unlink()
    with pytest.raises(RegistryError, match="no manifest"):
        registry.checkpoint_at(str(moved))


@pytest.mark.parametrize(
    "model_id", ["../../etc", "juni@../x", "juni@run-1:../../etc", "/etc/passwd", "JUNI", "a b"]
)
def test_model_ids_that_look_like_paths_are_invalid(model_id: str) -> None:
    with pytest.raises(RegistryError):
        parse_model_id(model_id)


def test_watch_filter_passes_manifests_and_folders_only(tmp_path: Path) -> None:
    folder = tmp_path / "0000050"
    folder.mkdir()
    assert passes(Change.added, str(folder / MANIFEST))
    assert passes(Change.modified, str(folder / MANIFEST))
    assert passes(Change.added, str(folder))
    assert passes(Change.deleted, str(folder))
    assert not passes(Change.added, str(folder / WEIGHTS))
    assert not passes(Change.modified, str(folder / WEIGHTS))
    assert not passes(Change.added, str(folder / ".manifest.json.abc.tmp"))
    assert not passes(Change.modified, str(folder))
    root = tmp_path
    assert personas_of(root, {str(root / "juni/run-1/x"), str(root / "ada"), "/elsewhere"}) == {
        "juni",
        "ada",
    }


def test_pins_round_trip_and_survive_garbage(tmp_path: Path) -> None:
    path = tmp_path / "pins.json"
    assert read_pins(path) == {}
    write_pins(path, {"juni": Pin("run-2", 150)})
    assert read_pins(path) == {"juni": Pin("run-2", 150)}
    path.write_text("{not json")
    assert read_pins(path) == {}
    path.write_text('{"../x": {"run": "run-1", "step": 1}, "ok": {"run": "../r", "step": 2}}')
    assert read_pins(path) == {}
