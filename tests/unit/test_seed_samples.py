"""`persona serve` seeds the shipped sample adapters only where they fit: the embedded model."""

from __future__ import annotations

from pathlib import Path

from server.cli import _seed_sample_adapters
from server.settings import ServerSettings


def test_embedded_model_gets_the_sample_runs(tmp_path: Path) -> None:
    _seed_sample_adapters(ServerSettings(model="embedded", adapters_dir=str(tmp_path)))
    runs = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.glob("*/run-*"))
    assert "juni/run-1" in runs
    assert (tmp_path / "juni" / "run-1" / "best").read_text().strip().isdigit()


def test_other_base_models_get_nothing(tmp_path: Path) -> None:
    registry = tmp_path / "adapters"
    registry.mkdir()
    settings = ServerSettings(model=str(tmp_path / "some-model"), adapters_dir=str(registry))
    _seed_sample_adapters(settings)
    assert list(registry.iterdir()) == []
