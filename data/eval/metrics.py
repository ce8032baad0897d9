"""Persona-quality metrics: pure functions over reply texts, with no I/O.

Each metric takes replies (and what it needs from the card or the training set) and returns a
frozen Struct, so the runner, the report, the sweep and the TUI share one definition.
"""

from __future__ import annotations

import re
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec

WORD = re.compile(r"[a-z0-9']+")
MEMO_N = 8
"""A reply sharing a word span this long with a training reply counts as memorised."""


def words(text: str) -> list[str]:
    """Lowercased word tokens (letters, digits, apostrophes)."""
    return WORD.findall(text.lower())


def word_count(text: str) -> int:
    """Whitespace-separated word count, as a person would count."""
    return len(text.split())


class LengthStats(msgspec.Struct, frozen=True):
    """Reply length against the card's target range and the training distribution."""

    mean: float
    stdev: float
    cv: float
    in_range: float
    """Share of replies whose word count is inside the card's [min, max]."""
    too_short: float
    too_long: float
    ks: float | None
    """Two-sample Kolmogorov-Smirnov statistic against training reply lengths (0 = same)."""


def ks_statistic(a: Sequence[float], b: Sequence[float]) -> float:
    """The two-sample KS statistic: the largest gap between the two empirical CDFs."""
    if not a or not b:
        return 0.0
    xs, ys = sorted(a), sorted(b)
    i = j = 0
    gap = 0.0
    while i < len(xs) and j < len(ys):
        value = min(xs[i], ys[j])
        while i < len(xs) and xs[i] == value:
            i += 1
        while j < len(ys) and ys[j] == value:
            j += 1
        gap = max(gap, abs(i / len(xs) - j / len(ys)))
    return gap


def length_stats(
    replies: Sequence[str], target: Sequence[int], reference: Sequence[int] = ()
) -> LengthStats:
    """Length distribution of replies vs a [min, max] word range and reference lengths."""
    counts = [word_count(r) for r in replies]
    if not counts:
        return LengthStats(0.0, 0.0, 0.0, 0.0, 0.0, 0.0, None)
    low, high = target[0], target[1]
    mean = statistics.fmean(counts)
    stdev = statistics.pstdev(counts)
    n = len(counts)
    return LengthStats(
        mean=mean,
        stdev=stdev,
        cv=stdev / mean if mean else 0.0,
        in_range=sum(low <= c <= high for c in counts) / n,
        too_short=sum(c < low for c in counts) / n,
        too_long=sum(c > high for c in counts) / n,
        ks=ks_statistic(counts, list(reference)) if reference else None,
    )


class Repetition(msgspec.Struct, frozen=True):
    """How much a reply repeats itself."""

    looping: bool
    """An n-gram (3-8 words) repeats 3+ times and covers a large share of the reply."""
    repeated_share: float
    """Share of the reply's words inside repeated 4-grams."""
    distinct_1: float
    distinct_2: float


def _ngrams(tokens: Sequence[str], n: int) -> list[tuple[str, ...]]:
    return [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]


def distinct_n(tokens: Sequence[str], n: int) -> float:
    """Unique n-grams over all n-grams (1.0 for an empty reply)."""
    grams = _ngrams(tokens, n)
    return len(set(grams)) / len(grams) if grams else 1.0


def repetition(text: str) -> Repetition:
    """Detect loops: the failure mode of a model run on past its end of turn."""
    tokens = words(text)
    looping = False
    for n in range(3, 9):
        counts = Counter(_ngrams(tokens, n))
        if not counts:
            break
        gram, times = counts.most_common(1)[0]
        if times >= 3 and times * n >= 0.3 * len(tokens):
            looping = True
            break
    covered: set[int] = set()
    grams = _ngrams(tokens, 4)
    seen = Counter(grams)
    for i, gram in enumerate(grams):
        if seen[gram] > 1:
            covered.update(range(i, i + 4))
    return Repetition(
        looping=looping,
        repeated_share=len(covered) / len(tokens) if tokens else 0.0,
        distinct_1=distinct_n(tokens, 1),
        distinct_2=distinct_n(tokens, 2),
    )


