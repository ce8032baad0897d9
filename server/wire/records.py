"""Wire types of a persona's data: its records (`/v1/personas/{id}/records`) and their check."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from data.problem import Problem
from data.records import Message


class DatasetRecord(Struct, frozen=True):
    """One line of a persona's dataset, as a conversation with its tags."""

    file: str
    """The file's name in the persona folder (`train.jsonl`, `dataset.jsonl`, `valid.jsonl`)."""
    line: int
    hash: str
    """A fingerprint of the line as read; a replace or delete must send it back."""
    kind: Literal["chat", "completion", "preference"]
    """A completion is shown as one user and one assistant turn and saved back as a chat."""
    messages: list[Message]
    tags: list[str] = []


class RecordList(Struct, frozen=True):
    """`GET /v1/personas/{id}/records`: every readable record, and where new ones go."""

    data: list[DatasetRecord]
    file: str
    """Where `POST` appends a record."""
    writable: bool
    """False for a sample shipped with the package: its data can be read, not changed."""
    categories: list[str]
    """Tags worth offering: the failure modes, the eval categories, and every tag in use."""
    problems: list[Problem] = []
    """Lines that could not be read as records."""
    object: Literal["list"] = "list"


class RecordWrite(Struct, frozen=True, forbid_unknown_fields=True):
    """`POST .../records` and `PUT .../records/{file}/{line}`: the conversation and its tags."""

    messages: list[Message]
    tags: list[str] = []
    hash: str | None = None
    """For a replace: the `hash` the record was listed with (required)."""


class RecordSaved(Struct, frozen=True):
    """Where the record landed and the checker's warnings about it, as file:line."""

    file: str
    line: int
    hash: str
    records: int
    """Lines in the file now."""
    problems: list[Problem] = []


class RecordDeleted(Struct, frozen=True):
    """`DELETE .../records/{file}/{line}`: what is left."""

    file: str
    line: int
    records: int
    deleted: bool = True


class SuiteBuild(Struct, frozen=True, forbid_unknown_fields=True):
    """`POST /v1/personas/{id}/evals/suite`: the share of tagged records to hold out, and the
    shuffle seed (default: the card's `training.seed`)."""

    share: float = 0.15
    seed: int | None = None


class SuiteBuilt(Struct, frozen=True):
    """The eval suite held out: its cases per category, and what the training file keeps."""

    file: str
    cases: int
    by_category: dict[str, int]
    train_file: str
    train_records: int
    returned: int
    """Held-out records put back in training: their prompt is close to one that stays there."""


class DataRow(Struct, frozen=True):
    """One record the data checker could read: where, and the line as written."""

    file: str
    line: int
    raw: str


class DataCheck(Struct, frozen=True):
    """`GET /v1/personas/{id}/data/check`: the checker's report, files named relative to the
    persona folder, each readable record as written, and every problem as file:line."""

    files: list[str]
    rows: list[DataRow]
    problems: list[Problem]
    notes: list[str]
