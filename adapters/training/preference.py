"""Preference tuning, DPO and ORPO, on the same chunked output layer as supervised training.

A pair is two tokenized conversations that share their prompt: the preferred reply and the
non-preferred one. Only the reply tokens carry loss. A batch of B pairs is one padded batch of 2B
sequences (the B preferred first), so the body runs once per step and the output layer only at
the reply positions, chunk by chunk, exactly as for SFT. What changes is the loss on top:

- each position's log-probability of its target comes from `token_nll`, a custom function whose
  VJP scales each position's hand-written gradient `(softmax - onehot) @ W` by its own cotangent;
- each sequence's log-probability is the sum over its reply tokens (a segment sum, autodiffed);
- **DPO**: `-log sigmoid(beta * ((pc - rc) - (pn - rn)))` per pair, where `p` is the policy and
  `r` the reference (the frozen starting checkpoint). The reference never changes, so its
  log-probabilities are computed once before the first step and stored with the run;
- **RPO** (`rpo_alpha > 0`): DPO plus `rpo_alpha` times the preferred reply's mean token NLL, so
  the preferred replies stay likely while the margin grows (plain DPO can lower both);
- **ORPO**: the preferred reply's mean token NLL plus `beta * -log sigmoid(log odds ratio)`, with
  odds taken on the mean per-token probability (no reference model).

`mlx-lm-lora` implements both losses, but on full logits of every position (`model(inputs)`):
for Gemma's 262,144-token vocabulary that is the cost our chunked head exists to avoid.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np

from data.atomic import write_bytes
from data.dataset import Row
from data.problem import Problem, error
from data.records import PreferenceRecord, with_system
from data.tokens import ChatTokenizer, chat_ids

from .batching import Batch, collate, eval_batches
from .dataset import Example, TemplateError, encode_messages
from .loss import CHUNK, _shifted_exp, find_head

REFERENCE_FILE = "reference.json"
"""The reference model's log-probabilities of every pair, written before the first step."""


@dataclass(frozen=True, eq=False)
class PairExample:
    """One tokenized preference pair; `reference` holds the frozen model's (preferred,
    non-preferred) summed log-probabilities once computed."""

    chosen: Example
    rejected: Example
    where: str
    reference: tuple[float, float] | None = None

    @property
    def length(self) -> int:
        """Tokens of the longer side (what bucketing sorts by)."""
        return max(self.chosen.length, self.rejected.length)

    @property
    def targets(self) -> int:
        """Reply tokens of both sides that carry loss."""
        return self.chosen.targets + self.rejected.targets


@dataclass(frozen=True, eq=False)
class PairBatch:
    """B pairs as one padded batch of 2B sequences: the preferred ones, then the others."""

    rows: tuple[int, ...]
    batch: Batch
    pairs: int
    reference: np.ndarray | None
    """float32 (B, 2): the reference log-probabilities, or None (ORPO, or not yet computed)."""

    @property
    def tokens(self) -> int:
        """Real input tokens of both sides."""
        return self.batch.tokens


def encode_pairs(
    rows: Sequence[Row],
    tokenizer: ChatTokenizer,
    system_prompt: str | None,
    stop_ids: Collection[int],
    max_seq_length: int,
) -> tuple[list[PairExample], list[Problem]]:
    """Tokenize preference rows; only each side's final reply carries loss. Lists problems."""
    pairs: list[PairExample] = []
    problems: list[Problem] = []
    for row in rows:
        record = row.record
        if not isinstance(record, PreferenceRecord):
            problems.append(
                error(row.file, row.line, "a preference method trains on pairs "
                      "(input, preferred_output, non_preferred_output), not on this record")
            )  # fmt: skip
            continue
        before = len(problems)
        prompt = with_system(record.input.messages, system_prompt)
        try:
            start = len(chat_ids(tokenizer, prompt, add_generation_prompt=True))
            sides = [
                encode_messages(tokenizer, with_system(side, system_prompt), stop_ids)
                for side in (record.chosen, record.rejected)
            ]
        except TemplateError as exc:
            problems.append(error(row.file, row.line, str(exc)))
            continue
        examples: list[Example] = []
        for name, (tokens, learn) in zip(("preferred", "non-preferred"), sides, strict=True):
            learn[:start] = False  # earlier assistant turns are context here, not the choice
            if len(tokens) > max_seq_length:
                problems.append(
                    error(row.file, row.line, f"{name}: {len(tokens)} tokens exceeds "
                          f"max_seq_length {max_seq_length}; training would cut the reply")
                )  # fmt: skip
            elif not learn[1:].any():
                problems.append(error(row.file, row.line, f"{name}: no reply tokens to learn"))
            examples.append(Example(tokens, learn, row.where))
        if len(problems) == before:
            pairs.append(PairExample(examples[0], examples[1], row.where))
    return pairs, problems