class MemoIndex:
    """Every `MEMO_N`-word span of the training replies, indexed once."""

    def __init__(self, training_replies: Iterable[str]) -> None:
        self.texts = [words(t) for t in training_replies]
        """Tokenised training replies."""
        self.spans: dict[tuple[str, ...], list[int]] = {}
        """Each n-gram to the training replies it occurs in."""
        for index, tokens in enumerate(self.texts):
            for gram in set(_ngrams(tokens, MEMO_N)):
                self.spans.setdefault(gram, []).append(index)

    def longest_shared(self, text: str) -> int:
        """The longest word span the text shares with any training reply (0 if under MEMO_N)."""
        tokens = words(text)
        best = 0
        i = 0
        while i <= len(tokens) - MEMO_N:
            hits = self.spans.get(tuple(tokens[i : i + MEMO_N]))
            if not hits:
                i += 1
                continue
            longest = MEMO_N
            for index in hits:
                source = self.texts[index]
                for start in _find_all(source, tokens[i : i + MEMO_N]):
                    length = MEMO_N
                    while (
                        i + length < len(tokens)
                        and start + length < len(source)
                        and tokens[i + length] == source[start + length]
                    ):
                        length += 1
                    longest = max(longest, length)
            best = max(best, longest)
            i += 1
        return best


def _find_all(haystack: Sequence[str], needle: Sequence[str]) -> Iterable[int]:
    n = len(needle)
    first = needle[0]
    for start, token in enumerate(haystack):
        if token == first and list(haystack[start : start + n]) == list(needle):
            yield start


class Memorisation(msgspec.Struct, frozen=True):
    """How much of the replies is copied from training replies."""

    share: float
    """Share of replies with a shared span of MEMO_N words or more."""
    longest: int
    """The longest shared span over all replies, in words."""


def memorisation(replies: Sequence[str], index: MemoIndex) -> Memorisation:
    """Memorisation of replies against a training index."""
    spans = [index.longest_shared(r) for r in replies]
    if not spans:
        return Memorisation(0.0, 0)
    return Memorisation(sum(s >= MEMO_N for s in spans) / len(spans), max(spans))


class Markers(msgspec.Struct, frozen=True):
    """How much of the persona's voice shows."""

    catchphrase_rate: float
    """Share of replies using at least one catchphrase."""
    marker_rate: float
    """Share of replies using at least one catchphrase or marker."""
    banned_rate: float
    """Share of replies containing a banned phrase."""
    banned_hits: dict[str, int]


def contains(text: str, phrase: str) -> bool:
    """Case-insensitive phrase match on word boundaries where the phrase starts/ends a word."""
    pattern = re.escape(phrase.lower())
    if phrase[:1].isalnum():
        pattern = r"\b" + pattern
    if phrase[-1:].isalnum():
        pattern += r"\b"
    return re.search(pattern, text.lower()) is not None


def markers(
    replies: Sequence[str], catchphrases: Sequence[str], marks: Sequence[str], banned: Sequence[str]
) -> Markers:
    """Catchphrase, marker and banned-phrase rates over replies."""
    n = len(replies) or 1
    hits: Counter[str] = Counter()
    catch = voice = bad = 0
    for reply in replies:
        has_catch = any(contains(reply, p) for p in catchphrases)
        catch += has_catch
        voice += has_catch or any(contains(reply, m) for m in marks)
        found = [p for p in banned if contains(reply, p)]
        hits.update(found)
        bad += bool(found)
    return Markers(catch / n, voice / n, bad / n, dict(hits))


ECHO_N = 8
"""A reply sharing a span this long with the system prompt echoes it."""
ECHO_MIN_USER = 6
"""User messages shorter than this may be restated freely ("What is a crab?")."""


