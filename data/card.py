"""Persona cards: `persona.toml`, decoded strictly by msgspec.

Unknown keys are refused with their name, and a wrong type names the path to the field.
Sampling fields left out of a card stay `None`, so the server can fall through to the base
model's and then the server's defaults.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import msgspec

from .eval.rules import PRESETS, CriteriaRule, merge_rule, preset_rules
from .eval.suite import CATEGORIES
from .guard import GuardCard, guard_problems
from .names import NAME

NAME_PATTERN = NAME
"""A persona name; match with `fullmatch` (see `data.names`)."""
"""Persona names are safe folder names and model ids; never paths."""


METHODS = ("sft", "dpo", "orpo", "guard")
"""Training methods: supervised fine-tuning, preference tuning (DPO, ORPO), or the guard."""
MAX_BETA = 100.0
"""The largest `beta` taken: past it the preference term saturates and float32 overflows."""
MAX_RPO_ALPHA = 100.0
"""The largest `rpo_alpha` taken (TRL's paper setting is 1.0)."""


class CardError(Exception):
    """A persona card could not be read; the message names the file and the bad key."""


class Sampling(msgspec.Struct, forbid_unknown_fields=True, frozen=True, omit_defaults=True):
    """Default sampling for a persona; `None` means "not set here"."""

    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    repetition_context_size: int | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    min_tokens: int | None = None
    max_tokens: int | None = None
    stop: list[str] | None = None
    seed: int | None = None


class Training(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Training defaults for `persona train`."""

    method: str = "sft"
    """`sft` (learn the replies), `dpo` or `orpo` (learn from preference pairs)."""
    beta: float = 0.1
    """Strength of the preference term: DPO's beta, ORPO's lambda."""
    rpo_alpha: float = 0.0
    """DPO only: weight of the preferred reply's mean token NLL added to the loss (RPO, as TRL's
    `rpo_alpha`); it keeps the preferred replies likely, so the model does not stop ending them.
    0 is plain DPO."""
    fine_tune_type: str = "lora"
    """`lora`, `dora` or `full`."""
    rank: int = 8
    scale: float = 20.0
    dropout: float = 0.0
    layers: int = 8
    """How many of the last transformer blocks get adapters (-1 for all)."""
    keys: list[str] | None = None
    """Module names to adapt inside each block; None means mlx-lm's defaults."""
    learning_rate: float = 1e-4
    max_grad_norm: float = 0.0
    """Scale each step's gradient down to this global L2 norm when it is larger (Hugging Face's
    `max_grad_norm`); 0 leaves gradients as they are."""
    lr_schedule: str = "cosine"
    """`constant`, `linear` or `cosine`, after `warmup` steps."""
    warmup: int | None = None
    """Steps of linear warmup; None: 10% of the run, at most 10 steps (`data/train_plan.py`)."""
    epochs: int = 3
    batch_size: int = 4
    max_seq_length: int = 512
    grad_checkpoint: bool = False
    val_fraction: float = 0.1
    val_every: int | None = None
    """Steps between validations; None: about four times per epoch."""
    checkpoint_every: int | None = None
    """Steps between checkpoints; None: about twice per epoch."""
    patience: int = 0
    """Early stopping after this many validations without improvement (0 = off)."""
    seed: int = 0


class Style(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """What evaluation looks for in this persona's replies."""

    catchphrases: list[str] = []
    markers: list[str] = []
    """Words or short phrases typical of the voice."""
    reply_words: list[int] = msgspec.field(default_factory=lambda: [20, 200])
    """Target reply length range in words: [min, max]."""
    banned: list[str] = []
    """Phrases the persona must never use."""
    rubric: str = ""
    """Guidance for an optional LLM judge."""


class JsonSchemaFormat(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A named JSON schema, as in OpenAI's `response_format.json_schema`."""

    name: str
    schema: dict[str, Any] | None = None
    """None allows any JSON object."""
    description: str = ""
    strict: bool | None = None


class ResponseFormat(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A persona's default reply format (`[response_format]`); a request's own wins."""

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class PersonaCard(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One persona: who it is, how it samples, how it trains, how it is judged."""

    name: str
    system_prompt: str
    display_name: str = ""
    description: str = ""
    base_model: str = "embedded"
    greetings: list[str] = []
    """Opening lines the persona may start a chat with (a card's `first_mes` and alternates)."""
    post_history_instructions: str = ""
    """Instructions the server adds after the conversation, at the end of the last user turn."""
    sampling: Sampling = Sampling()
    training: Training = Training()
    style: Style = Style()
    response_format: ResponseFormat | None = None
    """Replies in JSON by default, e.g. a game character answering `{"line", "mood"}`."""
    criteria: dict[str, CriteriaRule | str] = {}
    """`preset = "children"` (a named set of rules) and, per eval category, the card's change
    to the rule a reply is held to."""
    guard: GuardCard | None = None
    """What is out of bounds for this persona's audience and what the guard does about it."""

    @property
    def title(self) -> str:
        """The name to show people."""
        return self.display_name or self.name

    @property
    def criteria_preset(self) -> str:
        """The `[criteria] preset` the card selects ("" for the neutral built-in rules)."""
        preset = self.criteria.get("preset", "")
        return preset if isinstance(preset, str) else ""

    @property
    def criteria_tables(self) -> dict[str, CriteriaRule]:
        """The card's `[criteria.<category>]` tables."""
        return {k: v for k, v in self.criteria.items() if isinstance(v, CriteriaRule)}


def validate(card: PersonaCard) -> list[str]:
    """Every semantic problem with a decoded card (empty when fine)."""
    problems: list[str] = []
    if not NAME_PATTERN.fullmatch(card.name):
        problems.append(
            f"name: {card.name!r} must be lowercase letters, digits, '-' or '_' (max 63)"
        )
    if not card.system_prompt.strip():
        problems.append("system_prompt: must not be empty")
    s = card.sampling
    checks = [
        ("sampling.temperature", s.temperature, 0.0, 2.0),
        ("sampling.top_p", s.top_p, 0.0, 1.0),
        ("sampling.min_p", s.min_p, 0.0, 1.0),
        ("sampling.repetition_penalty", s.repetition_penalty, 0.0, 10.0),
        ("sampling.presence_penalty", s.presence_penalty, -2.0, 2.0),
        ("sampling.frequency_penalty", s.frequency_penalty, -2.0, 2.0),
    ]
    for key, value, low, high in checks:
        if value is not None and not low <= value <= high:
            problems.append(f"{key}: {value} is outside [{low}, {high}]")
    for key, value in (("sampling.min_tokens", s.min_tokens), ("sampling.top_k", s.top_k)):
        if value is not None and value < 0:
            problems.append(f"{key}: must be >= 0")
    if s.max_tokens is not None and s.max_tokens < 1:
        problems.append("sampling.max_tokens: must be >= 1")
    t = card.training
    if t.method not in METHODS:
        problems.append(f"training.method: {t.method!r} is not sft, dpo, orpo or guard")
    if not 0 <= t.seed < 2**64:
        problems.append("training.seed: must be between 0 and 2**64 - 1")
    if not 0 < t.beta <= MAX_BETA:
        problems.append(f"training.beta: must be > 0 and <= {MAX_BETA:g}")
    if not 0 <= t.rpo_alpha <= MAX_RPO_ALPHA:
        problems.append(f"training.rpo_alpha: must be >= 0 and <= {MAX_RPO_ALPHA:g}")
    if not 0 <= t.max_grad_norm < float("inf"):
        problems.append("training.max_grad_norm: must be >= 0 (0 = no clipping)")
    if t.fine_tune_type not in ("lora", "dora", "full"):
        problems.append(f"training.fine_tune_type: {t.fine_tune_type!r} is not lora, dora or full")
    if t.lr_schedule not in ("constant", "linear", "cosine"):
        problems.append(
            f"training.lr_schedule: {t.lr_schedule!r} is not constant, linear or cosine"
        )
    for key, value in (("rank", t.rank), ("batch_size", t.batch_size), ("epochs", t.epochs)):
        if value < 1:
            problems.append(f"training.{key}: must be >= 1")
    if not 0.0 <= t.val_fraction < 1.0:
        problems.append("training.val_fraction: must be in [0, 1)")
    fmt = card.response_format
    if fmt is not None and (fmt.type == "json_schema") != (fmt.json_schema is not None):
        problems.append("response_format.json_schema: is required exactly when type is json_schema")
    problems += criteria_problems(card.criteria)
    problems += guard_problems(card.guard)
    if len(card.style.reply_words) != 2 or card.style.reply_words[0] > card.style.reply_words[1]:
        problems.append("style.reply_words: must be [min, max] with min <= max")
    return problems


def criteria_problems(criteria: dict[str, CriteriaRule | str]) -> list[str]:
    """Every problem with a card's `[criteria]` preset and `[criteria.*]` tables."""
    problems: list[str] = []
    preset = criteria.get("preset", "")
    if not isinstance(preset, str):
        problems.append("criteria.preset: must be a preset name, not a table")
        preset = ""
    elif preset and preset not in PRESETS:
        problems.append(f"criteria.preset: {preset!r} is not one of {', '.join(PRESETS)}")
        preset = ""
    for category, rule in criteria.items():
        where = f"criteria.{category}"
        if category == "preset":
            continue
        if not isinstance(rule, CriteriaRule):
            problems.append(f"{where}: must be a table of rule fields (only preset is a name)")
            continue
        if category not in CATEGORIES:
            problems.append(f"{where}: {category!r} is not one of {', '.join(CATEGORIES)}")
        if rule.any_of is not None and any(not phrase.strip() for phrase in rule.any_of):
            problems.append(f"{where}.any_of: holds an empty phrase")
        lists = (rule.any_of, rule.also_any_of, rule.none_of)
        for name, values in zip(("also_any_of", "none_of"), lists[1:], strict=True):
            if values is not None and any(not phrase.strip() for phrase in values):
                problems.append(f"{where}.{name}: holds an empty phrase")
        if rule.extend and not any(lists):
            problems.append(f"{where}.extend: needs phrases in any_of to add")
        elif category in CATEGORIES and not _checks_something(preset, category, rule):
            problems.append(
                f"{where}: checks nothing (no any_of or none_of phrases, asks_question or "
                "use_persona_markers), so every reply would pass; give it phrases or drop the table"
            )
    return problems


def _checks_something(preset: str, category: str, rule: CriteriaRule) -> bool:
    """Whether the preset's (or built-in) rule changed by `rule` still tests a reply at all."""
    return merge_rule(preset_rules(preset).get(category), rule).checks_something()


def parse_card(text: str | bytes, source: str = "persona.toml") -> PersonaCard:
    """Decode and validate a card from TOML text; raise CardError listing every problem."""
    try:
        card = msgspec.toml.decode(text, type=PersonaCard)
    except msgspec.ValidationError as exc:
        message = _friendly(str(exc))
        if "criteria[...]" in message:
            message = _criteria_key(text) or message
        raise CardError(f"{source}: {message}") from None
    except msgspec.DecodeError as exc:
        raise CardError(f"{source}: not valid TOML: {exc}") from None
    problems = validate(card)
    if problems:
        raise CardError("\n".join(f"{source}: {p}" for p in problems))
    return card


def load_card(path: Path) -> PersonaCard:
    """Read `persona.toml` (or a folder holding one)."""
    if path.is_dir():
        path = path / "persona.toml"
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise CardError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_card(text, str(path))


def _criteria_key(text: str | bytes) -> str | None:
    """The problem in a `[criteria.*]` table, named by its category (msgspec says `[...]`)."""
    raw = msgspec.toml.decode(text)
    tables = raw.get("criteria") if isinstance(raw, dict) else None
    for category, table in tables.items() if isinstance(tables, dict) else ():
        if category == "preset" or not isinstance(table, dict):
            continue
        try:
            msgspec.convert(table, CriteriaRule)
        except msgspec.ValidationError as exc:
            message = str(exc) if " - at `$" in str(exc) else f"{exc} - at `$`"
            return _friendly(message.replace(" - at `$", f" - at `$.criteria.{category}", 1))
    return None


def _friendly(message: str) -> str:
    # msgspec says "Object contains unknown field `foo` - at `$.sampling`"; make the key explicit.
    match = re.match(r"Object contains unknown field `(.+?)`(?: - at `\$\.?(.*)`)?", message)
    if match:
        where = match.group(2)
        key = f"{where}.{match.group(1)}" if where else match.group(1)
        return f"unknown key {key!r}"
    match = re.match(r"(.*) - at `\$\.?(.*)`", message)
    if match:
        return f"{match.group(2)}: {match.group(1)}"
    return message