def collate_pairs(examples: Sequence[PairExample], rows: Sequence[int]) -> PairBatch:
    """Pad the chosen pairs into one batch of 2B sequences."""
    picked = [examples[i] for i in rows]
    sequences = [p.chosen for p in picked] + [p.rejected for p in picked]
    batch = collate(sequences, range(len(sequences)))
    refs = [p.reference for p in picked]
    reference = None
    if all(r is not None for r in refs):
        reference = np.asarray(refs, dtype=np.float32)
    return PairBatch(tuple(rows), batch, len(picked), reference)


def head_token_nll(
    hidden: mx.array, targets: mx.array, weight: mx.array, *, grad: bool, chunk: int = CHUNK
) -> tuple[mx.array, mx.array | None]:
    """Per-position NLL (P,) of `hidden @ W.T` against `targets` (fp32), and each position's
    gradient `(softmax - onehot) @ W` (P, D) when `grad`."""
    losses: list[mx.array] = []
    grads: list[mx.array] = []
    for start in range(0, hidden.shape[0], chunk):
        h = hidden[start : start + chunk]
        t = targets[start : start + chunk, None]
        if start:
            # One chunk's logits at a time: finish (and free) the last before the next.
            h = mx.depends(h, grads[-1] if grad else losses[-1])
        z = (h @ weight.T).astype(mx.float32)
        peak = z.max(axis=-1, keepdims=True)
        picked = mx.take_along_axis(z, t, axis=-1)
        e = _shifted_exp(z, peak)
        sums = e.sum(axis=-1, keepdims=True)
        losses.append((mx.log(sums) + peak - picked)[:, 0])
        if grad:
            g = (e.astype(weight.dtype) @ weight) * (1.0 / sums) - weight[t[:, 0]]
            grads.append(g.astype(hidden.dtype))
    nll = mx.concatenate(losses) if losses else mx.zeros((0,), dtype=mx.float32)
    if not grad:
        return nll, None
    return nll, mx.concatenate(grads) if grads else mx.zeros_like(hidden)


@mx.custom_function
def token_nll(hidden: mx.array, targets: mx.array, weight: mx.array) -> tuple[mx.array, mx.array]:
    """Per-position NLL and its per-position gradient, differentiable in `hidden`."""
    nll, dh = head_token_nll(hidden, targets, weight, grad=True)
    assert dh is not None
    return nll, dh


@token_nll.vjp
def _token_nll_vjp(
    primals: tuple[mx.array, ...], cotangents: tuple[mx.array, ...], outputs: tuple[mx.array, ...]
) -> tuple[mx.array, ...]:
    # Position i's loss depends only on hidden row i, so the VJP is a row-wise scaling.
    _, targets, weight = primals
    return cotangents[0][:, None] * outputs[1], mx.zeros_like(targets), mx.zeros_like(weight)


def dpo_loss(
    policy: mx.array,
    reference: mx.array,
    beta: float,
    counts: mx.array | None = None,
    rpo_alpha: float = 0.0,
) -> mx.array:
    """Per-pair DPO loss from (B, 2) summed log-probs (preferred, non-preferred); with
    `rpo_alpha` and the (B, 2) reply token counts, plus the preferred reply's mean token NLL."""
    margin = (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])
    loss = mx.logaddexp(mx.zeros_like(margin), -beta * margin)
    if rpo_alpha and counts is not None:
        loss = loss + rpo_alpha * (-policy[:, 0] / counts[:, 0])
    return loss


def orpo_loss(policy: mx.array, counts: mx.array, beta: float) -> mx.array:
    """Per-pair ORPO loss from (B, 2) summed log-probs and (B, 2) reply token counts."""
    mean = policy / counts
    # log odds = log p - log(1 - p), with log(1 - p) = log(-expm1(log p)), stable near p = 1.
    log_odds = mean - mx.log(-mx.expm1(mx.minimum(mean, -1e-7)))
    ratio = log_odds[:, 0] - log_odds[:, 1]
    return -mean[:, 0] + beta * mx.logaddexp(mx.zeros_like(ratio), -ratio)


def preference_margin(policy: np.ndarray, reference: np.ndarray | None) -> np.ndarray:
    """Implicit reward margins (B,): positive where the preferred reply is favoured."""
    if reference is None:
        return policy[:, 0] - policy[:, 1]
    return (policy[:, 0] - reference[:, 0]) - (policy[:, 1] - reference[:, 1])


