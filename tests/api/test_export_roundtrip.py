"""Round trip: mlx-lm loads the fused `--to mlx` folder and says what `persona serve` said.

The served reply comes from the real app (official OpenAI client, greedy `pip` persona, the
adapter hot-loaded by the engine as LoRA layers); the fused folder is loaded by plain `mlx_lm`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from adapter_files import publish_random
from export_files import export
from openai import AsyncOpenAI

from server.settings import ServerSettings

PROMPT = "Tell me about gears."


@pytest.fixture
def published(settings: ServerSettings, tiny_model_dir: Path) -> Path:
    """A random adapter for `pip`, published before the app starts."""
    return publish_random(Path(settings.adapters_dir), "pip", tiny_model_dir, std=0.05).path


async def test_fused_folder_matches_served_greedy_reply(
    published: Path, client: AsyncOpenAI, settings: ServerSettings, tiny_model_dir: Path,
    tmp_path: Path,
) -> None:  # fmt: skip
    import mlx.core as mx
    from mlx_lm import load
    from mlx_lm.generate import generate_step

    from server.engine.token_mask import additive_mask, banned_ids

    reply = await client.chat.completions.create(
        model="pip@run-1:100",
        messages=[{"role": "user", "content": PROMPT}],
        max_tokens=12,
        extra_body={"min_tokens": 12},
    )
    assert reply.model_extra is not None
    assert reply.model_extra["persona_adapter"] == "run-1:100"
    served = reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens == 12

    out = tmp_path / "fused"
    assert export(["pip@run-1:100", "--to", "mlx", "--out", str(out), "--model",
                   str(tiny_model_dir), "--adapters", settings.adapters_dir,
                   "--personas", settings.personas_dirs[0]]) == 0  # fmt: skip
    model, tokenizer = load(str(out))
    messages = [
        {"role": "system", "content": "You are Pip, a cheerful robot who loves gears."},
        {"role": "user", "content": PROMPT},
    ]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True)
    # The server never emits control or unused tokens; the reference masks the same ids.
    banned = additive_mask(banned_ids(tokenizer, keep=(1, 106)), model.args.vocab_size, mx.float32)
    tokens = []
    for token, _ in generate_step(
        mx.array(prompt), model, max_tokens=12, logits_processors=[lambda _t, x: x + banned]
    ):
        tokens.append(int(token))
    assert tokenizer.decode(tokens) == served
    config = (out / "generation_config.json").read_text()
    assert '"temperature": 0.0' in config  # the card's sampling default travels with the model
    card = (out / "README.md").read_text()
    assert "You are Pip, a cheerful robot who loves gears." in card
    assert "| `max_tokens` | 5 |" in card
