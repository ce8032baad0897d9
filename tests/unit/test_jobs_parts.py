"""The job machinery's small parts: methods, the event log, the trainer process."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
import pytest

from data.card import Training
from server.api.fine_tune_plan import agreed_system_prompt
from server.jobs.log import EventLog
from server.jobs.methods import MethodError, plan_training
from server.jobs.trainer import TrainerProcess
from server.jobs.types import CreateJobRequest


def request(**fields: object) -> CreateJobRequest:
    return msgspec.convert({"model": "juni", **fields}, CreateJobRequest)


def test_supervised_hyperparameters_scale_the_cards_learning_rate() -> None:
    card = Training(learning_rate=1e-4, epochs=3, batch_size=4)
    hyper = {"n_epochs": 2, "batch_size": "auto", "learning_rate_multiplier": 0.5}
    method = {"type": "supervised", "supervised": {"hyperparameters": hyper}}
    plan, training = plan_training(request(method=method, rank=16, seed=7), card)
    assert (training.epochs, training.batch_size, training.rank, training.seed) == (2, 4, 16, 7)
    assert training.learning_rate == pytest.approx(5e-5)
    assert plan.hyperparameters.learning_rate_multiplier == pytest.approx(0.5)
    legacy, _ = plan_training(request(hyperparameters={"n_epochs": 5}), card)
    assert legacy.overrides == {"epochs": 5}


@pytest.mark.parametrize("kind", ["dpo", "orpo"])
def test_preference_methods_set_the_method_and_beta_and_report_them_resolved(kind: str) -> None:
    from openai.types.fine_tuning import DpoMethod

    card = Training(learning_rate=1e-4, epochs=3, batch_size=4, beta=0.1)
    hyper = {"beta": 0.25, "n_epochs": 2, "learning_rate_multiplier": "auto"}
    plan, training = plan_training(
        request(method={"type": kind, kind: {"hyperparameters": hyper}}), card
    )
    assert plan.overrides == {"method": kind, "beta": 0.25, "epochs": 2}
    assert (training.method, training.beta, training.epochs) == (kind, 0.25, 2)
    assert plan.method is not None
    reported = msgspec.to_builtins(plan.method)
    assert reported["type"] == kind
    # OpenAI's own type reads the resolved hyperparameters: no `auto` is left.
    dpo = DpoMethod.model_validate(reported[kind])
    assert dpo.hyperparameters is not None
    assert (dpo.hyperparameters.beta, dpo.hyperparameters.n_epochs) == (0.25, 2)
    assert (dpo.hyperparameters.batch_size, dpo.hyperparameters.learning_rate_multiplier) == (4, 1)
    # Left out, beta is the card's.
    plain, trained = plan_training(request(method={"type": kind}), card)
    assert (plain.overrides, trained.beta) == ({"method": kind}, 0.1)


def test_a_supervised_job_trains_sft_even_when_the_card_says_dpo() -> None:
    plan, training = plan_training(request(), Training(method="dpo"))
    assert (plan.overrides, training.method) == ({"method": "sft"}, "sft")
    assert plan.method is not None
    assert plan.method.type == "supervised"
    assert plan_training(request(), Training())[0].overrides == {}


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        ({"method": {"type": "reinforcement"}}, "method", "'reinforcement' is not served"),
        (
            {"method": {"type": "dpo"}, "hyperparameters": {"n_epochs": 1}},
            "hyperparameters",
            "give dpo's in method.dpo.hyperparameters",
        ),
        (
            {"method": {"type": "orpo", "orpo": {"hyperparameters": {"beta": 0}}}},
            "method.orpo.hyperparameters.beta",
            "beta must be > 0",
        ),
        (
            {"method": {"type": "supervised", "supervised": {}}, "hyperparameters": {}},
            "hyperparameters",
            "not both",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": 0}},
            "hyperparameters.learning_rate_multiplier",
            "> 0",
        ),
        ({"fine_tune_type": "qlora"}, "fine_tune_type", "not lora, dora or full"),
        ({"rank": 0}, "rank", "rank must be >= 1"),
        ({"seed": -1}, "seed", "seed must be between 0 and 2\\*\\*64 - 1"),
        # [training] names of OpenAI's hyperparameters, sent as extra fields.
        ({"beta": 0.3, "method": {"type": "dpo"}}, "beta", "give beta in method.dpo.hyper"),
        ({"beta": 0.3}, "beta", "beta applies to method.type dpo or orpo only"),
        ({"learning_rate": 1e-4}, "learning_rate", "give learning_rate_multiplier in method"),
        ({"epochs": 2}, "epochs", "give n_epochs in method.supervised.hyperparameters"),
        # Settings under another method's key would be silently unused.
        (
            {"method": {"type": "orpo", "supervised": {"hyperparameters": {"n_epochs": 1}}}},
            "method.supervised",
            "method.type is 'orpo', so method.supervised is not used",
        ),
        ({"method": {"type": "orpo", "dpo": {}}}, "method.dpo", "give orpo's settings"),
        ({"method": {"type": "supervised", "orpo": {}}}, "method.orpo", "not used"),
        ({"method": {"type": "dpo", "reinforcement": {}}}, "method.reinforcement", "not used"),
        # Out of range: zero or negative epochs and batches, a huge beta or learning rate.
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"n_epochs": 0}}}},
            "method.dpo.hyperparameters.n_epochs",
            "n_epochs must be >= 1",
        ),
        ({"hyperparameters": {"batch_size": -2}}, "hyperparameters.batch_size", ">= 1"),
        (
            {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 1e308}}}},
            "method.dpo.hyperparameters.beta",
            "beta must be > 0 and <= 100",
        ),
        (
            {"hyperparameters": {"learning_rate_multiplier": 1e308}},
            "hyperparameters.learning_rate_multiplier",
            "learning rate <= 1",
        ),
    ],
)
def test_what_cannot_be_trained_is_refused_by_name(
    fields: dict[str, object], param: str | None, text: str
) -> None:
    with pytest.raises(MethodError, match=text) as refused:
        plan_training(request(**fields), Training())
    assert refused.value.param == param


def test_the_system_prompt_of_a_new_persona_needs_every_record_to_agree() -> None:
    def record(system: str | None) -> str:
        turns = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hey"}]
        if system is not None:
            turns.insert(0, {"role": "system", "content": system})
        return msgspec.json.encode({"messages": turns}).decode()

    same = f"{record('You are Cog.')}\n\n{record('You are Cog.')}\n".encode()
    assert agreed_system_prompt(same) == "You are Cog."
    assert agreed_system_prompt(f"{record('A')}\n{record('B')}\n".encode()) is None
    assert agreed_system_prompt(f"{record('A')}\n{record(None)}\n".encode()) is None
    # A preference pair's system turn is in its input, as in OpenAI's DPO format.
    pair = {"input": msgspec.json.decode(record("You are Cog.")), "preferred_output": [],
            "non_preferred_output": []}  # fmt: skip
    pairs = (msgspec.json.encode(pair) + b"\n") * 2
    assert agreed_system_prompt(pairs) == "You are Cog."


async def test_the_event_log_pages_newest_first_and_replays_then_follows(tmp_path: Path) -> None:
    log = EventLog(tmp_path / "job", "ftevent-x")
    for n in range(5):
        log.add(f"event {n}")
    page, more = log.page(None, 2)
    assert [e.message for e in page] == ["event 4", "event 3"]
    assert more
    page, more = log.page(page[-1].id, 10)
    assert [e.message for e in page] == ["event 2", "event 1", "event 0"]
    assert not more

    seen: list[str] = []

    async def follow() -> None:
        async for event in log.follow(after="ftevent-x-4", keepalive=5):
            assert event is not None
            seen.append(event.message)

    task = asyncio.create_task(follow())
    await asyncio.sleep(0.05)
    log.add("live")
    log.close()
    await asyncio.wait_for(task, 5)
    assert seen == ["event 4", "live"]
    assert [e.message for e in EventLog(tmp_path / "job", "ftevent-x").events][-1] == "live"


async def test_a_trainer_that_cannot_start_or_dies_ends_with_an_error_event() -> None:
    missing = [e async for e in TrainerProcess(["/nonexistent/persona"]).events()]
    assert len(missing) == 1
    assert "cannot start the trainer" in missing[0].message  # type: ignore[union-attr]
    code = "import sys; print('ValueError: the dataset is empty', file=sys.stderr); sys.exit(3)"
    died = [e async for e in TrainerProcess([sys.executable, "-c", code]).events()]
    assert "exited with code 3" in died[-1].message  # type: ignore[union-attr]
    assert "the dataset is empty" in died[-1].message  # type: ignore[union-attr]
