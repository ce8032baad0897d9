"""`dataset_stats`: what a dataset will teach, measured before training.

Reply lengths (the original persona experiment had every reply at 52-76 words and its model
learned that length as "correct"), failure-mode coverage, formulaic openers and phrases, the
card's catchphrases, single- vs multi-turn, and duplicates. Pure Python: safe for the TUI.
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec

from .card import PersonaCard
from .records import (
    FAILURE_MODES,
    Message,
    PreferenceRecord,
    Record,
    prompt_text,
    replies,
    user_turns,
)
from .similar import normalise, similar_pairs
from .tokens import ChatTokenizer, text_tokens

WORD_BAND = 20
"""Width of a reply-length band in words, in the histogram and without a card."""
BANDS = 9
"""A card's `reply_words` range is cut into this many bands (20 words each for [20, 200])."""
MIN_BAND = 5
TOKEN_BAND = 32
UNIFORM_CV = 0.25
"""Below this coefficient of variation, reply lengths count as uniform."""
MAX_BAND_SHARE = 0.35
MIN_FAILURE_SHARE = 0.15
OUTSIDE_SHARE = 0.1
"""More than this share of replies outside the card's `reply_words` is worth a warning."""
DOMINANT = 0.2
"""A phrase, opener or catchphrase in more than this share of replies is a formula."""
TOP = 10

_STOPWORD_TEXT = """
a an and are as at be but by can do does for from had has have he her him his how i if in into is
it its me my no not of on or our she so that the their them then there they this to up us was we
were what when where which who why will with you your yes i'm it's that's don't i'll
"""
_STOPWORDS = frozenset(_STOPWORD_TEXT.split())
_WORD = re.compile(r"\w+(?:'\w+)*")


class Band(msgspec.Struct, frozen=True):
    """Values in `[low, high)` and how many there are."""

    low: int
    high: int
    count: int


class Lengths(msgspec.Struct, frozen=True):
    """Summary and histogram of reply lengths in one unit (words or tokens)."""

    unit: str
    count: int
    min: int
    max: int
    mean: float
    median: float
    stdev: float
    cv: float
    """Coefficient of variation: stdev / mean."""
    histogram: tuple[Band, ...]


class Share(msgspec.Struct, frozen=True):
    """A label, how often it occurs, and that as a share of its whole."""

    text: str
    count: int
    share: float


class PreferenceStats(msgspec.Struct, frozen=True):
    """Preference pairs (OpenAI's DPO format): how many, and how their two replies differ."""

    pairs: int
    preferred_words: float
    """Mean words of the preferred replies."""
    non_preferred_words: float
    """Mean words of the non-preferred replies."""
    longer_non_preferred: float
    """Share of pairs whose non-preferred reply is the longer one (a length bias if near 0 or 1)."""
    tags: tuple[Share, ...]
    """Tags of the pairs, as a share of pairs."""
    preferred_openers: tuple[Share, ...] = ()
    """The first two words of the preferred replies, most used first, as a share of pairs."""
    non_preferred_openers: tuple[Share, ...] = ()
    """The same for the non-preferred replies. One opening in many of them teaches a preference
    method to avoid that opening more than the content, and the model moves to its next favourite
    one."""


def preference_stats(records: Sequence[Record]) -> PreferenceStats | None:
    """Counts and reply lengths of the preference pairs, or None when there are none."""
    pairs = [r for r in records if isinstance(r, PreferenceRecord)]
    if not pairs:
        return None
    good = [len(_text(r.preferred_output).split()) for r in pairs]
    bad = [len(_text(r.non_preferred_output).split()) for r in pairs]
    counts = Counter(tag for r in pairs for tag in dict.fromkeys(r.tags))
    return PreferenceStats(
        pairs=len(pairs),
        preferred_words=round(statistics.fmean(good), 2),
        non_preferred_words=round(statistics.fmean(bad), 2),
        longer_non_preferred=round(
            sum(b > g for g, b in zip(good, bad, strict=True)) / len(pairs), 3
        ),
        tags=tuple(Share(t, c, c / len(pairs)) for t, c in sorted(counts.items(), key=_by_count)),
        preferred_openers=_top(_opener(_text(r.preferred_output)) for r in pairs),
        non_preferred_openers=_top(_opener(_text(r.non_preferred_output)) for r in pairs),
    )


def _text(messages: Sequence[Message]) -> str:
    return " ".join(m.content for m in messages)