class PreferenceLoss:
    """The DPO or ORPO objective over pair batches, with the trainer's objective interface."""

    def __init__(self, model: nn.Module, method: str, beta: float, rpo_alpha: float = 0.0) -> None:
        if method not in ("dpo", "orpo"):
            raise ValueError(f"no preference loss for method {method!r}")
        self.method = method
        self.beta = beta
        self.rpo_alpha = rpo_alpha
        self.head = find_head(model)
        """The body/output split, or None to use the model's full forward."""
        self._grad = nn.value_and_grad(model, self._objective)

    @staticmethod
    def collate(examples: Sequence[PairExample], rows: Sequence[int]) -> PairBatch:
        """A pair batch of the given rows."""
        return collate_pairs(examples, rows)

    def value_and_grad(self, model: nn.Module, batch: PairBatch) -> tuple[float, int, dict]:
        """(summed loss over pairs, pairs, gradients of the mean loss) for one batch."""
        (_, total), grads = self._grad(model, batch)
        mx.eval(total, grads)
        return float(total.item()), batch.pairs, grads

    def evaluate(self, model: nn.Module, batch: PairBatch) -> tuple[float, int]:
        """(summed loss over pairs, pairs) without gradients."""
        policy, counts = self.sequence_log_probs(model, batch, grad=False)
        total = self._pair_losses(policy, counts, batch).sum()
        return float(total.item()), batch.pairs

    def sequence_log_probs(
        self, model: nn.Module, batch: PairBatch, *, grad: bool = True
    ) -> tuple[mx.array, mx.array]:
        """(B, 2) summed reply log-probs of (preferred, non-preferred), and their token counts."""
        b = batch.batch
        width = b.inputs.shape[1]
        segments = mx.array(b.positions // width)
        if self.head is None:
            logits = model(mx.array(b.inputs))
            flat = logits.reshape(-1, logits.shape[-1])[mx.array(b.positions)]
            nll = nn.losses.cross_entropy(flat.astype(mx.float32), mx.array(b.targets))
        else:
            h = self.head.body(mx.array(b.inputs))
            hidden = h.reshape(-1, h.shape[-1])[mx.array(b.positions)]
            targets = mx.array(b.targets)
            if grad:
                nll, _ = token_nll(hidden, targets, self.head.weight)
            else:
                nll, _ = head_token_nll(hidden, targets, self.head.weight, grad=False)
        onehot = (segments[None, :] == mx.arange(2 * batch.pairs)[:, None]).astype(mx.float32)
        sums = onehot @ -nll
        counts = onehot.sum(axis=1)
        return sums.reshape(2, -1).T, counts.reshape(2, -1).T

    def _pair_losses(self, policy: mx.array, counts: mx.array, batch: PairBatch) -> mx.array:
        if self.method == "orpo":
            return orpo_loss(policy, counts, self.beta)
        if batch.reference is None:
            raise RuntimeError("DPO needs the reference log-probabilities of every pair")
        return dpo_loss(policy, mx.array(batch.reference), self.beta, counts, self.rpo_alpha)

    def _objective(self, model: nn.Module, batch: PairBatch) -> tuple[mx.array, mx.array]:
        policy, counts = self.sequence_log_probs(model, batch)
        total = self._pair_losses(policy, counts, batch).sum()
        return total / batch.pairs, total


def reference_log_probs(
    loss: PreferenceLoss, model: nn.Module, pairs: Sequence[PairExample], batch_size: int
) -> np.ndarray:
    """(N, 2) float64 summed reply log-probs of every pair under the model as it is now."""
    model.eval()
    out = np.zeros((len(pairs), 2), dtype=np.float64)
    for rows in eval_batches([p.length for p in pairs], batch_size):
        policy, _ = loss.sequence_log_probs(model, collate_pairs(pairs, rows), grad=False)
        out[list(rows)] = np.array(policy, dtype=np.float64)
    model.train()
    return out


def attach_reference(
    run_dir: Path,
    loss: PreferenceLoss,
    model: nn.Module,
    splits: dict[str, list[PairExample]],
    batch_size: int,
) -> None:
    """Give every pair its reference log-probs: read from the run, else computed and saved.

    Called while the model still holds the starting weights; a resumed run reads the file, so
    its reference is the starting checkpoint's, not its own latest weights.
    """
    path = run_dir / REFERENCE_FILE
    stored: dict[str, list[list[float]]] = {}
    if path.is_file():
        stored = json.loads(path.read_text())
    fresh = False
    for name, pairs in splits.items():
        values = stored.get(name)
        if values is None or len(values) != len(pairs):
            values = reference_log_probs(loss, model, pairs, batch_size).tolist()
            stored[name] = values
            fresh = True
        pairs[:] = [replace(p, reference=(v[0], v[1])) for p, v in zip(pairs, values, strict=True)]
    if fresh:
        write_bytes(path, json.dumps(stored).encode())
