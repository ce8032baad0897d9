"""The guard's classifier: class-weighted, L2-regularised multinomial logistic regression (NumPy).

Features are standardised with the training set's mean and spread; class 0 is `clear`, the rest
are the card's categories. A trained guard is two files in the persona's adapter folder, beside
its runs: `guard-<hash>.npz` (the weights) and `guard.json` (the manifest, written last and
naming the weights file by hash), so a reader sees the old guard or the new one, never half.
No MLX here: the server scores features the engine thread computed.
"""

from __future__ import annotations

import hashlib
import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np

from data.atomic import write_bytes

MANIFEST = "guard.json"
POOLINGS = ("mean", "last", "max")
"""How a block's states become one vector: the mean or the elementwise max over the user's tokens,
or the final token's state."""
FORMAT = 1


class GuardManifest(msgspec.Struct, frozen=True, kw_only=True):
    """A trained guard's identity: what it reads, what it says, how well it did."""

    format: int = FORMAT
    persona: str
    """The persona it guards, or `persona-guard` for the general guard."""
    categories: list[str]
    """The flagged classes, in weight-column order after `clear`."""
    layer: int
    """The deepest block read: the base model runs this many blocks."""
    pooling: str
    """`mean` over the user text or the `last` token of the prefill (of the first read)."""
    reads: list[tuple[int, str]] = []
    """The (block, pooling) states joined side by side into the features, in order; empty for a
    guard that reads one state, (`layer`, `pooling`)."""
    threshold: float
    """P(flagged) at or above which a prompt is flagged, chosen on held-out folds."""
    l2: float
    base_model: str
    base_hash: str
    """The base model the features come from; a guard for another base is refused."""
    weights: str
    """The weights file's name (`guard-<sha256[:16]>.npz`)."""
    weights_sha256: str
    created: int
    examples: dict[str, int] = {}
    """Training examples per label."""
    metrics: dict[str, float] = {}
    """Cross-validated measurements (recall, false flags, AUC) of the chosen settings."""


def feature_reads(manifest: GuardManifest) -> list[tuple[int, str]]:
    """The (block, pooling) states a guard's features join, in order."""
    return [tuple(r) for r in manifest.reads] or [(manifest.layer, manifest.pooling)]  # type: ignore[misc]


class GuardError(Exception):
    """A guard file is missing, damaged or made for another base model."""