class DatasetStats(msgspec.Struct, frozen=True):
    """Everything `persona data stats` shows, as one value the TUI can render."""

    records: int
    single_turn: int
    multi_turn: int
    replies: int
    words: Lengths
    tokens: Lengths | None
    tags: tuple[Share, ...]
    """Every tag, as a share of records."""
    failure_modes: tuple[Share, ...]
    """The four failure modes (even at zero), as a share of records."""
    failure_share: float
    """Records tagged with any failure mode, as a share of records."""
    openers: tuple[Share, ...]
    """The commonest first two words of replies, as a share of replies."""
    phrases: tuple[Share, ...]
    """The commonest 2-4 word phrases, by share of replies that use them."""
    catchphrases: tuple[Share, ...]
    """The card's catchphrases and markers, by share of replies that use them."""
    duplicate_prompts: int
    near_duplicate_prompts: int
    duplicate_replies: int
    warnings: tuple[str, ...]
    preference: PreferenceStats | None = None
    """Preference pairs among the records (None when there are none)."""
    fullest_band: Band | None = None
    """The reply-length band holding the most replies, its width taken from the card's
    `reply_words` (`length_band`); None without replies."""
    outside_range: float = 0.0
    """Share of replies outside the card's `reply_words` range (0 without a card)."""
    markers: tuple[str, ...] = ()
    """The card's markers: wanted words, never counted as a formula."""


