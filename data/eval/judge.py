"""An optional LLM judge: an OpenAI-compatible endpoint scores replies against the card's rubric."""

from __future__ import annotations

import re

import msgspec

from ..card import PersonaCard
from ..client import openai_client
from .suite import EvalCase

PROMPT = (
    "You grade replies written in the voice of a character.\n"
    "Character: {title}. {description}\n"
    "Rubric: {rubric}\n\n"
    "Conversation so far:\n{conversation}\n\n"
    "Reply to grade:\n{reply}\n\n"
    "Answer with one line: SCORE: <integer 1-5>, then one short sentence of reasons."
)
SCORE = re.compile(r"SCORE:\s*([1-5])")


class JudgeScore(msgspec.Struct, frozen=True):
    """A judge's verdict on one reply, scaled to 0-1 (None when unparseable)."""

    score: float | None
    reason: str


class Judge:
    """Scores replies with a chat model reached over the OpenAI API."""

    def __init__(self, base_url: str, model: str, api_key: str = "not-needed") -> None:
        self.model = model
        """The judge model id."""
        self._client = openai_client(base_url, api_key, max_retries=1)

    async def score(self, card: PersonaCard, case: EvalCase, reply: str) -> JudgeScore:
        """Ask the judge for a 1-5 score; failures become an unscored verdict, not an error."""
        import openai

        conversation = "\n".join(f"{m.role}: {m.content}" for m in case.messages)
        prompt = PROMPT.format(
            title=card.title,
            description=card.description,
            rubric=card.style.rubric or card.system_prompt,
            conversation=conversation,
            reply=reply,
        )
        try:
            answer = await self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                temperature=0.0,
                max_tokens=80,
            )
        except openai.OpenAIError as exc:
            return JudgeScore(None, f"judge failed: {exc}")
        text = answer.choices[0].message.content or ""
        match = SCORE.search(text)
        if match is None:
            return JudgeScore(None, f"unparseable: {text[:80]}")
        return JudgeScore((int(match.group(1)) - 1) / 4, text.strip()[:200])

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()
