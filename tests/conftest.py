"""Shared fixtures: an isolated user home per test, the prepared embedded model, a tiny model."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.blas import ensure_fast_blas

ensure_fast_blas()

# Tests isolate user state per test, but share one prepared base model across the session
# (and with the developer's own cache), so the 270M conversion runs at most once.
if "PERSONA_CACHE" not in os.environ:
    from data.home import cache_dir

    os.environ["PERSONA_CACHE"] = str(cache_dir())

TINY_CONFIG = {
    "model_type": "gemma3_text",
    "hidden_size": 64,
    "num_hidden_layers": 6,
    "intermediate_size": 128,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "head_dim": 32,
    "rms_norm_eps": 1e-6,
    "vocab_size": 262144,
    "rope_theta": 1000000.0,
    "rope_local_base_freq": 10000.0,
    "sliding_window": 512,
    "sliding_window_pattern": 6,
    "query_pre_attn_scalar": 32,
    "max_position_embeddings": 2048,
    "bos_token_id": 2,
    "eos_token_id": [1, 106],
    "pad_token_id": 0,
    "tie_word_embeddings": True,
}
"""gemma3_text at toy size: the real architecture and the real 262k-token tokenizer."""

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
    "generation_config.json",
)


@pytest.fixture(scope="session", autouse=True)
def session_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh PERSONA_HOME for what runs outside any one test (module- and session-scoped
    fixtures), so they never read the user's real runs either; each test gets its own below."""
    home = tmp_path_factory.mktemp("session-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PERSONA_HOME", str(home))
        yield home


@pytest.fixture(autouse=True)
def persona_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point PERSONA_HOME at a fresh folder so no test touches the user's real state."""
    home = tmp_path / "persona-home"
    home.mkdir()
    monkeypatch.setenv("PERSONA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The prepared embedded Gemma 3 270M folder (converted once, then cached)."""
    from adapters.base import prepare_embedded

    return prepare_embedded().path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory, embedded_model_dir: Path) -> Path:
    """A real MLX model folder: tiny gemma3_text, random weights (seed 0), real tokenizer."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import gemma3_text

    folder = tmp_path_factory.mktemp("tiny-gemma3")
    mx.random.seed(0)
    model = gemma3_text.Model(gemma3_text.ModelArgs.from_dict(TINY_CONFIG))
    mx.eval(model.parameters())
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(folder / "model.safetensors"), weights)
    (folder / "config.json").write_text(json.dumps(TINY_CONFIG, indent=2))
    for name in TOKENIZER_FILES:
        source = embedded_model_dir / name
        if source.exists():
            shutil.copy(source, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_model(tiny_model_dir: Path):  # type: ignore[no-untyped-def]
    """The tiny model and its tokenizer wrapper, loaded once per session."""
    from mlx_lm import load

    return load(str(tiny_model_dir))
