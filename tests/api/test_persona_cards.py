"""An imported character card served: greetings shown, post-history instructions applied."""

from __future__ import annotations

from pathlib import Path

import httpx2
import pytest
from openai import AsyncOpenAI

from data.card import load_card
from data.cards.folder import write_persona
from data.cards.persona import to_persona
from data.cards.read import read_card_file
from data.check import check_dataset

CARDS = Path(__file__).parents[1] / "fixtures" / "cards"
USER = [{"role": "user", "content": "Can I come through?"}]


@pytest.fixture
def personas_dir(tmp_path: Path) -> Path:
    """A personas folder holding the Tamsin V2 PNG card and the Osric V3 JSON card."""
    folder = tmp_path / "imported"
    for file, name in (("tamsin.png", "tamsin"), ("osric.v3.json", "osric")):
        source = read_card_file(CARDS / file)
        write_persona(to_persona(source.card, name), source, folder)
    return folder


@pytest.mark.parametrize("name", ["tamsin", "osric"])
async def test_imported_cards_pass_the_checker_and_chat(
    client: AsyncOpenAI, personas_dir: Path, tiny_model_dir: Path, name: str
) -> None:
    from transformers import AutoTokenizer

    folder = personas_dir / name
    card = load_card(folder)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_model_dir))  # Gemma 3's real tokenizer
    report = check_dataset([folder / "dataset.jsonl"], card, tokenizer)
    assert report.problems == ()
    assert len(report.rows) >= 2
    reply = await client.chat.completions.create(model=name, messages=USER, max_tokens=4)
    assert reply.choices[0].message.content
    assert reply.usage is not None
    assert reply.usage.completion_tokens > 0


async def test_the_persona_shows_its_greetings(
    http: httpx2.AsyncClient, personas_dir: Path
) -> None:
    info = (await http.get("/v1/personas/tamsin")).json()
    card = load_card(personas_dir / "tamsin")
    assert info["greetings"] == card.greetings
    assert len(info["greetings"]) == 3
    assert info["post_history_instructions"] == "Keep Tamsin Reed's replies under eighty words."
    assert "CREATOR-ONLY" not in info["system_prompt"]


async def test_post_history_instructions_follow_the_conversation(
    client: AsyncOpenAI, base: str, personas_dir: Path
) -> None:
    card = load_card(personas_dir / "tamsin")

    async def prompt_tokens(model: str, messages: list[dict[str, str]]) -> int:
        reply = await client.chat.completions.create(model=model, messages=messages, max_tokens=1)
        assert reply.usage is not None
        return reply.usage.prompt_tokens

    # The base model given the same frame by hand is the independent reference.
    spelled_out = [
        {"role": "system", "content": card.system_prompt},
        {"role": "user", "content": f"{USER[0]['content']}\n\n{card.post_history_instructions}"},
    ]
    assert await prompt_tokens("tamsin", USER) == await prompt_tokens(base, spelled_out)
    # A client that brings its own system prompt takes the frame over: no instructions added.
    own = [{"role": "system", "content": "Hi."}, *USER]
    assert await prompt_tokens("tamsin", own) == await prompt_tokens(base, own)
    # A greeting first, as the TUI starts a chat, then the user: still after the last user turn.
    greeted = [{"role": "assistant", "content": card.greetings[0]}, *USER]
    spelled_greeted = [spelled_out[0], greeted[0], spelled_out[1]]
    assert await prompt_tokens("tamsin", greeted) == await prompt_tokens(base, spelled_greeted)
