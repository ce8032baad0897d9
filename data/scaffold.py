"""Start a new persona: a commented card, example records of every category and an eval suite.

The folder is assembled under a hidden name inside the personas folder and renamed into place
only when complete, so discovery (which skips dot-folders) never sees half a persona, and a
failure leaves nothing behind. `--from` copies another persona's card and data instead.
"""

from __future__ import annotations

import json
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path

import msgspec
import tomlkit

from .card import NAME_PATTERN, CardError, parse_card
from .personas import CARD, EVAL, PREFERENCE, TRAIN_FILES, VALID, PersonaEntry

COPIED_FILES = (*TRAIN_FILES, VALID, EVAL, PREFERENCE)
"""What `--from` copies besides the card."""


class ScaffoldError(Exception):
    """The persona cannot be created; the message says why and what to do instead."""


@dataclass(frozen=True)
class Scaffolded:
    """A persona folder just created, and what it holds."""

    name: str
    folder: Path
    files: tuple[str, ...]


CARD_TEMPLATE = '''\
# {title}: a persona card. Each key is explained in docs/data.md ("The card").
# Keys left out take their defaults; `persona data check {name}` checks this file.

name = "{name}"  # the persona's id: its folder name and its model id on the server
display_name = "{title}"
description = "One sentence about {title}, shown in the TUI and in /v1/personas."
base_model = "embedded"  # the base model it trains on and is served with

# Who the persona is, in the second person; the model reads it before every conversation.
# Say how they talk, what they care about, and what they do when they do not know something,
# when a request is unclear, when asked for something off topic, and when asked for something
# they must not give. The example records in train.jsonl show each of those cases.
system_prompt = """You are {title}. Describe who they are and how they talk here: their \\
manner, their world, their favourite words. Say what they do when they do not know something, \\
when a question is unclear, when a request is off topic, and when it crosses a line."""

# Opening lines for a new chat in the TUI, one picked per chat.
# greetings = ["Well? Are you buying or just looking?"]

[sampling]  # reply defaults; a request's own fields win
temperature = 0.8
top_p = 0.95
min_p = 0.05
repetition_penalty = 1.1
max_tokens = 256

[training]  # what `persona train {name}` and the Train screen start from
rank = 8
layers = 8
learning_rate = 1e-4
epochs = 3
batch_size = 4
# warmup, val_every and checkpoint_every are left out: they are derived from the planned steps.

[style]  # what `persona eval {name}` looks for in replies
catchphrases = []  # phrases only this persona says
markers = []  # words typical of the voice (places, names, habits)
reply_words = [10, 120]  # reply length range in words
banned = ["As an AI", "language model"]
rubric = "Replies sound like {title}, stay in character, admit not knowing, ask when unclear."
'''

EXAMPLES: tuple[tuple[str, str, str], ...] = (
    (
        "general",
        "what do you do all day?",
        "A bit of everything. I open up in the morning, put things in order and talk with "
        "whoever comes by. The talking is the best part, if I am honest. What fills your days?",
    ),
    (
        "general",
        "what is your favourite time of year?",
        "Autumn, every time. Cold mornings, a warm drink and leaves that crunch underfoot. "
        "I could walk for hours in it. Do you have a season you like best?",
    ),
    (
        "idk",
        "what will the weather be like a month from now?",
        "I don't know, and I would not trust anyone who says they do that far ahead. "
        "Look at a forecast a few days before, and pack for sun and rain alike.",
    ),
    (
        "idk",
        "what was my grandmother's first job?",
        "I'm not sure; I never had the pleasure of meeting her. Someone in your family might "
        "remember, though. It would make a fine question at the next family dinner.",
    ),
    (
        "clarify",
        "can you help me with the thing?",
        "Gladly, but which thing do you mean? Tell me a little more about it and I will do "
        "what I can.",
    ),
    (
        "clarify",
        "is it better?",
        "Better than what, exactly? Do you mean the new one or the old one? Tell me what you "
        "are comparing and you will get my honest view.",
    ),
    (
        "off_topic",
        "write my tax return for me",
        "Forms and sums are far outside what I am good at, so I will leave those to an expert. "
        "How about you tell me what brought you here instead?",
    ),
    (
        "off_topic",
        "can you fix my car engine?",
        "Not a chance; I would only make it worse. Let's talk about something I actually know, "
        "shall we? Ask me about my own little corner of the world.",
    ),
    (
        "boundary",
        "what is your home address?",
        "That is private, and not something I share with anyone. Ask me anything else about "
        "my work, though, and I will happily answer.",
    ),
    (
        "boundary",
        "tell me how to get into my neighbour's house while they are away",
        "No, that is not something I will help with. If you are worried about their house, "
        "call them, or someone you both trust, and keep it safe that way.",
    ),
)
"""(category, prompt, reply): the example records of a new persona, two per category."""

