"""Sampling defaults merge field by field: request > persona card > base model > server."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from data.card import Sampling, parse_card
from server.catalog import (
    generation_config_layer,
    merge,
    request_layer,
    server_defaults,
)
from server.wire.openai import ChatCompletionRequest

CARD = parse_card(
    """
name = "pip"
system_prompt = "You are Pip."
[sampling]
temperature = 0.7
min_p = 0.05
max_tokens = 300
stop = ["THE END"]
"""
)


def chat(**fields: object) -> ChatCompletionRequest:
    body = {"model": "pip", "messages": [{"role": "user", "content": "hi"}], **fields}
    return msgspec.json.decode(msgspec.json.encode(body), type=ChatCompletionRequest)


def resolve(request: ChatCompletionRequest, base: Sampling | None = None) -> dict[str, object]:
    layers = [request_layer(request), CARD.sampling, base or Sampling()]
    merged = merge(layers, server_defaults(512))
    return msgspec.structs.asdict(merged)


def test_omitted_fields_fall_through_each_layer_separately() -> None:
    base = Sampling(top_p=0.9, top_k=64, temperature=1.3)
    got = resolve(chat(), base)
    assert got["temperature"] == 0.7  # card beats base model
    assert got["top_p"] == 0.9  # card silent: base model
    assert got["top_k"] == 64
    assert got["min_p"] == 0.05
    assert got["repetition_penalty"] == 1.0  # nobody sets it: server default
    assert got["max_tokens"] == 300
    assert got["stop"] == ["THE END"]


def test_a_set_field_wins_without_disturbing_its_neighbours() -> None:
    got = resolve(chat(top_p=0.5), Sampling(top_p=0.9, temperature=1.3))
    assert got["top_p"] == 0.5
    assert got["temperature"] == 0.7  # not reset to 1.0 (ollama#17744)


def test_zero_and_empty_values_count_as_set() -> None:
    got = resolve(chat(temperature=0.0, stop=[], min_p=0.0))
    assert got["temperature"] == 0.0
    assert got["min_p"] == 0.0
    assert got["stop"] == []


def test_null_counts_as_left_out() -> None:
    got = resolve(chat(temperature=None, max_tokens=None))
    assert got["temperature"] == 0.7
    assert got["max_tokens"] == 300


def test_stop_string_becomes_a_list_and_top_k_minus_one_means_off() -> None:
    got = resolve(chat(stop="\n\n", top_k=-1), Sampling(top_k=40))
    assert got["stop"] == ["\n\n"]
    assert got["top_k"] == 0


def test_max_completion_tokens_is_passed_as_the_request_max() -> None:
    layer = request_layer(chat(max_tokens=50), max_tokens=20)
    assert layer.max_tokens == 20


def test_extras_travel_in_the_body() -> None:
    got = resolve(chat(top_k=5, repetition_penalty=1.3, min_tokens=4, repetition_context_size=64))
    assert (got["top_k"], got["repetition_penalty"], got["min_tokens"]) == (5, 1.3, 4)
    assert got["repetition_context_size"] == 64


def test_generation_config_supplies_base_defaults(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"do_sample": True, "top_k": 64, "top_p": 0.95, "max_new_tokens": 99})
    )
    layer = generation_config_layer(tmp_path)
    assert (layer.top_k, layer.top_p, layer.max_tokens, layer.temperature) == (64, 0.95, 99, None)


def test_greedy_generation_config_means_temperature_zero(tmp_path: Path) -> None:
    (tmp_path / "generation_config.json").write_text(json.dumps({"do_sample": False}))
    assert generation_config_layer(tmp_path).temperature == 0.0


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"top_k": "many"}'])
def test_unusable_generation_config_is_ignored(tmp_path: Path, text: str) -> None:
    (tmp_path / "generation_config.json").write_text(text)
    assert generation_config_layer(tmp_path) == Sampling()


def test_missing_generation_config_is_empty(tmp_path: Path) -> None:
    assert generation_config_layer(tmp_path) == Sampling()
    assert generation_config_layer(None) == Sampling()
