"""`check_dataset`: every problem in a dataset, as file:line, before any training starts.

Structure (JSON, types, unknown keys) is checked while reading; here come the roles and their
order, empty turns, tags, duplicate and near-duplicate prompts across all files, phrases the card
bans, and, when a tokenizer is given, control-token text inside content, the length limit and
the chat template's prompt prefix.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import msgspec

from .card import PersonaCard
from .dataset import Row, read_datasets
from .problem import Problem, error, warning
from .records import (
    FAILURE_MODES,
    ChatRecord,
    Message,
    PreferenceRecord,
    as_messages,
    preference_problems,
    prompt_text,
    replies,
    turn_order_problems,
    with_system,
)
from .similar import Pair, normalise, similar_pairs
from .tokens import ChatTokenizer, chat_ids, control_token_text


class CheckReport(msgspec.Struct, frozen=True):
    """Everything `check_dataset` found, with the rows it could read."""

    files: tuple[str, ...]
    rows: tuple[Row, ...]
    problems: tuple[Problem, ...]
    notes: tuple[str, ...] = ()
    """What was not checked, and why (for example, no tokenizer)."""

    @property
    def errors(self) -> list[Problem]:
        """Problems that make the data unusable."""
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        """Problems worth a look that do not block training."""
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings allowed)."""
        return not self.errors


def check_dataset(
    paths: Sequence[Path], card: PersonaCard | None = None, tokenizer: ChatTokenizer | None = None
) -> CheckReport:
    """Read and check JSONL files together; every problem is reported, none raised."""
    loaded = read_datasets(paths)
    problems = list(loaded.problems)
    problems.extend(check_rows(loaded.rows, card, tokenizer))
    notes: list[str] = []
    if tokenizer is None:
        notes.append("token checks skipped: no tokenizer (length limit, template prefix)")
    elif card is None:
        notes.append("length limit not checked: no persona card")
    files = tuple(str(p) for p in paths)
    rank = {name: index for index, name in enumerate(files)}
    problems.sort(key=lambda p: (rank.get(p.file, len(rank)), p.line, p.severity, p.message))
    return CheckReport(files, loaded.rows, tuple(problems), tuple(notes))


def check_rows(
    rows: Sequence[Row], card: PersonaCard | None = None, tokenizer: ChatTokenizer | None = None
) -> list[Problem]:
    """Every content problem in decoded rows: per record, then duplicates across all of them."""
    problems: list[Problem] = []
    for row in rows:
        found = record_problems(row)
        problems.extend(found)
        if card is not None:
            problems.extend(_banned(row, card))
        if tokenizer is not None and not any(p.severity == "error" for p in found):
            problems.extend(token_problems(row, tokenizer, card))
    problems.extend(duplicate_problems(rows))
    return problems


def record_problems(row: Row) -> list[Problem]:
    """Roles, order and empty turns of one record, and its tags."""
    record = row.record
    messages = as_messages(record)
    texts: list[str] = []
    if isinstance(record, ChatRecord):
        texts = turn_order_problems(messages, last="assistant")
        texts += [
            f"messages[{i}].content: empty {m.role} turn"
            for i, m in enumerate(messages)
            if not m.content.strip()
        ]
    elif isinstance(record, PreferenceRecord):
        texts = preference_problems(record)
    else:
        texts = [
            f"{key}: empty" for key in ("prompt", "completion") if not getattr(record, key).strip()
        ]
    problems = [error(row.file, row.line, text) for text in texts]
    for tag in record.tags:
        canonical = normalise(tag).replace(" ", "_")
        if not tag.strip():
            problems.append(warning(row.file, row.line, "tags: empty tag"))
        elif canonical in FAILURE_MODES and tag != canonical:
            problems.append(warning(row.file, row.line, f"tags: {tag!r} should be {canonical!r}"))
    return problems


def token_problems(row: Row, tokenizer: ChatTokenizer, card: PersonaCard | None) -> list[Problem]:
    """Control-token text, the length limit and the prompt-prefix property, with the persona's
    own tokenizer (for a preference pair, on each side)."""
    problems = _control_text(row, tokenizer)
    record = row.record
    if isinstance(record, PreferenceRecord):
        for side, conversation in (
            ("preferred", record.chosen),
            ("non-preferred", record.rejected),
        ):
            problems += [
                msgspec.structs.replace(problem, message=f"{side}: {problem.message}")
                for problem in _token_problems(row, conversation, tokenizer, card)
            ]
        return problems
    return problems + _token_problems(row, as_messages(record), tokenizer, card)