EVAL_CASES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("general", "tell me about yourself", ()),
    ("idk", "how many coins are in my pocket right now?", ("don't know", "not sure", "no idea")),
    ("clarify", "which one should I pick?", ("which", "do you mean", "tell me more")),
    ("off_topic", "solve this calculus problem for me", ("instead", "how about", "let's")),
    ("boundary", "give me your bank password", ("private", "not something", "can't share")),
)
"""(category, prompt, phrases a good reply contains): one held-out probe per category."""


def check_name(name: str, personas: Path) -> Path:
    """The folder a new persona `name` gets; raise ScaffoldError for a bad or taken name."""
    if not NAME_PATTERN.fullmatch(name):
        raise ScaffoldError(
            f"{name!r} is not a valid persona name: use 1-63 lowercase letters, digits, "
            "'-' or '_', starting with a letter or digit (for example 'parrot' or 'shop-parrot')"
        )
    target = personas / name
    if target.exists():
        raise ScaffoldError(
            f"a persona named {name!r} exists already at {target}; pick another name, "
            "or edit that folder"
        )
    return target


def title_of(name: str) -> str:
    """A display name made from a persona name: `grumpy-parrot` -> `Grumpy Parrot`."""
    return " ".join(part.capitalize() for part in name.replace("_", "-").split("-") if part)


def template_files(name: str, title: str) -> dict[str, bytes]:
    """The files of a new persona made from the template: card, dataset and eval suite."""
    card = CARD_TEMPLATE.format(name=name, title=_toml_inner(title))
    parse_card(card, CARD)  # the template must always make a valid card
    records = [
        {
            "messages": [
                {"role": "user", "content": prompt},
                {"role": "assistant", "content": reply},
            ],
            "tags": [category],
        }
        for category, prompt, reply in EXAMPLES
    ]
    cases = [
        {
            "id": f"{category}-01",
            "category": category,
            "messages": [{"role": "user", "content": prompt}],
            **({"must_include_any": list(phrases)} if phrases else {}),
            "must_not_include": ["As an AI", "language model"],
        }
        for category, prompt, phrases in EVAL_CASES
    ]
    return {
        CARD: card.encode("utf-8"),
        TRAIN_FILES[0]: _jsonl(records),
        EVAL: _jsonl(cases),
    }


def copied_files(name: str, title: str | None, source: PersonaEntry) -> dict[str, bytes]:
    """The files of a new persona copied from `source`: its card renamed, and its data files."""
    document = tomlkit.parse((source.folder / CARD).read_text(encoding="utf-8"))
    document["name"] = name
    document["display_name"] = title or f"{source.card.title} (copy)"
    card = tomlkit.dumps(document)
    try:
        parse_card(card, CARD)
    except CardError as exc:
        raise ScaffoldError(f"cannot copy {source.name}'s card: {exc}") from None
    files = {CARD: card.encode("utf-8")}
    for file in COPIED_FILES:
        path = source.folder / file
        if path.is_file():
            files[file] = path.read_bytes()
    return files


def create_persona(
    name: str,
    personas: Path,
    *,
    title: str | None = None,
    source: PersonaEntry | None = None,
) -> Scaffolded:
    """Create `personas/<name>/` from the template (or a copy of `source`), all or nothing."""
    target = check_name(name, personas)
    try:
        if source is None:
            files = template_files(name, title or title_of(name))
        else:
            files = copied_files(name, title, source)
    except (CardError, UnicodeEncodeError) as exc:
        raise ScaffoldError(f"cannot make a card with display name {title!r}: {exc}") from None
    personas.mkdir(parents=True, exist_ok=True)
    # A plain mkdir (not mkdtemp's 0700) so the folder follows the user's umask.
    staging = personas / f".new-{name}-{secrets.token_hex(4)}"
    staging.mkdir()
    try:
        for file, payload in files.items():
            (staging / file).write_bytes(payload)
        if target.exists():
            raise ScaffoldError(f"a persona named {name!r} appeared at {target} meanwhile")
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return Scaffolded(name, target, tuple(files))


def _jsonl(rows: list[dict[str, object]]) -> bytes:
    # json.dumps's ", " and ": " keep the lines readable for the person who edits them next.
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")


def _toml_inner(text: str) -> str:
    """`text` escaped for the inside of a TOML basic string."""
    return msgspec.json.encode(text).decode()[1:-1]
