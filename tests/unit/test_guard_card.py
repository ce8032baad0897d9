"""The card's `[guard]` table, the guard's labelled examples and the shipped children's set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from data.card import CardError, load_card, parse_card
from data.guard import (
    CHECK_SETS,
    CLEAR,
    FLAGGED,
    GENERAL_SETS,
    check_examples,
    general_categories,
    general_examples,
    label_of,
    record_examples,
    safety_dir,
    scored_set,
)
from data.personas import data_files, sample_personas_dir
from data.similar import cross_pairs, similar_pairs

BASE = 'name = "t"\nsystem_prompt = "You are T."\n'


def test_juni_and_vell_cards_carry_their_guards() -> None:
    juni = load_card(sample_personas_dir() / "juni")
    assert juni.guard is not None
    actions = {name: c.action for name, c in juni.guard.categories.items()}
    assert actions == {"boundary": "reply", "disclosure": "reply", "self_harm": "reply"}
    assert juni.guard.categories["boundary"].guidance  # used when a flagged reply is rewritten
    assert juni.guard.include == ["children"]
    assert juni.guard.check_replies is False  # a prompt-trained guard cannot judge replies
    for reply in juni.guard.categories["disclosure"].replies:
        assert "grown-up you trust" in reply
        assert "tide" not in reply.lower()
        assert "seashore" not in reply.lower()
    vell = load_card(sample_personas_dir() / "vell")
    assert vell.guard is not None
    assert list(vell.guard.categories) == ["boundary"]


def test_every_guard_problem_is_listed_with_its_path() -> None:
    card = BASE + (
        '[guard]\npolicy = ""\nthreshold = 1.5\ninclude = ["adults"]\ncheck_replies = true\n'
        '[guard.categories.boundary]\naction = "block"\n'
        '[guard.categories.disclosure]\naction = "reply"\n'
        '[guard.categories.clear]\naction = "steer"\nguidance = "x"\n'
        '[guard.categories.rude]\naction = "steer"\nreplies = ["", "ok"]\n'
    )
    with pytest.raises(CardError) as caught:
        parse_card(card)
    message = str(caught.value)
    for expected in (
        "guard.policy:",
        "guard.threshold: 1.5",
        "guard.include: 'adults'",
        "guard.categories.boundary.action: 'block'",
        "guard.categories.disclosure.replies: a 'reply' category needs",
        "guard.categories.clear: the name",
        "guard.categories.rude.guidance:",
        "guard.categories.rude.replies[0]: is empty",
        "guard.fallback_reply:",
    ):
        assert expected in message, expected
    assert message.count("persona.toml:") == 9


def test_unknown_guard_keys_are_named() -> None:
    card = BASE + '[guard]\npolicy = "p"\nthresold = 0.5\n[guard.categories.a]\naction="steer"\n'
    with pytest.raises(CardError, match=r"unknown key .guard\.thresold."):
        parse_card(card)


def test_labels_take_the_most_specific_guard_category() -> None:
    categories = ["boundary", "disclosure", "self_harm"]
    assert label_of(["disclosure", "self_harm", "feelings"], categories) == "self_harm"
    assert label_of(["boundary", "fire"], categories) == "boundary"
    assert label_of(["benign_near", "pirates"], categories) == CLEAR
    assert label_of([], categories) == CLEAR


def test_record_examples_read_the_last_user_turn(tmp_path: Path) -> None:
    rows = [
        {
            "messages": [
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "yo"},
                {"role": "user", "content": "can i try beer"},
                {"role": "assistant", "content": "no"},
            ],
            "tags": ["boundary", "multi_turn"],
        },
        {
            "messages": [
                {"role": "user", "content": "why do pirates have cannons"},
                {"role": "assistant", "content": "to..."},
            ],
            "tags": ["benign_near"],
        },
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + "not json\n")
    examples = record_examples(path, ["boundary"])
    assert [(e.text, e.label, e.tag, e.source) for e in examples] == [
        ("can i try beer", "boundary", "boundary", "train.jsonl:1"),
        ("why do pirates have cannons", CLEAR, "benign_near", "train.jsonl:2"),
    ]


def assert_prompt_lines(path: Path, at_least: int) -> None:
    """Every line of a shipped prompt set is exactly `{"prompt", "category"}`, a flagged
    category or clear, with a prompt that is neither empty nor padded."""
    lines = path.read_text().splitlines()
    assert len(lines) >= at_least
    for number, line in enumerate(lines, 1):
        item = json.loads(line)
        assert set(item) == {"prompt", "category"}, number
        assert item["category"] in (*FLAGGED, CLEAR), number
        assert item["prompt"].strip() == item["prompt"] != "", number


def test_the_shipped_children_set_keeps_its_format() -> None:
    assert_prompt_lines(safety_dir() / "children.jsonl", 900)
    assert general_categories(GENERAL_SETS) == ["boundary", "disclosure", "self_harm"]
    # A category the card does not watch counts as clear.
    only = general_examples("children", ["boundary"])
    assert {e.label for e in only} == {"boundary", CLEAR}


def test_the_shipped_children_set_has_no_near_duplicates() -> None:
    # A repeated prompt only weighs one example twice, and one under two categories teaches
    # the probe both answers.
    examples = general_examples("children")
    pairs = similar_pairs([e.text for e in examples])
    assert [(examples[p.left].source, examples[p.right].source) for p in pairs] == []
    counts = {c: sum(e.label == c for e in examples) for c in (CLEAR, *general_categories())}
    assert min(counts.values()) >= 50, counts


def training_prompts() -> list[tuple[str, str]]:
    """(text, `file:line`) of every prompt a shipped guard trains on: each sample persona's
    data, whatever its card includes, and every general set (`persona-guard`)."""
    found = [(e.text, e.source) for name in GENERAL_SETS for e in general_examples(name)]
    for folder in sorted(p for p in sample_personas_dir().iterdir() if p.is_dir()):
        if not (folder / "persona.toml").is_file():
            continue
        card = load_card(folder)
        categories = list(card.guard.categories) if card.guard else []
        for path in data_files(folder):
            found += [
                (e.text, f"{folder.name}/{e.source}") for e in record_examples(path, categories)
            ]
    return found


def test_the_check_set_keeps_the_format_and_its_own_words() -> None:
    assert_prompt_lines(safety_dir() / "children_check.jsonl", 150)
    check = check_examples()
    counts = {c: sum(e.label == c for e in check) for c in (CLEAR, *FLAGGED)}
    assert min(counts.values()) >= 10, counts
    inside = similar_pairs([e.text for e in check])
    assert [(check[p.left].source, check[p.right].source) for p in inside] == []


def test_no_check_line_is_near_any_training_prompt() -> None:
    # The check set is only honest while no guard has seen it or anything close to it. A
    # failure names the check line and the training line's place, not its text: rewrite the
    # check line.
    check = check_examples()
    training = training_prompts()
    assert len(training) >= 2000
    pairs = cross_pairs([e.text for e in check], [t for t, _ in training])
    found = [(check[p.left].source, check[p.left].text, training[p.right][1]) for p in pairs]
    assert found == []


def test_no_guard_trains_on_a_check_set() -> None:
    assert not set(CHECK_SETS) & set(GENERAL_SETS)
    card = BASE + (
        '[guard]\npolicy = "p"\ninclude = ["children", "children_check"]\n'
        '[guard.categories.boundary]\naction = "steer"\nguidance = "g"\n'
    )
    with pytest.raises(CardError, match=r"guard.include: 'children_check' is a check set"):
        parse_card(card)
    # The loader every include and `persona-guard` go through refuses it by name too.
    with pytest.raises(ValueError, match=r"children_check.jsonl is a check set"):
        general_examples("children_check")
    with pytest.raises(ValueError, match=r"'children' is not a check set"):
        check_examples("children")


def test_a_check_set_is_scored_with_self_harm_flagged(tmp_path: Path) -> None:
    path = tmp_path / "check.jsonl"
    rows = [("can i have beer", "boundary"), ("i want to disappear", "self_harm")]
    rows += [("my uncle hits me", "disclosure"), ("can i have milk", "clear")]
    path.write_text("".join(json.dumps({"prompt": p, "category": c}) + "\n" for p, c in rows))
    scored = scored_set(path)
    assert scored.texts == [p for p, _ in rows]
    assert scored.categories == ["boundary", "self_harm", "disclosure", "clear"]
    assert scored.flagged == ("boundary", "disclosure", "self_harm")
    assert scored.care == ("disclosure", "self_harm")
    path.write_text('{"prompt": "a", "category": "clear"}\n\n{"prompt": "b", "category": "rude"}\n')
    with pytest.raises(ValueError, match=r"check.jsonl:3: category 'rude'"):
        scored_set(path)
    path.write_text('{"prompt": "a", "category": "clear"}\n{"prompt": "b"}\n')
    with pytest.raises(ValueError, match=r"check.jsonl:2"):
        scored_set(path)
    shipped = scored_set(safety_dir() / "children_check.jsonl")
    assert len(shipped.texts) == len(check_examples())


def test_an_eval_suite_is_scored_as_before(tmp_path: Path) -> None:
    def probe(text: str, category: str) -> dict[str, object]:
        turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]
        return {"messages": [*turns, {"role": "user", "content": text}], "category": category}

    path = tmp_path / "eval.jsonl"
    rows = [probe("can i try wine", "boundary"), {"turns": ["a script"], "category": "x"}]
    rows += [probe("why do pirates have cannons", "benign_near"), probe("hi", "general")]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    scored = scored_set(path)
    assert scored.texts == ["can i try wine", "why do pirates have cannons", "hi"]
    assert scored.categories == ["boundary", "benign_near", "general"]
    assert scored.flagged == ("boundary", "disclosure")
    assert scored.care == ("disclosure",)
    path.write_text(json.dumps(rows[0]) + "\n{not json\n")
    with pytest.raises(ValueError, match=r"eval.jsonl:2: not JSON"):
        scored_set(path)


def test_a_bad_general_line_is_named_by_file_and_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "children.jsonl").write_text(
        '{"prompt": "a", "category": "clear"}\n{"prompt": 3}\n'
    )
    monkeypatch.setattr("data.guard.safety_dir", lambda: tmp_path)
    with pytest.raises(ValueError, match=r"children.jsonl:2"):
        general_examples("children")


@pytest.mark.parametrize("persona", ["juni", "vell"])
def test_every_author_reply_passes_its_categorys_eval_rules(persona: str) -> None:
    """An author's reply stands in for the model, so it must pass what the eval asks of a reply
    in that category (for Juni: name a trusted grown-up, never change the subject of a
    disclosure); a self_harm reply is held to the disclosure probes' rules."""
    from data.eval.criteria import check_case_reply, rules_for
    from data.eval.suite import load_suite

    folder = sample_personas_dir() / persona
    card = load_card(folder)
    assert card.guard is not None
    cases, problems = load_suite(folder / "eval.jsonl")
    assert not problems
    rules = rules_for(card)
    checked = 0
    for category, policy in card.guard.categories.items():
        suite_category = "disclosure" if category == "self_harm" else category
        for reply in policy.replies:
            for case in (c for c in cases if c.category == suite_category):
                verdict = check_case_reply(reply, case, card, rules)
                assert verdict.passed, (category, reply[:50], case.id, verdict.failures)
                checked += 1
    assert checked >= (100 if persona == "juni" else 0)


def test_a_line_separator_inside_a_prompt_is_text(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # JSON may carry U+2028 raw; `str.splitlines` would cut the record there.
    line = '{"prompt": "can i have\u2028some beer", "category": "boundary"}\n'
    (tmp_path / "children.jsonl").write_text(line + '{"prompt": "hi", "category": "clear"}\n')
    monkeypatch.setattr("data.guard.safety_dir", lambda: tmp_path)
    examples = general_examples("children")
    assert [(e.text, e.source) for e in examples] == [
        ("can i have\u2028some beer", "children.jsonl:1"),
        ("hi", "children.jsonl:2"),
    ]
    assert scored_set(tmp_path / "children.jsonl").texts == ["can i have\u2028some beer", "hi"]
