"""Checks of an eval suite's contrast replies (`chosen`, `rejected`) that need the card or the
tokenizer: control-token text, reply lengths, and chosen against rejected length.

A rejected reply much shorter or longer than its chosen one lets length alone decide the pair
(a length-normalised score still favours a short, generic reply), so the gap is a warning.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..problem import Problem, error, warning
from ..tokens import control_token_text
from .metrics import word_count
from .suite import EvalCase

LENGTH_RATIO = 2.0
"""A rejected reply more than this many times longer or shorter than the chosen one is flagged."""


def pair_reply_problems(
    file: str,
    cases: Sequence[tuple[int, EvalCase]],
    reply_words: Sequence[int] = (),
    tokenizer: object | None = None,
) -> list[Problem]:
    """Every problem of the cases' contrast replies, as file:line.

    `reply_words` (the card's `[min, max]`) is the length range for a case without `length`;
    `tokenizer` adds the control-token check.
    """
    problems: list[Problem] = []
    for line, case in cases:
        if not case.chosen:
            continue
        band = tuple(case.length or reply_words)
        replies = [("chosen", case.chosen)] + [
            (f"rejected[{i}]", text) for i, text in enumerate(case.rejected)
        ]
        for where, text in replies:
            if tokenizer is not None:
                found = control_token_text(tokenizer, text)
                if found:
                    spelled = ", ".join(repr(s) for s in found)
                    problems.append(
                        error(file, line, f"{where}: holds control-token text {spelled}")
                    )
            n = word_count(text)
            if len(band) == 2 and not band[0] <= n <= band[1]:
                problems.append(
                    warning(file, line, f"{where}: {n} words, outside [{band[0]}, {band[1]}]")
                )
        good = max(word_count(case.chosen), 1)
        for index, text in enumerate(case.rejected):
            bad = max(word_count(text), 1)
            if max(good, bad) > LENGTH_RATIO * min(good, bad):
                problems.append(
                    warning(
                        file,
                        line,
                        f"rejected[{index}]: {bad} words against chosen's {good}; pairs of "
                        "similar length keep length from deciding the score",
                    )
                )
    return problems
