"""Read one adapter checkpoint and check it against the live model before any weight is written.

The file-level checks (config, base hash, truncation, sha256) are `adapters.verify`'s; this adds
what only the model can tell: every tensor must name a wrapped layer of this model, with the
shapes that layer and the configured rank imply, and finite values. Every problem is listed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import mlx.core as mx

from adapters.manifest import CONFIG, MAX_RANK, WEIGHTS
from adapters.registry import Checkpoint
from adapters.verify import checkpoint_problems
from server.engine.lora_bank import AdapterWeights
from server.engine.types import AdapterError, AdapterRef

SUFFIXES = (".lora_a", ".lora_b")


def read_adapter(
    ref: AdapterRef, base_hash: str, dims: Mapping[str, tuple[int, int]], dtype: mx.Dtype
) -> AdapterWeights:
    """Validate and read an adapter; raise AdapterError listing every problem found."""
    problems = checkpoint_problems(Checkpoint(ref.manifest, ref.path), base_hash)
    if problems:
        raise AdapterError("; ".join(problems))
    rank, scale = _lora_parameters(ref)
    try:
        loaded = mx.load(str(ref.path / WEIGHTS))
    except Exception as exc:
        raise AdapterError(f"{WEIGHTS} cannot be read: {exc}") from None
    if not isinstance(loaded, dict):
        raise AdapterError(f"{WEIGHTS} holds no named tensors")
    layers, problems = _pair_up(loaded, rank, dims)
    if not layers and not problems:
        problems.append(f"{WEIGHTS} holds no LoRA tensors")
    if problems:
        raise AdapterError("; ".join(problems))
    try:
        finite = {
            p: mx.all(mx.isfinite(a)) & mx.all(mx.isfinite(b)) for p, (a, b) in layers.items()
        }
        # One flag for the whole file: a swap reads back one value, not one per layer.
        every = mx.all(mx.stack(list(finite.values())))
        mx.eval(every, finite, layers)
    except Exception as exc:
        raise AdapterError(f"{WEIGHTS} cannot be read: {exc}") from None
    bad = [] if every.item() else sorted(p for p, ok in finite.items() if not ok.item())
    if bad:
        raise AdapterError(f"{WEIGHTS} has NaN or infinite values in {', '.join(bad[:3])}")
    cast = {p: (a.astype(dtype), b.astype(dtype)) for p, (a, b) in layers.items()}
    return AdapterWeights(ref.manifest, rank, scale, cast)


def unservable(persona: str, version: str, fine_tune_type: str) -> str:
    """Why a checkpoint of a type other than `lora` cannot be served, and what to do."""
    hint = (
        f"; `persona extract-lora {persona}@{version}` makes a servable LoRA of it"
        if fine_tune_type in ("full", "dora")
        else ""
    )
    return f"fine_tune_type {fine_tune_type!r} cannot be served; only 'lora' can{hint}"


def _lora_parameters(ref: AdapterRef) -> tuple[int, float]:
    try:
        config = json.loads((ref.path / CONFIG).read_text())
        fine_tune_type = config.get("fine_tune_type", "lora")
        params = config["lora_parameters"]
        rank, scale = int(params["rank"]), float(params["scale"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise AdapterError(f"{CONFIG} is not a usable LoRA config: {exc!r}") from None
    if fine_tune_type != "lora":
        raise AdapterError(unservable(ref.manifest.persona, ref.manifest.version, fine_tune_type))
    if not 0 < rank <= MAX_RANK:
        raise AdapterError(f"rank {rank} is outside the supported 1..{MAX_RANK}")
    return rank, scale


def _pair_up(
    loaded: dict[str, mx.array], rank: int, dims: Mapping[str, tuple[int, int]]
) -> tuple[dict[str, tuple[mx.array, mx.array]], list[str]]:
    problems: list[str] = []
    halves: dict[str, dict[str, mx.array]] = {}
    unknown: list[str] = []
    for name, array in loaded.items():
        if not name.endswith(SUFFIXES):
            problems.append(f"unexpected tensor {name} (not a lora_a or lora_b)")
            continue
        path, part = name[:-7], name[-6:]
        if path not in dims:
            unknown.append(path)
            continue
        halves.setdefault(path, {})[part] = array
    if unknown:
        names = ", ".join(sorted(set(unknown))[:3])
        problems.append(f"{len(set(unknown))} adapted layers do not exist in this model ({names})")
    layers: dict[str, tuple[mx.array, mx.array]] = {}
    shapes: list[str] = []
    for path, parts in sorted(halves.items()):
        a, b = parts.get("lora_a"), parts.get("lora_b")
        if a is None or b is None:
            problems.append(f"{path} has only one of lora_a and lora_b")
            continue
        d_in, d_out = dims[path]
        for part, array, want in (("lora_a", a, (d_in, rank)), ("lora_b", b, (rank, d_out))):
            if tuple(array.shape) != want:
                shapes.append(f"{path}.{part} has shape {tuple(array.shape)}, expected {want}")
        layers[path] = (a, b)
    if shapes:
        more = f" and {len(shapes) - 2} more" if len(shapes) > 2 else ""
        problems.append(f"wrong shapes (rank {rank}): {'; '.join(shapes[:2])}{more}")
    return layers, problems
