"""Engine fixtures: fresh tiny models per engine, sharing the session's (slow to load) tokenizer."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session")
def make_engine(tiny_model_dir: Path, tiny_model: Any) -> Callable[..., Any]:
    """Build an unstarted Engine on a fresh copy of the tiny model's weights."""
    from mlx_lm.utils import load_model

    from adapters.base import content_hash
    from server.engine.engine import Engine

    _, tokenizer = tiny_model
    base_hash = content_hash(tiny_model_dir)

    def build(
        max_batch: int = 8,
        max_adapters: int = 4,
        prefix_cache_bytes: int = 0,
        model_dir: Path = tiny_model_dir,
        lookup_draft: int = 0,
        gemv_head: bool = False,
    ) -> Engine:
        model, config = load_model(model_dir)
        return Engine(
            model,
            tokenizer,
            model_id=tiny_model_dir.name,
            base_hash=base_hash,
            context_length=int(config["max_position_embeddings"]),
            max_batch=max_batch,
            max_adapters=max_adapters,
            model_path=model_dir,
            prefix_cache_bytes=prefix_cache_bytes,
            lookup_draft=lookup_draft,
            gemv_head=gemv_head,
        )

    return build


SMALL_WINDOW = 24
"""The sliding window, in tokens, of `small_window_dir`'s model."""


@pytest.fixture(scope="module")
def small_window_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model with a sliding window of SMALL_WINDOW tokens (same weights)."""
    folder = tmp_path_factory.mktemp("small-window") / "model"
    shutil.copytree(tiny_model_dir, folder)
    config = json.loads((folder / "config.json").read_text())
    config["sliding_window"] = SMALL_WINDOW
    (folder / "config.json").write_text(json.dumps(config))
    return folder
