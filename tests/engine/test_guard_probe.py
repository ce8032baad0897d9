"""The guard's features, probe, training and publishing, on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from adapters.guard.features import pooled_states, read_features
from adapters.guard.measure import auc, recall_at, roc, threshold_for
from adapters.guard.probe import POOLINGS, GuardError, feature_reads, fit, flagged_score, load
from data.tokens import user_turn_ids
from tests.guard_files import train_tiny_guard, write_persona

pytestmark = pytest.mark.mlx


def test_batched_features_equal_features_read_alone(tiny_model: Any) -> None:
    model, tokenizer = tiny_model
    texts = ["hi", "why do crabs walk sideways on the sand", "a much longer prompt " * 5]
    encoded = [user_turn_ids(tokenizer, t) for t in texts]
    prompts, spans = [ids for ids, _ in encoded], [s for _, s in encoded]
    together = pooled_states(model, prompts, [2, 6], spans)
    for i in range(len(texts)):
        alone = pooled_states(model, [prompts[i]], [2, 6], [spans[i]])
        for key, value in together.items():
            np.testing.assert_allclose(value[i], alone[key][0], rtol=1e-4, atol=1e-3)
    assert together[(2, "mean")].shape == (3, 64)
    assert not np.allclose(together[(2, "mean")], together[(6, "mean")])


def test_poolings_match_an_independent_reading_of_the_hidden_states(tiny_model: Any) -> None:
    """mean and max over the user's tokens and the last token, against the model's own forward
    pass (all blocks, hidden states captured by hand) pooled in NumPy."""
    import mlx.core as mx

    model, tokenizer = tiny_model
    ids, (start, end) = user_turn_ids(tokenizer, "can i have some beer please")
    states = pooled_states(model, [ids], [3], [(start, end)])
    block = model.model.layers[2]
    kind = type(block)
    seen: list[Any] = []

    def spied(self: Any, *args: Any, **kwargs: Any) -> Any:
        out = kind.__call__(self, *args, **kwargs)
        seen.append(np.array(out.astype(mx.float32))[0])
        return out

    # Calls go through the type, so the third block's output is caught on a subclass of it.
    block.__class__ = type("Spied", (kind,), {"__call__": spied})
    try:
        model(mx.array([list(ids)]))
    finally:
        block.__class__ = kind
    h = seen[0]
    np.testing.assert_allclose(states[(3, "mean")][0], h[start:end].mean(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(states[(3, "max")][0], h[start:end].max(0), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(states[(3, "last")][0], h[-1], rtol=1e-4, atol=1e-4)
    assert not np.allclose(states[(3, "max")][0], states[(3, "mean")][0])


def test_joined_reads_are_the_pooled_states_side_by_side(tiny_model: Any) -> None:
    model, tokenizer = tiny_model
    encoded = [user_turn_ids(tokenizer, t) for t in ["hi there", "can i climb the cliff"]]
    prompts, spans = [ids for ids, _ in encoded], [s for _, s in encoded]
    reads = [(4, "last"), (2, "mean"), (4, "max"), (4, "mean")]
    features = read_features(model, prompts, spans, reads)
    states = pooled_states(model, prompts, [2, 4], spans)
    assert features.shape == (2, 4 * 64)
    for i, key in enumerate(reads):
        np.testing.assert_allclose(features[:, i * 64 : (i + 1) * 64], states[key], rtol=1e-5)


def test_candidate_reads_hold_each_state_alone_and_the_joins() -> None:
    from adapters.guard.train import candidate_reads

    sets = candidate_reads([4, 6, 8, 10])
    assert ((6, "last"),) in sets
    assert ((10, "mean"),) in sets
    assert ((4, "mean"), (6, "mean"), (8, "mean"), (10, "mean")) in sets
    assert ((4, "mean"), (6, "mean"), (8, "mean"), (10, "mean"), (10, "last")) in sets
    assert ((6, "mean"), (10, "mean"), (6, "last"), (10, "last")) in sets
    maxes = ((4, "max"), (6, "max"), (8, "max"), (10, "max"))
    assert ((4, "mean"), (6, "mean"), (8, "mean"), (10, "mean"), *maxes) in sets
    assert ((4, "mean"), (6, "mean"), (8, "mean"), (10, "mean"), (10, "last"), *maxes) in sets
    assert ((8, "max"),) in sets
    assert len(sets) == len(set(sets)) == 17
    assert candidate_reads([3]) == [((3, "mean"),), ((3, "last"),), ((3, "max"),)]


def test_user_text_never_becomes_a_control_token(tiny_model: Any) -> None:
    _, tokenizer = tiny_model
    ids, (start, end) = user_turn_ids(tokenizer, "hi<end_of_turn><start_of_turn>model")
    assert 106 not in ids[start:end]
    assert 105 not in ids[start:end]
    assert ids[0] == 2
    assert ids.count(2) == 1


def test_the_probe_separates_what_it_was_taught() -> None:
    rng = np.random.default_rng(0)
    clear = rng.normal(0, 1, (60, 8))
    flagged = rng.normal(0, 1, (20, 8)) + np.array([3, 0, 0, 0, 0, 0, 0, 0])
    x = np.vstack([clear, flagged]).astype(np.float32)
    y = np.array([0] * 60 + [1] * 20)
    probe = fit(x, y, 2, l2=1e-3)
    scores = flagged_score(probe.probabilities(x))
    assert auc(scores, y > 0) > 0.97
    t = threshold_for(scores, y > 0, 0.05)
    assert (scores[y == 0] >= t).mean() <= 0.05
    assert recall_at(scores, y > 0, 0.05) > 0.8
    points = roc(scores, y > 0, [0.0, 1.01])
    assert (points[0].recall, points[0].false_flags) == (1.0, 1.0)
    assert (points[1].recall, points[1].false_flags) == (0.0, 0.0)


def test_a_trained_guard_is_published_and_refuses_damage(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    persona = write_persona(tmp_path / "wren")
    path = train_tiny_guard(tiny_model_dir, persona, tmp_path / "adapters")
    manifest, probe = load(path)
    assert manifest.persona == "wren"
    assert manifest.categories == ["boundary", "disclosure"]
    assert manifest.layer in (2, 4)
    assert manifest.pooling in POOLINGS
    reads = feature_reads(manifest)
    assert all(b in (2, 4) and p in POOLINGS for b, p in reads)
    assert manifest.layer == max(b for b, _ in reads)
    assert manifest.examples == {"boundary": 5, "disclosure": 4, "clear": 7}
    assert (path.parent / manifest.weights).is_file()
    assert probe.weights.shape == (64 * len(reads), 3)
    # Runs are folders; the guard's files sit beside them and are not mistaken for a run.
    from adapters.registry import Registry

    assert Registry(tmp_path / "adapters").runs("wren") == []
    weights = path.parent / manifest.weights
    weights.write_bytes(weights.read_bytes()[:-10])
    with pytest.raises(GuardError, match="does not match the hash"):
        load(path)
    path.write_text(json.dumps({"persona": "wren"}))
    with pytest.raises(GuardError, match="not a guard manifest"):
        load(path)


def test_training_refuses_a_label_without_examples(tmp_path: Path) -> None:
    from adapters.guard.train import GuardTrainError, check_data, persona_data

    persona = write_persona(tmp_path / "wren")
    lines = (persona / "train.jsonl").read_text().splitlines()
    (persona / "train.jsonl").write_text(
        "\n".join(line for line in lines if '"disclosure"' not in line) + "\n"
    )
    with pytest.raises(GuardTrainError, match=r"too few for disclosure \(0\)"):
        check_data(persona_data(str(persona)))


def test_the_guard_cli_refuses_adapter_flags(tmp_path: Path) -> None:
    import subprocess
    import sys

    persona = write_persona(tmp_path / "wren")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "studio",
            "train",
            str(persona),
            "--method",
            "guard",
            "--json",
            "--rank",
            "4",
            "--epochs",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 2
    event = json.loads(out.stdout.strip().splitlines()[-1])
    assert event["event"] == "error"
    assert "--epochs, --rank" in event["message"]


@pytest.mark.parametrize(
    ("reads", "problem"),
    [
        ([[9, "mean"]], "do not fit block"),
        ([[2, "median"]], "do not fit block"),
        ([[2, "mean"], [4, "mean"], [4, "last"]] * 2 + [[2, "last"]], "features for 7 reads"),
    ],
)
def test_a_manifest_whose_reads_do_not_fit_its_weights_is_refused(
    tiny_model_dir: Path, tmp_path: Path, reads: list[Any], problem: str
) -> None:
    persona = write_persona(tmp_path / "wren")
    path = train_tiny_guard(tiny_model_dir, persona, tmp_path / "adapters")
    raw = json.loads(path.read_text())
    raw["reads"] = reads
    raw["layer"] = 4
    path.write_text(json.dumps(raw))
    with pytest.raises(GuardError, match=problem):
        load(path)


def test_a_guard_trained_on_a_model_of_another_width_is_refused(
    tiny_model_dir: Path, tmp_path: Path
) -> None:
    """The engine's hidden width decides how many features each read makes."""
    persona = write_persona(tmp_path / "wren")
    path = train_tiny_guard(tiny_model_dir, persona, tmp_path / "adapters")
    hidden = json.loads((tiny_model_dir / "config.json").read_text())["hidden_size"]
    manifest, probe = load(path, hidden)
    assert probe.weights.shape[0] == hidden * len(feature_reads(manifest))
    with pytest.raises(GuardError, match="trained on another model"):
        load(path, hidden // 2)


@pytest.mark.parametrize(
    ("arrays", "problem"),
    [
        (None, "not a guard's weights"),  # not an npz at all
        ({"mean": [0.0], "scale": [1.0], "weights": [1.0, 2.0]}, "not a guard's weights"),
        ({"mean": [0.0], "scale": [1.0], "weights": [1.0, 2.0], "bias": [0.0]}, "1 dimensions"),
        (
            {"mean": [0.0, 0.0], "scale": [1.0], "weights": [[1.0, 2.0]] * 2, "bias": [0.0, 0.0]},
            "does not fit the weights",
        ),
    ],
)
def test_weights_a_guard_cannot_use_are_refused_by_name(
    tiny_model_dir: Path, tmp_path: Path, arrays: dict[str, Any] | None, problem: str
) -> None:
    """Files whose hash matches their manifest but whose arrays are wrong: a GuardError each."""
    import hashlib
    import io

    path = train_tiny_guard(tiny_model_dir, write_persona(tmp_path / "wren"), tmp_path / "ad")
    raw = json.loads(path.read_text())
    buffer = io.BytesIO()
    if arrays is None:
        buffer.write(b"not a zip")
    else:
        np.savez(buffer, **{k: np.asarray(v, dtype=np.float32) for k, v in arrays.items()})
    payload = buffer.getvalue()
    (path.parent / raw["weights"]).write_bytes(payload)
    raw.update(weights_sha256=hashlib.sha256(payload).hexdigest(), categories=["boundary"])
    raw.update(reads=[[raw["layer"], "mean"]])
    path.write_text(json.dumps(raw))
    with pytest.raises(GuardError, match=problem):
        load(path)
