"""Persona card decoding names the bad key."""

from __future__ import annotations

import pytest

from data.card import CardError, parse_card

GOOD = """
name = "pip"
system_prompt = "You are Pip."
[sampling]
temperature = 0.7
"""


def test_good_card_keeps_unset_sampling_fields_none() -> None:
    card = parse_card(GOOD)
    assert card.sampling.temperature == 0.7
    assert card.sampling.top_p is None
    assert card.training.rank == 8


def test_unknown_key_is_named() -> None:
    with pytest.raises(CardError, match=r"sampling\.temprature"):
        parse_card(GOOD.replace("temperature", "temprature"))


def test_wrong_type_names_path() -> None:
    with pytest.raises(CardError, match=r"sampling\.temperature"):
        parse_card(GOOD.replace("0.7", '"hot"'))


def test_every_semantic_problem_is_listed() -> None:
    bad = GOOD.replace('"pip"', '"Bad Name"').replace("0.7", "5.0")
    with pytest.raises(CardError) as info:
        parse_card(bad)
    message = str(info.value)
    assert "name:" in message
    assert "sampling.temperature" in message


def test_a_default_response_format_is_read_and_checked() -> None:
    card = parse_card(
        GOOD
        + '[response_format]\ntype = "json_schema"\n'
        + '[response_format.json_schema]\nname = "line"\n'
        + 'schema = { type = "object", required = ["line"] }\n'
    )
    assert card.response_format is not None
    assert card.response_format.json_schema is not None
    assert card.response_format.json_schema.schema == {"type": "object", "required": ["line"]}
    with pytest.raises(CardError, match=r"response_format\.json_schema"):
        parse_card(GOOD + '[response_format]\ntype = "json_schema"\n')
    with pytest.raises(CardError, match=r"response_format\.type"):
        parse_card(GOOD + '[response_format]\ntype = "yaml"\n')


@pytest.mark.parametrize("beta", ["0", "-0.5", "1e308", "inf", "nan"])
def test_a_beta_out_of_range_is_refused_by_card_and_trainer(beta: str) -> None:
    from adapters.training.config import ConfigError, apply_overrides
    from data.card import Training

    with pytest.raises(CardError, match=r"training\.beta: must be > 0 and <= 100"):
        parse_card(GOOD + f'[training]\nmethod = "dpo"\nbeta = {beta}\n')
    with pytest.raises(ConfigError, match=r"beta must be > 0 and <= 100"):
        apply_overrides(Training(), {"beta": float(beta)})
    with pytest.raises(ConfigError, match=r"learning_rate must be > 0 and <= 1"):
        apply_overrides(Training(), {"learning_rate": float(beta) or 2.0})
    assert apply_overrides(Training(), {"beta": 100.0}).beta == 100.0


def test_a_seed_the_generators_cannot_take_is_refused() -> None:
    with pytest.raises(CardError, match=r"training\.seed: must be between 0 and 2\*\*64 - 1"):
        parse_card(GOOD + "[training]\nseed = -1\n")
    assert parse_card(GOOD + "[training]\nseed = 7\n").training.seed == 7
