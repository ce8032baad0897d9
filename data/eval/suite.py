"""The held-out eval suite of a persona: `eval.jsonl`, one probe per line with its criteria."""

from __future__ import annotations

from pathlib import Path

import msgspec

from ..jsonl import read_json_lines, unknown_keys
from ..problem import Problem, error, friendly_validation, warning
from ..records import FAILURE_MODES, MESSAGE_KEYS, Message, turn_order_problems

CATEGORIES = (
    "general",
    "idk",
    "clarify",
    "off_topic",
    "boundary",
    "disclosure",
    "benign_near",
    "multi_turn",
)
"""What a probe tests: plain persona voice, one of the failure modes, or a follow-up."""


class EvalCase(msgspec.Struct, frozen=True, omit_defaults=True):
    """One probe: a conversation ending with a user turn, and what a good reply must do."""

    id: str
    category: str
    messages: tuple[Message, ...]
    must_include_any: tuple[str, ...] = ()
    """The reply passes only if it contains at least one of these (empty = no such rule)."""
    must_not_include: tuple[str, ...] = ()
    length: tuple[int, ...] = ()
    """`[min_words, max_words]`; empty means the card's `style.reply_words`."""
    chosen: str = ""
    """A good reply to this probe, for contrast scoring (empty = the case has no pairs)."""
    rejected: tuple[str, ...] = ()
    """Bad replies the model should find less likely than `chosen`, one pair each."""

    @property
    def prompt(self) -> str:
        """The last user turn: what the persona is answering."""
        return self.messages[-1].content if self.messages else ""


CASE_KEYS = frozenset(EvalCase.__struct_fields__)


class ScriptTurn(msgspec.Struct, frozen=True, omit_defaults=True):
    """One scripted user turn of a long conversation, and what the reply to it is judged as."""

    content: str
    category: str = "general"
    """`general` or a failure mode: the reply is held to that category's rule."""


class ConversationScript(msgspec.Struct, frozen=True):
    """`{"id": ..., "turns": [{"content": ...}, ...]}`: held-out user turns for a drift run.

    `persona eval --turns N` plays the first N turns, each after the model's own earlier replies.
    """

    id: str
    turns: tuple[ScriptTurn, ...]


SCRIPT_KEYS = frozenset(ConversationScript.__struct_fields__)
TURN_KEYS = frozenset(ScriptTurn.__struct_fields__)


def is_script(value: dict[str, object]) -> bool:
    """Whether a suite line is a conversation script rather than a probe."""
    return "turns" in value


def read_scripts(path: Path) -> tuple[list[tuple[int, ConversationScript]], list[Problem]]:
    """Every valid conversation script in a suite file, with its line, and their problems."""
    name = str(path)
    lines, _ = read_json_lines(path)  # line-level problems are read_suite's to report
    scripts: list[tuple[int, ConversationScript]] = []
    problems: list[Problem] = []
    first_line: dict[str, int] = {}
    for item in (i for i in lines if is_script(i.value)):
        problems += unknown_keys(name, item.line, item.value, SCRIPT_KEYS)
        turns = item.value.get("turns")
        if isinstance(turns, list):
            for index, turn in enumerate(turns):
                if isinstance(turn, dict):
                    problems += unknown_keys(name, item.line, turn, TURN_KEYS, f"turns[{index}]")
        try:
            script = msgspec.convert(item.value, ConversationScript)
        except msgspec.ValidationError as exc:
            problems.append(error(name, item.line, friendly_validation(str(exc))))
            continue
        found = []
        if not script.id.strip():
            found.append("id: must not be empty")
        if script.id in first_line:
            found.append(f"id: {script.id!r} is already used on line {first_line[script.id]}")
        first_line.setdefault(script.id, item.line)
        if len(script.turns) < 2:
            found.append("turns: a conversation script needs at least 2 user turns")
        for index, turn in enumerate(script.turns):
            if not turn.content.strip():
                found.append(f"turns[{index}].content: empty user turn")
            if turn.category not in ("general", *FAILURE_MODES):
                found.append(
                    f"turns[{index}].category: {turn.category!r} is not general or one of "
                    + ", ".join(FAILURE_MODES)
                )
        problems += [error(name, item.line, text) for text in found]
        if not found:
            scripts.append((item.line, script))
    return scripts, problems