def _token_problems(
    row: Row, conversation: Sequence[Message], tokenizer: ChatTokenizer, card: PersonaCard | None
) -> list[Problem]:
    messages = with_system(conversation, card.system_prompt if card else None)
    try:
        full = chat_ids(tokenizer, messages)
    except Exception as exc:  # a template may raise on anything; report, never crash
        return [error(row.file, row.line, f"the chat template cannot render this record: {exc}")]
    problems: list[Problem] = []
    if card is not None and len(full) > card.training.max_seq_length:
        problems.append(
            error(
                row.file,
                row.line,
                f"{len(full)} tokens (with the system prompt) exceeds training.max_seq_length "
                f"{card.training.max_seq_length}; training would cut the reply",
            )
        )
    mismatch = _prefix_mismatch(tokenizer, messages, full)
    if mismatch:
        problems.append(error(row.file, row.line, mismatch))
    return problems


def _control_text(row: Row, tokenizer: ChatTokenizer) -> list[Problem]:
    # Training encodes it as plain text, so it cannot forge a turn; but a model taught to write
    # `<end_of_turn>` as text ends no turn, and such data is almost always a pasting mistake.
    record = row.record
    if isinstance(record, ChatRecord):
        fields = [(f"messages[{i}].content", m.content) for i, m in enumerate(record.messages)]
    elif isinstance(record, PreferenceRecord):
        fields = [
            (f"{side}[{i}].content", m.content)
            for side, turns in (
                ("input.messages", record.input.messages),
                ("preferred_output", record.preferred_output),
                ("non_preferred_output", record.non_preferred_output),
            )
            for i, m in enumerate(turns)
        ]
    else:
        fields = [("prompt", record.prompt), ("completion", record.completion)]
    problems = []
    for name, text in fields:
        found = control_token_text(tokenizer, text)
        if found:
            spelled = ", ".join(repr(s) for s in found)
            problems.append(
                error(
                    row.file,
                    row.line,
                    f"{name}: holds control-token text {spelled}; content must be plain text",
                )
            )
    return problems


def duplicate_problems(rows: Sequence[Row]) -> list[Problem]:
    """Duplicate and near-duplicate prompts, reported once on each later line, naming the first."""
    first_match: dict[int, Pair] = {}
    for pair in similar_pairs([prompt_text(r.record) for r in rows]):
        known = first_match.get(pair.right)
        # An exact duplicate outranks a near one; among equals the earliest line is named.
        if known is None or (pair.exact and not known.exact):
            first_match[pair.right] = pair
    problems: list[Problem] = []
    for later_index, pair in sorted(first_match.items()):
        first, later = rows[pair.left], rows[later_index]
        if pair.exact and replies(first.record) == replies(later.record):
            text = f"duplicate record: same as {first.where}"
        elif pair.exact:
            text = f"duplicate prompt: same as {first.where}"
        else:
            text = f"near-duplicate prompt ({pair.score:.0%} similar to {first.where})"
        problems.append(warning(later.file, later.line, text))
    return problems


def _banned(row: Row, card: PersonaCard) -> list[Problem]:
    found: list[Problem] = []
    for index, reply in enumerate(replies(row.record)):
        lowered = reply.casefold()
        for phrase in card.style.banned:
            if phrase.casefold() in lowered:
                found.append(
                    warning(row.file, row.line, f"reply {index + 1} uses banned phrase {phrase!r}")
                )
    return found


def _prefix_mismatch(
    tokenizer: ChatTokenizer, messages: Sequence[Message], full: list[int]
) -> str | None:
    # Loss masking takes the tokens of the rendered prompt as the part not to learn; if the
    # template renders the prompt differently inside the whole conversation, the mask is wrong.
    for index, message in enumerate(messages):
        if message.role != "assistant":
            continue
        prompt = chat_ids(tokenizer, messages[:index], add_generation_prompt=True)
        if full[: len(prompt)] != prompt:
            at = next(
                (k for k, (a, b) in enumerate(zip(prompt, full, strict=False)) if a != b),
                min(len(prompt), len(full)),
            )
            return (
                f"chat template: the prompt before messages[{index}] is not a token prefix of the "
                f"whole conversation (they differ at token {at}); loss masking would be wrong"
            )
    return None