def echoes(reply: str, source: str, n: int = ECHO_N, min_words: int = 1) -> bool:
    """Whether `reply` repeats `n` consecutive words of `source` (all of it, if shorter)."""
    src = words(source)
    if len(src) < min_words or not src:
        return False
    k = min(n, len(src))
    spans = set(_ngrams(src, k))
    return any(gram in spans for gram in _ngrams(words(reply), k))


def echo_kind(reply: str, system_prompt: str, user_message: str) -> str | None:
    """`system` if the reply recites the system prompt, `user` if it parrots the user's
    message, else None."""
    if system_prompt and echoes(reply, system_prompt):
        return "system"
    if user_message and echoes(reply, user_message, min_words=ECHO_MIN_USER):
        return "user"
    return None


class TurnScores(msgspec.Struct, frozen=True):
    """Persona metrics over every reply at one turn index of the drift conversations."""

    turn: int
    """1-based turn index."""
    replies: int
    completion_rate: float
    marker_rate: float
    catchphrase_rate: float
    banned_rate: float
    criteria_pass: float
    length_in_range: float
    echo_rate: float


DRIFT_METRICS = (
    "marker_rate",
    "catchphrase_rate",
    "banned_rate",
    "criteria_pass",
    "length_in_range",
    "echo_rate",
    "completion_rate",
)
"""The per-turn metrics whose trend a drift report shows."""


class Drift(msgspec.Struct, frozen=True):
    """How one model's persona metrics move over a long conversation."""

    model: str
    turns: list[TurnScores]
    change: dict[str, float]
    """Last turn minus first turn, per metric."""
    slope: dict[str, float]
    """Least-squares slope per turn, per metric."""


def slope(values: Sequence[float]) -> float:
    """The least-squares slope of values against 1, 2, ..., n (0 for fewer than 2)."""
    n = len(values)
    if n < 2:
        return 0.0
    mean_x = (n + 1) / 2
    mean_y = statistics.fmean(values)
    num = sum((i + 1 - mean_x) * (v - mean_y) for i, v in enumerate(values))
    den = sum((i + 1 - mean_x) ** 2 for i in range(n))
    return num / den


def drift(model: str, turns: Sequence[TurnScores]) -> Drift:
    """The first-to-last change and the slope of every drift metric."""
    series = {m: [float(getattr(t, m)) for t in turns] for m in DRIFT_METRICS}
    return Drift(
        model=model,
        turns=list(turns),
        change={m: (v[-1] - v[0]) if v else 0.0 for m, v in series.items()},
        slope={m: slope(v) for m, v in series.items()},
    )


OPENING_WORDS = 3
"""Replies are grouped by their first this many words."""
OPENING_SHARE = 0.15
"""An opening used by more than this share of replies is a tic ("I don't know" collapse)."""


class Openings(msgspec.Struct, frozen=True):
    """How alike replies begin: the commonest first words and the openings used too often."""

    top: str
    """The commonest opening (first `OPENING_WORDS` words, lowercased)."""
    share: float
    """Share of replies that begin with it."""
    flagged: dict[str, float]
    """Every opening used by more than `OPENING_SHARE` of the replies, with its share."""


def openings(replies: Sequence[str]) -> Openings:
    """The style share of replies: the commonest opening and every over-used one.

    Only replies of at least `OPENING_WORDS` words are grouped; the share is of all replies.
    """
    counts = Counter(
        " ".join(w[:OPENING_WORDS]) for w in (words(r) for r in replies) if len(w) >= OPENING_WORDS
    )
    if not counts or not replies:
        return Openings("", 0.0, {})
    n = len(replies)
    top, count = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[0]
    flagged = {o: c / n for o, c in sorted(counts.items()) if c / n > OPENING_SHARE and c > 1}
    return Openings(top, count / n, flagged)
