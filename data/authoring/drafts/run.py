"""`draft`: ask a teacher for conversations aimed at the dataset's gaps and keep the good ones.

Each answer becomes a draft only if it reads as a conversation, passes the data checker's
record checks (and, with a tokenizer, the length limit and template prefix), puts every reply in
its target band, and its prompt is neither a duplicate nor a near-duplicate of a dataset prompt
or another draft. A kept draft is written to `drafts.jsonl` at once, so a teacher that fails
later loses nothing already drafted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ...card import PersonaCard
from ...check import record_problems, token_problems
from ...client import openai_client
from ...dataset import Row
from ...records import ChatRecord, Message, Record, prompt_text, replies
from ...similar import cross_pairs
from ...stats import dataset_stats
from ...tokens import ChatTokenizer
from .events import Done, Drafted, DraftEvent, Failed, Start
from .gaps import DraftTarget, gaps, plan_drafts
from .prompt import AnswerError, choose_examples, read_answer, teacher_messages
from .store import DRAFTS, add_draft, new_draft, read_drafts

MAX_BAD_ANSWERS = 3
"""Unreadable answers in a row after which the teacher counts as answering badly."""
ATTEMPTS_PER_DRAFT = 3


class TeacherError(Exception):
    """The teacher cannot be reached or refuses; the message says which and how."""


class Teacher:
    """An OpenAI-compatible chat endpoint used as the teacher."""

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str = "not-needed",
        timeout: float = 300.0,
        max_tokens: int = 1024,
    ) -> None:
        self.model = model
        """The teacher's model id, recorded with each draft."""
        self.base_url = base_url
        self.max_tokens = max_tokens
        """The longest answer asked for, in tokens."""
        self._client = openai_client(base_url, api_key, timeout=timeout)

    async def ask(self, messages: list[dict[str, str]], seed: int) -> str:
        """The teacher's answer text; TeacherError when unreachable or refusing."""
        import openai

        try:
            answer = await self._client.chat.completions.create(
                model=self.model,
                messages=messages,
                temperature=0.9,
                seed=seed,
                max_tokens=self.max_tokens,  # type: ignore[arg-type]
            )
        except openai.APIConnectionError as exc:
            raise TeacherError(f"cannot reach the teacher at {self.base_url}: {exc}") from None
        except openai.APIStatusError as exc:
            raise TeacherError(
                f"the teacher at {self.base_url} answered {exc.status_code}: {_said(exc)}"
            ) from None
        except openai.OpenAIError as exc:
            raise TeacherError(f"the teacher at {self.base_url} failed: {exc}") from None
        if not answer.choices:
            return ""
        return answer.choices[0].message.content or ""

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.close()


def _said(exc: object) -> str:
    """The message of an OpenAI error envelope, else the SDK's own text."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and isinstance(inner.get("message"), str):
            return inner["message"]
    return str(getattr(exc, "message", exc))


def screen(
    messages: Sequence[Message],
    target: DraftTarget,
    known_prompts: Sequence[str],
    card: PersonaCard | None,
    tokenizer: ChatTokenizer | None,
) -> str | None:
    """Why a drafted conversation is dropped, or None when it is kept."""
    record = ChatRecord(tuple(messages), (target.tag,) if target.tag else ())
    row = Row("draft", 0, record, "")
    problems = record_problems(row)
    if tokenizer is not None and not any(p.severity == "error" for p in problems):
        problems += token_problems(row, tokenizer, card)
    errors = [p.message for p in problems if p.severity == "error"]
    if errors:
        return f"checker: {'; '.join(errors)}"
    low, high = target.words
    for number, reply in enumerate(replies(record), start=1):
        words = len(reply.split())
        if not low <= words <= high:
            return f"reply {number} is {words} words, outside its target {low}-{high}"
    if cross_pairs([prompt_text(record)], known_prompts):
        return "its prompt duplicates or nearly duplicates one already in the data or drafts"
    return None


async def draft(
    folder: Path,
    card: PersonaCard,
    records: Sequence[Record],
    teacher: Teacher,
    count: int | None,
    emit: Callable[[DraftEvent], None],
    tokenizer: ChatTokenizer | None = None,
    card_tags: Sequence[str] = (),
    seed: int = 0,
) -> Done | Failed:
    """Draft up to `count` conversations (default: enough to close every gap) into drafts.jsonl."""
    stats = dataset_stats(records, card)
    pending = read_drafts(folder)
    targets = plan_drafts(stats, card.style.reply_words, card_tags, count)
    wanted = gaps(stats)
    emit(Start(card.name, teacher.model, len(targets), tuple(wanted)))
    known = [prompt_text(r) for r in records] + [prompt_text(d.record) for d in pending]
    kept = dropped = bad_in_row = index = 0
    for target in targets:
        for _ in range(ATTEMPTS_PER_DRAFT):
            index += 1
            examples = choose_examples(records, target, seed + index)
            ask = teacher_messages(card, target, examples, wanted)
            try:
                text = await teacher.ask(ask, seed + index)
            except TeacherError as exc:
                return _stop(emit, str(exc), kept, dropped, folder)
            try:
                messages = read_answer(text)
                bad_in_row = 0
            except AnswerError as exc:
                bad_in_row += 1
                dropped += 1
                emit(Drafted(index, target, False, reason=str(exc)))
                if bad_in_row >= MAX_BAD_ANSWERS:
                    message = f"the teacher answers badly ({bad_in_row} in a row): {exc}"
                    return _stop(emit, message, kept, dropped, folder)
                continue
            reason = screen(messages, target, known, card, tokenizer)
            if reason is not None:
                dropped += 1
                emit(Drafted(index, target, False, reason=reason))
                continue
            made = new_draft(messages, target, teacher.model, (target.tag,) if target.tag else ())
            add_draft(folder, made)
            known.append(prompt_text(made.record))
            kept += 1
            emit(Drafted(index, target, True, id=made.id))
            break
    done = Done(kept, dropped, str(folder / DRAFTS))
    emit(done)
    return done


def _stop(
    emit: Callable[[DraftEvent], None], message: str, kept: int, dropped: int, folder: Path
) -> Failed:
    failed = Failed(f"{message} ({kept} drafts kept in {folder / DRAFTS})")
    emit(failed)
    return failed
