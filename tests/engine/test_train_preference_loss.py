"""DPO and ORPO on the chunked output layer against an independent NumPy computation."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from train_files import tiny_lora_model

from adapters.training.dataset import Example
from adapters.training.preference import PairExample, PreferenceLoss, collate_pairs

BETA = 0.3


def _pairs(n: int, seed: int, reference: bool) -> list[PairExample]:
    """Pairs sharing a random prompt; replies of different lengths, loss on the reply only."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        prompt = rng.integers(3, 5000, size=int(rng.integers(6, 14))).astype(np.int32)
        prompt[0] = 2
        sides = []
        for _ in range(2):
            reply = rng.integers(3, 5000, size=int(rng.integers(3, 20))).astype(np.int32)
            tokens = np.concatenate([prompt, reply])
            learn = np.zeros(len(tokens), dtype=bool)
            learn[len(prompt) :] = True
            sides.append(Example(tokens, learn, f"p.jsonl:{i + 1}"))
        ref = (float(rng.normal(-40, 5)), float(rng.normal(-40, 5))) if reference else None
        out.append(PairExample(sides[0], sides[1], f"p.jsonl:{i + 1}", ref))
    return out


def _numpy_log_probs(model: nn.Module, example: Example) -> tuple[float, int]:
    """Summed log-probability of the learned tokens: full logits, log-softmax in float64."""
    logits = np.array(model(mx.array(example.tokens[None, :-1]))[0], dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    logp = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    where = np.flatnonzero(example.learn[1:])
    return float(logp[where, example.tokens[1:][where]].sum()), len(where)


def _softplus(x: float) -> float:
    return float(np.logaddexp(0.0, x))


def _numpy_loss(
    model: nn.Module, pairs: list[PairExample], method: str, rpo_alpha: float = 0.0
) -> float:
    losses = []
    for p in pairs:
        (pc, nc), (pr, nr) = _numpy_log_probs(model, p.chosen), _numpy_log_probs(model, p.rejected)
        if method == "dpo":
            assert p.reference is not None
            margin = (pc - p.reference[0]) - (pr - p.reference[1])
            losses.append(_softplus(-BETA * margin) + rpo_alpha * (-pc / nc))
        else:
            mc, mr = pc / nc, pr / nr
            odds_c = mc - np.log1p(-np.exp(mc))
            odds_r = mr - np.log1p(-np.exp(mr))
            losses.append(-mc + BETA * _softplus(-(odds_c - odds_r)))
    return float(np.mean(losses))


@pytest.fixture
def lora_model(tiny_model_dir):  # type: ignore[no-untyped-def]
    return tiny_lora_model(tiny_model_dir, seed=2)


@pytest.mark.parametrize(("method", "rpo_alpha"), [("dpo", 0.0), ("dpo", 0.7), ("orpo", 0.0)])
def test_loss_matches_numpy(lora_model: nn.Module, method: str, rpo_alpha: float) -> None:
    pairs = _pairs(3, seed=4, reference=method == "dpo")
    loss = PreferenceLoss(lora_model, method, BETA, rpo_alpha)
    assert loss.head is not None  # the chunked path, not the fallback
    total, count = loss.evaluate(lora_model, collate_pairs(pairs, [0, 1, 2]))
    assert count == 3
    want = _numpy_loss(lora_model, pairs, method, rpo_alpha)
    assert total / count == pytest.approx(want, rel=1e-4)
    if rpo_alpha:  # the NLL term is really there
        assert want - _numpy_loss(lora_model, pairs, method) > 1.0


@pytest.mark.parametrize(("method", "rpo_alpha"), [("dpo", 0.0), ("dpo", 0.7), ("orpo", 0.0)])
def test_gradients_match_full_logits(lora_model: nn.Module, method: str, rpo_alpha: float) -> None:
    """The custom VJP's gradients equal autodiff through the full logits of every position."""
    pairs = _pairs(3, seed=5, reference=method == "dpo")
    batch = collate_pairs(pairs, [2, 0, 1])
    chunked = PreferenceLoss(lora_model, method, BETA, rpo_alpha)
    value, _, grads = chunked.value_and_grad(lora_model, batch)
    full = PreferenceLoss(lora_model, method, BETA, rpo_alpha)
    full.head = None
    expected, _, expected_grads = full.value_and_grad(lora_model, batch)
    assert value == pytest.approx(expected, rel=1e-4)
    got, want = dict(tree_flatten(grads)), dict(tree_flatten(expected_grads))
    assert set(got) == set(want)
    assert got
    for name, g in want.items():
        scale = float(mx.abs(g).max().item())
        assert scale > 0, name
        assert float(mx.abs(got[name] - g).max().item()) <= 2e-3 * scale, name


def test_dpo_starts_at_log_two_and_learns_the_preference(lora_model: nn.Module) -> None:
    """With the reference equal to the policy the loss is log 2; a few steps widen the margin."""
    import mlx.optimizers as optim

    from adapters.training.preference import preference_margin, reference_log_probs

    pairs = _pairs(4, seed=6, reference=False)
    loss = PreferenceLoss(lora_model, "dpo", BETA)
    ref = reference_log_probs(loss, lora_model, pairs, batch_size=2)
    for i, (a, b) in enumerate(ref):
        assert a == pytest.approx(_numpy_log_probs(lora_model, pairs[i].chosen)[0], rel=1e-4)
        assert b == pytest.approx(_numpy_log_probs(lora_model, pairs[i].rejected)[0], rel=1e-4)
    pairs = [
        PairExample(p.chosen, p.rejected, p.where, (r[0], r[1]))
        for p, r in zip(pairs, ref, strict=True)
    ]
    batch = collate_pairs(pairs, [0, 1, 2, 3])
    first, count, _ = loss.value_and_grad(lora_model, batch)
    assert first / count == pytest.approx(np.log(2), abs=1e-4)
    optimizer = optim.Adam(learning_rate=1e-2)
    for _ in range(5):
        _, _, grads = loss.value_and_grad(lora_model, batch)
        optimizer.update(lora_model, grads)
    last, _ = loss.evaluate(lora_model, batch)
    assert last / count < first / count - 0.05
    policy, _ = loss.sequence_log_probs(lora_model, batch, grad=False)
    assert (preference_margin(np.array(policy), batch.reference) > 0).all()