@dataclass(frozen=True)
class Probe:
    """Weights of one trained guard."""

    mean: np.ndarray
    scale: np.ndarray
    weights: np.ndarray
    """(hidden, 1 + categories)."""
    bias: np.ndarray

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, 1 + categories) class probabilities of (n, hidden) features; column 0 is clear."""
        z = (features - self.mean) / self.scale
        return _softmax(z @ self.weights + self.bias)


def fit(
    features: np.ndarray, labels: np.ndarray, classes: int, l2: float, iters: int = 400
) -> Probe:
    """Train on (n, hidden) features and integer labels in [0, classes); classes are weighted
    inversely to their counts, so a rare category weighs as much as `clear`."""
    mean = features.mean(axis=0)
    scale = features.std(axis=0) + 1e-6
    x = ((features - mean) / scale).astype(np.float32)
    n, d = x.shape
    counts = np.bincount(labels, minlength=classes).astype(np.float64)
    present = counts > 0
    class_weight = np.where(present, n / (present.sum() * np.maximum(counts, 1)), 0.0)
    sample_weight = class_weight[labels] / n
    onehot = np.eye(classes)[labels]
    # Step size from the largest eigenvalue of the weighted Gram matrix (Lipschitz bound).
    xw = x * np.sqrt(sample_weight)[:, None].astype(np.float32)
    top = _top_eigenvalue(xw) + float(sample_weight.sum())
    step = 1.0 / (0.5 * top + l2)
    sample_weight = sample_weight.astype(np.float32)
    onehot = onehot.astype(np.float32)
    w = np.zeros((d, classes), dtype=np.float32)
    b = np.zeros(classes, dtype=np.float32)
    vw, vb = w.copy(), b.copy()
    for t in range(1, iters + 1):
        # Nesterov's accelerated gradient on a smooth convex loss.
        p = _softmax(x @ vw + vb)
        err = (p - onehot) * sample_weight[:, None]
        gw = x.T @ err + l2 * vw
        gb = err.sum(axis=0)
        w_next, b_next = vw - step * gw, vb - step * gb
        momentum = (t - 1) / (t + 2)
        vw = w_next + momentum * (w_next - w)
        vb = b_next + momentum * (b_next - b)
        w, b = w_next, b_next
    return Probe(mean.astype(np.float32), scale.astype(np.float32),
                 w.astype(np.float32), b.astype(np.float32))  # fmt: skip


def _top_eigenvalue(x: np.ndarray, rounds: int = 30) -> float:
    """The largest eigenvalue of x.T @ x by power iteration (an upper bound is all we need)."""
    v = np.ones(x.shape[1], dtype=np.float32) / np.sqrt(x.shape[1])
    value = 0.0
    for _ in range(rounds):
        w = x.T @ (x @ v)
        value = float(np.linalg.norm(w))
        if value == 0.0:
            return 0.0
        v = w / value
    return value * 1.05


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def flagged_score(probabilities: np.ndarray) -> np.ndarray:
    """P(flagged) = 1 - P(clear), per row."""
    return 1.0 - probabilities[:, 0]


def encode_weights(probe: Probe) -> bytes:
    """The weights as `.npz` bytes."""
    buffer = io.BytesIO()
    np.savez(buffer, mean=probe.mean, scale=probe.scale, weights=probe.weights, bias=probe.bias)
    return buffer.getvalue()


def publish(folder: Path, probe: Probe, manifest: GuardManifest) -> Path:
    """Write the weights, then the manifest last (each atomically); return the manifest path.

    Weights of earlier guards in the folder are removed once the new manifest is in place.
    """
    payload = encode_weights(probe)
    digest = hashlib.sha256(payload).hexdigest()
    name = f"guard-{digest[:16]}.npz"
    write_bytes(folder / name, payload)
    final = msgspec.structs.replace(
        manifest, weights=name, weights_sha256=digest, created=int(time.time())
    )
    path = folder / MANIFEST
    write_bytes(path, msgspec.json.format(msgspec.json.encode(final), indent=2) + b"\n")
    for old in folder.glob("guard-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)
    return path


def load(path: Path, hidden: int | None = None) -> tuple[GuardManifest, Probe]:
    """Read a published guard (its `guard.json`); GuardError says what is wrong.

    `hidden` is the width of the base model's hidden states; when given, the weights must hold
    exactly one row per feature the manifest's reads produce (`hidden` x reads).
    """
    try:
        manifest = msgspec.json.decode(path.read_bytes(), type=GuardManifest)
    except OSError as exc:
        raise GuardError(f"{path}: cannot read: {exc.strerror}") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise GuardError(f"{path}: not a guard manifest: {exc}") from None
    if manifest.format != FORMAT:
        raise GuardError(f"{path}: guard format {manifest.format} is not {FORMAT}")
    weights = path.parent / Path(manifest.weights).name
    try:
        payload = weights.read_bytes()
    except OSError as exc:
        raise GuardError(f"{weights}: cannot read: {exc.strerror}") from None
    if hashlib.sha256(payload).hexdigest() != manifest.weights_sha256:
        raise GuardError(f"{weights}: does not match the hash in {path.name}")
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as data:
            probe = Probe(data["mean"], data["scale"], data["weights"], data["bias"])
    except (KeyError, ValueError, OSError, zipfile.BadZipFile) as exc:
        raise GuardError(f"{weights}: not a guard's weights: {exc}") from None
    if probe.weights.ndim != 2:
        raise GuardError(f"{path}: weights have {probe.weights.ndim} dimensions, not 2")
    if probe.weights.shape[1] != 1 + len(manifest.categories):
        raise GuardError(f"{path}: weights have {probe.weights.shape[1]} classes")
    reads = feature_reads(manifest)
    if any(p not in POOLINGS or not 1 <= b <= manifest.layer for b, p in reads):
        raise GuardError(f"{path}: reads {reads} do not fit block {manifest.layer}")
    rows = probe.weights.shape[0]
    if rows % len(reads):
        raise GuardError(f"{path}: {rows} features for {len(reads)} reads")
    if hidden is not None and rows != hidden * len(reads):
        raise GuardError(
            f"{path}: {rows} features, but {len(reads)} reads of this model's {hidden}-wide "
            f"hidden states make {hidden * len(reads)}; it was trained on another model"
        )
    if (
        probe.mean.shape != (rows,)
        or probe.scale.shape != (rows,)
        or probe.bias.shape != (probe.weights.shape[1],)
    ):
        raise GuardError(f"{path}: the standardisation or the bias does not fit the weights")
    return manifest, probe