def load_suite(path: Path) -> tuple[list[EvalCase], list[Problem]]:
    """Every valid case in an eval suite and every problem, as file:line; never raises."""
    numbered, problems = read_suite(path)
    return [case for _, case in numbered], problems


def read_suite(path: Path) -> tuple[list[tuple[int, EvalCase]], list[Problem]]:
    """Like `load_suite`, with each valid case's line number."""
    name = str(path)
    lines, problems = read_json_lines(path)
    cases: list[tuple[int, EvalCase]] = []
    first_line: dict[str, int] = {}
    for item in lines:
        if is_script(item.value):
            continue  # a conversation script: `read_scripts` reads and checks it
        problems += unknown_keys(name, item.line, item.value, CASE_KEYS)
        messages = item.value.get("messages")
        if isinstance(messages, list):
            for index, message in enumerate(messages):
                if isinstance(message, dict):
                    where = f"messages[{index}]"
                    problems += unknown_keys(name, item.line, message, MESSAGE_KEYS, where)
        try:
            case = msgspec.convert(item.value, EvalCase)
        except msgspec.ValidationError as exc:
            problems.append(error(name, item.line, friendly_validation(str(exc))))
            continue
        found = case_problems(case)
        if case.id in first_line:
            found.append(f"id: {case.id!r} is already used on line {first_line[case.id]}")
        first_line.setdefault(case.id, item.line)
        problems += [error(name, item.line, text) for text in found]
        if case.category == "multi_turn" and len(case.messages) < 3:
            problems.append(warning(name, item.line, "a multi_turn probe has only one user turn"))
        if not found:
            cases.append((item.line, case))
    return cases, problems


def case_problems(case: EvalCase) -> list[str]:
    """Everything wrong with one decoded case."""
    problems: list[str] = []
    if not case.id.strip():
        problems.append("id: must not be empty")
    if case.category not in CATEGORIES:
        problems.append(f"category: {case.category!r} is not one of {', '.join(CATEGORIES)}")
    problems += turn_order_problems(case.messages, last="user")
    problems += [
        f"messages[{i}].content: empty {m.role} turn"
        for i, m in enumerate(case.messages)
        if not m.content.strip()
    ]
    for key in ("must_include_any", "must_not_include"):
        if any(not phrase.strip() for phrase in getattr(case, key)):
            problems.append(f"{key}: holds an empty phrase")
    if case.length and (
        len(case.length) != 2 or case.length[0] < 0 or case.length[0] > case.length[1]
    ):
        problems.append(f"length: {list(case.length)} must be [min_words, max_words], min <= max")
    return problems + pair_problems(case)


def pair_problems(case: EvalCase) -> list[str]:
    """What is wrong with a case's contrast replies (`chosen` and `rejected`), if it has any."""
    if not case.chosen and not case.rejected:
        return []
    problems: list[str] = []
    if not case.chosen.strip():
        problems.append("chosen: empty; a case with rejected replies needs the good one")
    if not case.rejected:
        problems.append("rejected: empty; a case with a chosen reply needs bad ones to compare")
    seen: dict[str, int] = {}
    for index, reply in enumerate(case.rejected):
        key = " ".join(reply.split()).casefold()
        if not key:
            problems.append(f"rejected[{index}]: empty reply")
        elif key == " ".join(case.chosen.split()).casefold():
            problems.append(f"rejected[{index}]: the same reply as chosen")
        elif key in seen:
            problems.append(f"rejected[{index}]: the same reply as rejected[{seen[key]}]")
        seen.setdefault(key, index)
    return problems


def script_probes(
    scripts: list[tuple[int, ConversationScript]],
) -> list[tuple[int, EvalCase]]:
    """Each scripted user turn as a one-turn probe (to check it is held out from training)."""
    return [
        (line, EvalCase(f"{script.id} turn {i + 1}", t.category, (Message("user", t.content),)))
        for line, script in scripts
        for i, t in enumerate(script.turns)
    ]
