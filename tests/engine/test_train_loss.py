"""The chunked output-layer loss equals plain cross-entropy over full logits, value and gradient."""

from __future__ import annotations

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import pytest
from mlx.utils import tree_flatten
from train_files import tiny_lora_model

from adapters.training.batching import collate
from adapters.training.dataset import Example
from adapters.training.loss import TokenLoss, find_head, head_loss


def _examples(n: int, seed: int) -> list[Example]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = int(rng.integers(12, 40))
        tokens = rng.integers(3, 5000, size=length).astype(np.int32)
        tokens[0] = 2
        learn = np.zeros(length, dtype=bool)
        learn[length // 2 :] = True
        out.append(Example(tokens, learn, f"rows.jsonl:{i + 1}"))
    return out


def _reference(model: nn.Module, batch) -> mx.array:  # type: ignore[no-untyped-def]
    logits = model(mx.array(batch.inputs))
    flat = logits.reshape(-1, logits.shape[-1])[mx.array(batch.positions)]
    return nn.losses.cross_entropy(flat, mx.array(batch.targets)).mean()


@pytest.fixture
def lora_model(tiny_model_dir):  # type: ignore[no-untyped-def]
    return tiny_lora_model(tiny_model_dir, seed=1)


def test_the_head_split_is_found_and_matches_the_forward(lora_model: nn.Module) -> None:
    head = find_head(lora_model)
    assert head is not None
    assert head.weight.shape == (262144, 64)


def test_loss_and_gradients_match_full_logits(lora_model: nn.Module) -> None:
    batch = collate(_examples(3, seed=0), [0, 1, 2])
    expected, expected_grads = nn.value_and_grad(lora_model, _reference)(lora_model, batch)
    loss = TokenLoss(lora_model)
    assert loss.head is not None
    total, count, grads = loss.value_and_grad(lora_model, batch)
    assert count == batch.targets.shape[0]
    assert total / count == pytest.approx(expected.item(), rel=1e-5)
    flat, ref = dict(tree_flatten(grads)), dict(tree_flatten(expected_grads))
    assert set(flat) == set(ref)
    assert len(flat) == 3 * 7 * 2
    for name, value in ref.items():
        scale = max(mx.abs(value).max().item(), 1e-8)
        assert mx.abs(flat[name] - value).max().item() <= 1e-4 * scale, name


def test_evaluate_matches_training_loss(lora_model: nn.Module) -> None:
    batch = collate(_examples(2, seed=3), [0, 1])
    loss = TokenLoss(lora_model)
    total, count, _ = loss.value_and_grad(lora_model, batch)
    assert loss.evaluate(lora_model, batch) == (pytest.approx(total, rel=1e-6), count)


def test_chunking_does_not_change_the_result() -> None:
    mx.random.seed(0)
    weight = mx.random.normal((1000, 16))
    hidden = mx.random.normal((37, 16))
    targets = mx.arange(37) * 7
    whole, dh_whole = head_loss(hidden, targets, weight, grad=True, chunk=64)
    parts, dh_parts = head_loss(hidden, targets, weight, grad=True, chunk=5)
    alone, none = head_loss(hidden, targets, weight, grad=False, chunk=5)
    assert none is None
    assert parts.item() == pytest.approx(whole.item(), rel=1e-6)
    assert alone.item() == pytest.approx(whole.item(), rel=1e-6)
    assert dh_whole is not None
    assert dh_parts is not None
    assert mx.allclose(dh_whole, dh_parts, atol=1e-6).item()
    logits = hidden @ weight.T
    reference = nn.losses.cross_entropy(logits, targets).sum()
    assert whole.item() == pytest.approx(reference.item(), rel=1e-5)
    expected = mx.grad(lambda h: nn.losses.cross_entropy(h @ weight.T, targets).sum())(hidden)
    assert mx.allclose(dh_whole, expected, atol=1e-5).item()


def test_a_model_whose_logits_are_not_a_plain_head_falls_back(lora_model: nn.Module) -> None:
    class Capped(nn.Module):
        def __init__(self, inner: nn.Module) -> None:
            super().__init__()
            self.model = inner.model
            self.inner = inner

        def __call__(self, x: mx.array) -> mx.array:
            return mx.tanh(self.inner(x) / 30.0) * 30.0

    capped = Capped(lora_model)
    assert find_head(capped) is None
    batch = collate(_examples(2, seed=5), [0, 1])
    loss = TokenLoss(capped)
    total, count, _ = loss.value_and_grad(capped, batch)
    assert total / count == pytest.approx(_reference(capped, batch).item(), rel=1e-5)


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_dir) -> None:  # type: ignore[no-untyped-def]
    from mlx_lm.utils import load_model

    from adapters.training.model import make_trainable
    from data.card import Training

    batch = collate(_examples(2, seed=9), [0, 1])
    results = []
    for checkpointed in (False, True):
        model, _ = load_model(tiny_model_dir)
        mx.random.seed(4)
        make_trainable(model, Training(layers=2, rank=4, grad_checkpoint=checkpointed))
        for _, module in model.named_modules():
            if hasattr(module, "lora_b"):
                module.lora_b = mx.ones(module.lora_b.shape) * 0.01
        total, _, grads = TokenLoss(model).value_and_grad(model, batch)
        results.append((total, dict(tree_flatten(grads))))
        assert type(model.layers[-1]).__name__.startswith("Checkpointed") == checkpointed
        assert not type(model.layers[0]).__name__.startswith("Checkpointed")
    (plain, plain_grads), (ckpt, ckpt_grads) = results
    assert ckpt == pytest.approx(plain, rel=1e-6)
    assert set(ckpt_grads) == set(plain_grads)
    for name, value in plain_grads.items():
        assert mx.allclose(ckpt_grads[name], value, rtol=1e-4, atol=1e-7).item(), name
