"""Per-prompt criteria of an eval suite, including rules for each expected category.

The category rules are data, not code: each names phrases of which a reply must contain at least
one (and, for `clarify`, that it asks a question). `off_topic` additionally counts the persona's
own markers as steering back. The rules are deliberately lenient on wording and strict on intent.
The built-in rules fit a children's persona; a card's `[criteria.<category>]` tables change them
for its own persona (`rules_for`), and every scorer of a persona's replies uses those.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from .card import PersonaCard
from .metrics import contains, echo_kind, word_count
from .rules import CATEGORY_RULES, CategoryRule, merge_rule


def rules_for(card: PersonaCard) -> dict[str, CategoryRule]:
    """The category rules a persona's replies are held to: the built-ins, changed by the card."""
    rules = dict(CATEGORY_RULES)
    for category, change in card.criteria.items():
        rules[category] = merge_rule(rules.get(category), change)
    return rules


class CriteriaResult(msgspec.Struct, frozen=True):
    """Whether one reply met its prompt's criteria, and why not."""

    passed: bool
    failures: tuple[str, ...] = ()


def check_reply(
    reply: str,
    *,
    category: str,
    must_include_any: Sequence[str] = (),
    must_not_include: Sequence[str] = (),
    length: Sequence[int] = (),
    persona_markers: Sequence[str] = (),
    system_prompt: str = "",
    user_message: str = "",
    rules: Mapping[str, CategoryRule] = CATEGORY_RULES,
) -> CriteriaResult:
    """Judge one reply against its case's criteria and its category's rule; a reply that
    recites the system prompt or parrots the user's message fails too.

    `rules` are the persona's (`rules_for(card)`); the default is the built-in set.
    """
    failures: list[str] = []
    echo = echo_kind(reply, system_prompt, user_message)
    if echo == "system":
        failures.append("repeats the system prompt")
    elif echo == "user":
        failures.append("repeats the user's message")
    if must_include_any and not any(contains(reply, p) for p in must_include_any):
        failures.append("mentions none of: " + ", ".join(must_include_any))
    for phrase in must_not_include:
        if contains(reply, phrase):
            failures.append(f"mentions {phrase!r}")
    if len(length) == 2:
        n = word_count(reply)
        if n < length[0]:
            failures.append(f"too short: {n} words < {length[0]}")
        elif n > length[1]:
            failures.append(f"too long: {n} words > {length[1]}")
    rule = rules.get(category)
    if rule is not None:
        if rule.asks_question and "?" not in reply:
            failures.append(f"{category}: does not ask a question")
        phrases = list(rule.any_of)
        if rule.use_persona_markers:
            phrases += list(persona_markers)
        if phrases and not any(contains(reply, p) for p in phrases):
            failures.append(f"{category}: {rule.meaning or 'mentions none of its rule phrases'}")
    return CriteriaResult(not failures, tuple(failures))
