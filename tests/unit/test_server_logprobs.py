"""Legacy logprobs: offsets in characters of the returned text, one entry per distinct token."""

from __future__ import annotations

from server.api.logprobs import TextOffsets, chat_logprobs, completion_logprobs
from server.engine.types import TokenLogprob


def entry(token: str, raw: bytes, top: tuple[tuple[str, float, bytes], ...] = ()) -> TokenLogprob:
    return TokenLogprob(token, -0.5, tuple(raw), tuple((t, lp, tuple(b)) for t, lp, b in top))


def test_offsets_count_characters_not_token_spellings() -> None:
    # "ꙮ" arrives as three byte tokens spelled `bytes:\xNN`; the text holds one character.
    items = [
        entry("bytes:\\xea", b"\xea"),
        entry("bytes:\\x99", b"\x99"),
        entry("bytes:\\xae", b"\xae"),
        entry(" a", b" a"),
        entry("!", b"!"),
    ]
    text = "Hi" + "ꙮ a!"
    got = completion_logprobs(items, TextOffsets("Hi"))
    assert got.text_offset == [2, 2, 2, 3, 5]
    assert all(o <= len(text) for o in got.text_offset)


def test_offsets_continue_across_streamed_pieces() -> None:
    offsets = TextOffsets("")
    first = completion_logprobs([entry("bytes:\\xea", b"\xea")], offsets)
    pair = [entry("bytes:\\x99", b"\x99"), entry("bytes:\\xae", b"\xae")]
    second = completion_logprobs(pair, offsets)
    third = completion_logprobs([entry("x", b"x")], offsets)
    assert first.text_offset + second.text_offset + third.text_offset == [0, 0, 0, 1]


def test_each_alternative_keeps_its_own_entry_and_bytes() -> None:
    top = (("bytes:\\xea", -1.0, b"\xea"), ("bytes:\\x99", -2.0, b"\x99"), ("A", -3.0, b"A"))
    legacy = completion_logprobs([entry("A", b"A", top)], TextOffsets(""))
    assert legacy.top_logprobs == [{"bytes:\\xea": -1.0, "bytes:\\x99": -2.0, "A": -3.0}]
    [chat] = chat_logprobs([entry("A", b"A", top)])
    assert [t.bytes for t in chat.top_logprobs] == [[0xEA], [0x99], [0x41]]
