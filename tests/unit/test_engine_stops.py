"""Stop strings over streamed text: never returned, partial matches held back until settled."""

from __future__ import annotations

from server.engine.stops import StopText


def stream(stops: tuple[str, ...], pieces: list[str]) -> tuple[list[str], bool]:
    """What each piece releases, and whether a stop string was reached."""
    filt = StopText(stops)
    shown = []
    for piece in pieces:
        text, hit = filt.feed(piece)
        shown.append(text)
        if hit:
            return shown, True
    shown.append(filt.flush())
    return shown, False


def test_a_stop_split_across_pieces_is_never_shown() -> None:
    shown, hit = stream(("END",), ["Hello E", "N", "D and more"])
    assert hit
    assert shown == ["Hello ", "", ""]


def test_held_text_is_released_when_the_match_fails() -> None:
    shown, hit = stream(("END",), ["Hello E", "N", "o"])
    assert not hit
    assert "".join(shown) == "Hello ENo"
    assert shown[:2] == ["Hello ", ""]


def test_the_earliest_of_several_stops_wins() -> None:
    shown, hit = stream(("world", "lo w"), ["hello world"])
    assert hit
    assert shown == ["hel"]


def test_an_unfinished_prefix_at_the_end_is_flushed() -> None:
    shown, hit = stream(("###",), ["a#", "#"])
    assert not hit
    assert "".join(shown) == "a##"


def test_no_stops_passes_everything_through() -> None:
    shown, hit = stream((), ["a", "b"])
    assert shown == ["a", "b", ""]
    assert not hit
