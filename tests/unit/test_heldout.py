"""Holding out an eval suite: a probe close to a prompt left in training goes back to training."""

from __future__ import annotations

import json
from pathlib import Path

from data.card import load_card
from data.eval.suite import load_suite
from data.heldout import hold_out_suite, probe_of

CARD = 'name = "wren"\nsystem_prompt = "You keep bees."\n'


def line(question: str, tags: list[str]) -> str:
    turns = [{"role": "user", "content": question}, {"role": "assistant", "content": "Yes."}]
    return json.dumps({"messages": turns, "tags": tags})


def test_a_probe_with_a_near_copy_in_training_goes_back(tmp_path: Path) -> None:
    (tmp_path / "persona.toml").write_text(CARD)
    lines = [
        line("Can I keep honey from my own garden hive this year?", ["idk"]),
        line("Why is fresh wax so pale?", ["clarify"]),
        line("How is a queen chosen by the workers?", ["boundary"]),
    ]
    # valid.jsonl holds near copies of the first two prompts: they may not be held out.
    (tmp_path / "valid.jsonl").write_text(
        line("Can I keep honey from my own garden hive this year??", []) + "\n"
        + line("Why is fresh wax so pale??", []) + "\n"
    )  # fmt: skip
    (tmp_path / "train.jsonl").write_text("".join(f"{x}\n" for x in lines))
    made = hold_out_suite(tmp_path, load_card(tmp_path), share=0.99, seed=1)
    cases, problems = load_suite(tmp_path / "eval.jsonl")
    assert problems == []
    assert made.returned == 1  # two held out (all but one), one of them went back
    assert [c.prompt for c in cases] == ["How is a queen chosen by the workers?"]
    kept = (tmp_path / "train.jsonl").read_text().splitlines()
    assert len(kept) == made.train_records == 2
    assert "queen" not in " ".join(kept)


def test_a_record_without_a_reply_after_its_last_question_is_no_probe() -> None:
    from data.dataset import Row
    from data.records import ChatRecord, Message

    ask = ChatRecord((Message("user", "a?"), Message("assistant", "b."), Message("user", "c?")))
    assert probe_of(Row("f", 1, ask, ""), "idk", 1) is None
    both = ChatRecord((Message("system", "s"), Message("user", "a?"), Message("assistant", "b.")))
    case = probe_of(Row("f", 1, both, ""), "idk", 7)
    assert case is not None
    assert case.id == "idk-07"
    assert [m.role for m in case.messages] == ["system", "user"]