def dataset_stats(
    records: Sequence[Record],
    card: PersonaCard | None = None,
    tokenizer: ChatTokenizer | None = None,
) -> DatasetStats:
    """Measure a dataset; `card` adds catchphrase rates, `tokenizer` adds token lengths."""
    texts = [reply for record in records for reply in replies(record)]
    words = lengths("words", [len(t.split()) for t in texts], WORD_BAND)
    tokens = None
    if tokenizer is not None:
        tokens = lengths("tokens", [text_tokens(tokenizer, t) for t in texts], TOKEN_BAND)
    n = max(len(records), 1)
    tag_counts = Counter(tag for record in records for tag in dict.fromkeys(record.tags))
    tags = tuple(Share(t, c, c / n) for t, c in sorted(tag_counts.items(), key=_by_count))
    modes = tuple(Share(m, tag_counts[m], tag_counts[m] / n) for m in FAILURE_MODES)
    failing = sum(1 for r in records if set(r.tags) & set(FAILURE_MODES))
    multi = sum(1 for r in records if user_turns(r) > 1)
    marks = (card.style.catchphrases + card.style.markers) if card else []
    word_counts = [len(t.split()) for t in texts]
    band = length_band(card.style.reply_words if card else None)
    fullest = None
    if word_counts:
        per_band = Counter(c // band for c in word_counts)
        top, count = max(sorted(per_band.items()), key=lambda item: item[1])
        fullest = Band(top * band, (top + 1) * band, count)
    outside = 0.0
    if card is not None and word_counts:
        low, high = card.style.reply_words
        outside = sum(not low <= c <= high for c in word_counts) / len(word_counts)
    pairs = similar_pairs([prompt_text(r) for r in records])
    exact_later = {p.right for p in pairs if p.exact}
    near_later = {p.right for p in pairs if not p.exact} - exact_later
    reply_norms = Counter(normalise(t) for t in texts)
    stats = DatasetStats(
        records=len(records),
        single_turn=len(records) - multi,
        multi_turn=multi,
        replies=len(texts),
        words=words,
        tokens=tokens,
        tags=tags,
        failure_modes=modes,
        failure_share=failing / n,
        openers=_top((_opener(t) for t in texts), len(texts)),
        phrases=_phrases(texts),
        catchphrases=tuple(_usage(texts, m) for m in marks),
        duplicate_prompts=len(exact_later),
        near_duplicate_prompts=len(near_later),
        duplicate_replies=sum(c - 1 for c in reply_norms.values()),
        warnings=(),
        preference=preference_stats(records),
        fullest_band=fullest,
        outside_range=outside,
        markers=tuple(card.style.markers) if card else (),
    )
    return msgspec.structs.replace(stats, warnings=tuple(stats_warnings(stats)))


def lengths(unit: str, values: Sequence[int], band: int) -> Lengths:
    """Summary statistics and a fixed-width histogram of lengths."""
    if not values:
        return Lengths(unit, 0, 0, 0, 0.0, 0.0, 0.0, 0.0, ())
    mean = statistics.fmean(values)
    stdev = statistics.pstdev(values)
    counts = Counter(v // band for v in values)
    bands = tuple(
        Band(k * band, (k + 1) * band, counts.get(k, 0))
        for k in range(min(counts), max(counts) + 1)
    )
    return Lengths(
        unit=unit,
        count=len(values),
        min=min(values),
        max=max(values),
        mean=round(mean, 2),
        median=float(statistics.median(values)),
        stdev=round(stdev, 2),
        cv=round(stdev / mean, 3) if mean else 0.0,
        histogram=bands,
    )


def stats_warnings(stats: DatasetStats) -> list[str]:
    """What in these numbers is likely to teach the model the wrong thing."""
    found: list[str] = []
    words = stats.words
    if words.count >= 5 and words.cv < UNIFORM_CV:
        found.append(
            f"reply lengths are uniform (CV {words.cv:.2f}, {words.min}-{words.max} words): "
            "the model will learn one length as correct"
        )
    widest = stats.fullest_band
    if words.count and widest is not None and widest.count / words.count > MAX_BAND_SHARE:
        width = widest.high - widest.low
        found.append(
            f"{widest.count / words.count:.0%} of replies are {widest.low}-{widest.high - 1} "
            f"words (more than {MAX_BAND_SHARE:.0%} in one {width}-word band)"
        )
    if stats.outside_range > OUTSIDE_SHARE:
        found.append(
            f"{stats.outside_range:.0%} of replies are outside the card's reply_words range"
        )
    if stats.records and stats.failure_share < MIN_FAILURE_SHARE:
        found.append(
            f"failure-mode examples are {stats.failure_share:.0%} of records "
            f"(aim for at least {MIN_FAILURE_SHARE:.0%})"
        )
    found += [f"no records tagged {m.text!r}" for m in stats.failure_modes if not m.count]
    wanted = {m.casefold() for m in stats.markers}
    for kind, shares in (
        ("card phrase", stats.catchphrases),
        ("opener", stats.openers),
        ("phrase", stats.phrases),
    ):
        found += [
            f"{kind} {s.text!r} is in {s.share:.0%} of replies: one formula dominates"
            for s in shares
            if s.share > DOMINANT and s.count > 1 and not _holds_marker(s.text, wanted)
        ]
    # The preferred replies are among the replies whose openers are checked above; the
    # non-preferred ones are not.
    rejected = stats.preference.non_preferred_openers if stats.preference else ()
    if rejected and rejected[0].share > DOMINANT and rejected[0].count > 1:
        found.append(
            f"{rejected[0].share:.0%} of non-preferred replies open with {rejected[0].text!r}: a "
            "preference method learns that opening more than the content; vary it or add pairs "
            "without it"
        )
    if stats.duplicate_prompts or stats.near_duplicate_prompts:
        found.append(
            f"{stats.duplicate_prompts} duplicate and {stats.near_duplicate_prompts} "
            "near-duplicate prompts"
        )
    return found


def length_band(reply_words: Sequence[int] | None) -> int:
    """Words per length band: the card's `reply_words` range in `BANDS` bands, else WORD_BAND."""
    if not reply_words or len(reply_words) != 2:
        return WORD_BAND
    return max(MIN_BAND, round((reply_words[1] - reply_words[0]) / BANDS))


def _holds_marker(text: str, markers: set[str]) -> bool:
    # A card's marker is the voice it asks for ("map" for a map seller), not a formula.
    return " ".join(_words(text)) in {" ".join(_words(m)) for m in markers}


def _by_count(item: tuple[str, int]) -> tuple[int, str]:
    return (-item[1], item[0])


def _top(items: Iterable[str], total: int | None = None) -> tuple[Share, ...]:
    values = [i for i in items if i]
    counts = Counter(values)
    whole = total or max(len(values), 1)
    ranked = sorted(counts.items(), key=_by_count)[:TOP]
    return tuple(Share(text, count, count / whole) for text, count in ranked)


def _words(text: str) -> list[str]:
    # Unlike `normalise`, keep apostrophes inside words: "don't know", not "don t know".
    return _WORD.findall(unicodedata.normalize("NFKC", text).casefold().replace("’", "'"))


def _opener(text: str) -> str:
    return " ".join(_words(text)[:2])


def _phrases(texts: Sequence[str]) -> tuple[Share, ...]:
    counts: Counter[str] = Counter()
    for text in texts:
        words = _words(text)
        seen = {
            " ".join(words[i : i + n])
            for n in (2, 3, 4)
            for i in range(len(words) - n + 1)
            if sum(w not in _STOPWORDS for w in words[i : i + n]) >= 2
        }
        counts.update(seen)
    ranked = sorted(
        ((p, c) for p, c in counts.items() if c > 1),
        key=lambda item: (-item[1], -len(item[0]), item[0]),
    )[: TOP * 4]
    kept: list[tuple[str, int]] = []
    for phrase, count in ranked:
        # Windows of one repeated sentence overlap; the first (longest) stands for them all.
        if not any(count == c and _overlap(phrase, p) for p, c in kept):
            kept.append((phrase, count))
    whole = max(len(texts), 1)
    return tuple(Share(text, count, count / whole) for text, count in kept[:TOP])


def _overlap(a: str, b: str) -> bool:
    if a in b or b in a:
        return True
    x, y = a.split(), b.split()
    return any(x[-k:] == y[:k] or y[-k:] == x[:k] for k in range(1, min(len(x), len(y))))


def _usage(texts: Sequence[str], phrase: str) -> Share:
    pattern = re.compile(rf"(?<!\w){re.escape(phrase.casefold())}(?!\w)")
    count = sum(1 for t in texts if pattern.search(t.casefold()))
    return Share(phrase, count, count / max(len(texts), 1))
