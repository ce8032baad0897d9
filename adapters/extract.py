"""Serve a full or DoRA fine-tune as a LoRA: a low-rank extraction of one checkpoint's weight
changes.

The engine serves every persona from one shared base model plus a bank of LoRA factors, so a full
or DoRA fine-tune cannot be hot-swapped as it is. This turns one of its checkpoints into a LoRA
checkpoint of a new run, which the server picks up like any other. A DoRA checkpoint is first
fused into the weights it stands for, as mlx-lm fuses it: `W' = m / |W + s B^T A^T|_row *
(W + s B^T A^T)`, which rescales every output row and so is not low-rank in general; the SVD
below then factors `W' - W` like a full fine-tune's.

For each adapted linear layer with base weight W (out x in) and tuned weight W', the change
D = W' - W is factored by a truncated SVD, D ~ U_r S_r V_r^T, the best rank-r approximation in the
Frobenius norm (Eckart-Young). The factors are mlx-lm's: `lora_a = V_r sqrt(S_r)` (in x r) and
`lora_b = sqrt(S_r) U_r^T` (r x out) at scale 1, so `y = x W^T + (x lora_a) lora_b`.

A fine-tune also changes the norms. Where a norm only scales the input of the layers right after it
(Gemma's `input_layernorm` before q/k/v, `pre_feedforward_layernorm` before gate/up), its change is
folded into those layers exactly before the SVD: `W' diag((o + g') / (o + g))`, with `o` the norm's
offset (Gemma multiplies by `1 + weight`). The other norms (q/k norms, the post-attention and
post-feed-forward norms) cannot be written as a LoRA; their change is dropped and reported, and the
validation loss of the result says what that costs.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlx.core as mx
import mlx.nn as nn
import msgspec
from mlx.utils import tree_flatten

from adapters.base import content_hash
from adapters.manifest import CONFIG, MAX_RANK, WEIGHTS, LoraParams
from adapters.registry import (
    MAX_LABEL,
    SAFE_NAME,
    Registry,
    RegistryError,
    parse_model_id,
    publish_checkpoint,
    set_marker,
)
from adapters.training.config import RunConfig
from adapters.training.record import RUN_FILE
from adapters.verify import checkpoint_problems
from data.atomic import write_bytes, write_text

if TYPE_CHECKING:
    from adapters.training.prepare import Prepared

FOLDS: dict[str, tuple[float, dict[str, tuple[str, ...]]]] = {
    model_type: (
        1.0,
        {
            "input_layernorm": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
            "pre_feedforward_layernorm": ("mlp.gate_proj", "mlp.up_proj"),
        },
    )
    for model_type in ("gemma3", "gemma3_text")
}
"""model_type -> (norm offset, norm name -> the linear layers it feeds), per block."""

DTYPES = {"float32": mx.float32, "float16": mx.float16, "bfloat16": mx.bfloat16}
"""How the factors may be stored; float16 halves the file at a relative error near 5e-4."""

BLOCK = re.compile(r"^(?P<block>(?:.+\.)?layers\.\d+)\.(?P<rest>.+)\.weight$")


class ExtractError(Exception):
    """A checkpoint that cannot be extracted; the message says why."""


@dataclass(frozen=True)
class Extraction:
    """The LoRA factors of one extracted checkpoint and what the extraction kept."""

    weights: dict[str, mx.array]
    """`<layer path>.lora_a` (in x rank) and `.lora_b` (rank x out), float32."""
    lora: LoraParams
    kept: float
    """Share of the summed squared change (Frobenius) the factors keep, 0..1."""
    folded: tuple[str, ...]
    """Norm weights whose change was folded into the layers after them."""
    dropped: tuple[str, ...]
    """Tuned tensors whose change no LoRA can hold (changed norms that cannot be folded)."""


def fuse_dora(
    base: Mapping[str, mx.array], checkpoint: Mapping[str, mx.array], scale: float
) -> dict[str, mx.array]:
    """The tuned weights a DoRA checkpoint stands for, by base weight name: each layer fused
    by mlx-lm's own `DoRALinear.fuse()`.

    `checkpoint` holds `<path>.lora_a` (in x r), `<path>.lora_b` (r x out) and `<path>.m` (out)
    per adapted layer, as `DoRALinear` saves them. Raises ExtractError for a layer missing one
    of them or one the base lacks.
    """
    from mlx_lm.tuner.dora import DoRALinear

    paths = sorted({name.rsplit(".", 1)[0] for name in checkpoint})
    tuned: dict[str, mx.array] = {}
    for path in paths:
        parts = [checkpoint.get(f"{path}.{p}") for p in ("lora_a", "lora_b", "m")]
        weight = base.get(f"{path}.weight")
        if any(p is None for p in parts) or weight is None:
            raise ExtractError(
                f"{path}: a DoRA layer needs lora_a, lora_b and m over a base weight"
            )
        linear = nn.Linear(weight.shape[1], weight.shape[0], bias=False)
        linear.weight = weight.astype(mx.float32)
        layer = DoRALinear.from_base(linear, r=parts[0].shape[1], scale=scale)  # type: ignore[union-attr]
        layer.lora_a, layer.lora_b, layer.m = (p.astype(mx.float32) for p in parts)  # type: ignore[union-attr]
        tuned[f"{path}.weight"] = layer.fuse().weight
    return tuned


def extract_lora(
    base: Mapping[str, mx.array],
    tuned: Mapping[str, mx.array],
    rank: int,
    model_type: str,
) -> Extraction:
    """Factor `tuned - base` for every tuned 2-D `...layers.N.*.weight` at `rank`.

    `base` holds the base model's parameters by name, `tuned` the checkpoint's (a full fine-tune
    saves only what it trained). Raises ExtractError for a name the base lacks or a shape that
    differs, or when nothing tuned is a linear layer.
    """
    if not 1 <= rank <= MAX_RANK:
        raise ExtractError(f"rank {rank} is outside the servable 1..{MAX_RANK}")
    problems = [
        f"{name}: {'not in the base model' if name not in base else 'shape differs'}"
        for name, value in tuned.items()
        if name not in base or tuple(base[name].shape) != tuple(value.shape)
    ]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise ExtractError(f"the checkpoint does not fit the base: {'; '.join(problems[:3])}{more}")
    offset, folds = FOLDS.get(model_type, (0.0, {}))
    scales: dict[str, mx.array] = {}
    folded: list[str] = []
    dropped: list[str] = []
    partly: list[str] = []
    for name, value in sorted(tuned.items()):
        match = BLOCK.match(name)
        if value.ndim == 2 and match:
            continue
        norm = match.group("rest") if match else None
        if value.ndim == 1 and norm in folds and match:
            old = base[name].astype(mx.float32) + offset
            # A channel the base norm scales to zero reaches no layer: its change cannot be
            # folded, so it keeps the base's scale; every other channel is folded exactly.
            dead = mx.abs(old) < 1e-6
            scale = mx.where(
                dead, 1.0, (value.astype(mx.float32) + offset) / mx.where(dead, 1.0, old)
            )
            if bool(mx.any(dead & (value != base[name])).item()):
                partly.append(name)
            for layer in folds[norm]:
                scales[f"{match.group('block')}.{layer}.weight"] = scale
            folded.append(name)
        elif not mx.array_equal(value, base[name]).item():
            dropped.append(name)
    weights: dict[str, mx.array] = {}
    total = kept = 0.0
    for name, value in sorted(tuned.items()):
        if value.ndim != 2 or not BLOCK.match(name):
            continue
        new = value.astype(mx.float32)
        if name in scales:
            new = new * scales[name]
        delta = new - base[name].astype(mx.float32)
        r = min(rank, *delta.shape)
        u, s, vt = mx.linalg.svd(delta, stream=mx.cpu)
        root = mx.sqrt(s[:r])
        path = name[: -len(".weight")]
        weights[f"{path}.lora_a"] = (vt[:r].T * root).astype(mx.float32)
        weights[f"{path}.lora_b"] = (root[:, None] * u[:, :r].T).astype(mx.float32)
        if r < rank:  # a layer narrower than the rank: pad with zeros to the common shape
            weights[f"{path}.lora_a"] = mx.pad(weights[f"{path}.lora_a"], [(0, 0), (0, rank - r)])
            weights[f"{path}.lora_b"] = mx.pad(weights[f"{path}.lora_b"], [(0, rank - r), (0, 0)])
        energy = mx.sum(s * s)
        mx.eval(weights[f"{path}.lora_a"], weights[f"{path}.lora_b"], energy)
        total += float(energy.item())
        kept += float(mx.sum(s[:r] * s[:r]).item())
    if not weights:
        raise ExtractError("the checkpoint holds no linear layer inside the transformer blocks")
    blocks = {m.group("block") for name in weights if (m := BLOCK.match(name + ".weight"))}
    lora = LoraParams(
        rank=rank, scale=1.0, dropout=0.0, num_layers=len(blocks), keys=None, fine_tune_type="lora"
    )
    return Extraction(
        weights=weights,
        lora=lora,
        kept=kept / total if total else 1.0,
        folded=tuple(folded),
        dropped=tuple(dropped) + tuple(f"{name} (channels the base zeroes)" for name in partly),
    )


@dataclass(frozen=True)
class ExtractedRun:
    """A LoRA run written into the registry from one full fine-tune checkpoint."""

    model_id: str
    """The new checkpoint's pinned id, `persona@run:step`."""
    source: str
    """The full fine-tune's pinned id."""
    extraction: Extraction
    val_loss: float | None
    """Validation loss of base + extracted LoRA (None when the run's data is gone)."""
    source_val_loss: float | None


def extract_run(
    registry: Registry,
    model_id: str,
    rank: int,
    label: str | None = None,
    validate: bool = True,
    dtype: str = "float32",
    log: Callable[[str], None] = lambda _m: None,
) -> ExtractedRun:
    """Extract a LoRA from the full or DoRA fine-tune checkpoint `model_id`
    (`persona@run[:step]`) into a new run of the same persona, published like a trained
    checkpoint (manifest last).

    Raises ExtractError when the id names no checkpoint, a LoRA checkpoint (served as it is), or
    one trained on another base than the one found on this machine.
    """
    if dtype not in DTYPES:
        raise ExtractError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    try:
        ckpt = registry.resolve(parse_model_id(model_id))
    except RegistryError as exc:
        raise ExtractError(str(exc)) from None
    if ckpt is None:
        raise ExtractError(f"no checkpoint answers to {model_id!r}")
    manifest = ckpt.manifest
    kind = manifest.lora.fine_tune_type
    if kind not in ("full", "dora"):
        raise ExtractError(
            f"{manifest.persona}@{manifest.version} is a {kind!r} checkpoint; "
            "only a 'full' or 'dora' fine-tune needs extracting (a LoRA is served as it is)"
        )
    label = label or f"lora{rank}"
    if len(label) > MAX_LABEL or not SAFE_NAME.fullmatch(label):
        raise ExtractError(f"run label {label!r} must be 1-{MAX_LABEL} lowercase letters, digits, "
                           "'-' or '_'")  # fmt: skip
    base_path = _base_folder(manifest.base_model)
    problems = checkpoint_problems(ckpt, content_hash(base_path))
    if problems:
        raise ExtractError(f"{manifest.persona}@{manifest.version}: {'; '.join(problems)}")
    source_dir = ckpt.path.parent.parent
    try:
        record = json.loads((source_dir / RUN_FILE).read_text())
        _ = record["config"]["training"]  # an older record without it is refused here
        config = json.loads((base_path / "config.json").read_text())
        tuned = mx.load(str(ckpt.path / WEIGHTS))
    except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
        raise ExtractError(f"{manifest.persona}@{manifest.version} cannot be read: {exc}") from None
    if not isinstance(tuned, dict):
        raise ExtractError(f"{ckpt.path / WEIGHTS} holds no named tensors")
    # Validation needs the run's base model and data prepared; its weights are the base weights
    # the factors are taken against, so the base is read from disk only when not validating.
    prepared = _prepare(record) if validate else None
    try:
        if prepared is not None:
            base = dict(tree_flatten(prepared.base.model.parameters()))
        else:
            base = _base_weights(base_path)
    except (OSError, ValueError, RuntimeError) as exc:
        raise ExtractError(f"the base model in {base_path} cannot be read: {exc}") from None
    if kind == "dora":
        tuned = fuse_dora(base, tuned, manifest.lora.scale)
    log(f"factoring {sum(v.ndim == 2 for v in tuned.values())} layers at rank {rank}")
    extraction = extract_lora(base, tuned, rank, str(config.get("model_type", "")))
    stored = {k: v.astype(DTYPES[dtype]) for k, v in extraction.weights.items()}
    # Validated as stored: a float16 file is measured in float16.
    val_loss = _validation_loss(prepared, stored, extraction.lora.scale, base) if prepared else None
    run, run_dir = registry.new_run(manifest.persona, label)
    lora = extraction.lora
    training = {**record["config"]["training"], "fine_tune_type": "lora", "rank": rank,
                "scale": 1.0, "dropout": 0.0}  # fmt: skip
    record = {
        **record,
        "run": run,
        "config": {**record["config"], "training": training},
        "status": "done",
        "reason": "extracted",
        "step": manifest.step,
        "best_step": manifest.step,
        "best_val_loss": val_loss,
        "metrics": [],
        "extracted_from": {
            "model": f"{manifest.persona}@{manifest.version}",
            "weights_sha256": manifest.weights_sha256,
            "rank": rank,
            "kept": extraction.kept,
            "dropped": list(extraction.dropped),
            "source_val_loss": manifest.metrics.get("val_loss"),
        },
    }
    record.pop("eval", None)
    adapter_config = json.dumps(
        {
            "fine_tune_type": "lora",
            "num_layers": lora.num_layers,
            "lora_parameters": {"rank": rank, "scale": lora.scale, "dropout": 0.0},
            "model": manifest.base_model,
            "base_model_id": record.get("base_model_id", manifest.base_model),
        },
        indent=2,
    ).encode()
    metrics = {"kept": extraction.kept}
    if val_loss is not None:
        metrics["val_loss"] = val_loss
    new = msgspec.structs.replace(
        manifest, run=run, lora=lora, weights_sha256="", created=time.time(), metrics=metrics
    )

    def write(path: Path) -> None:
        mx.save_safetensors(str(path), stored, metadata={"format": "mlx"})

    try:
        write_bytes(run_dir / CONFIG, adapter_config)
        write_text(run_dir / RUN_FILE, json.dumps(record, indent=2))
        publish_checkpoint(run_dir, new, write, adapter_config)
        set_marker(run_dir, "best", manifest.step)
    except BaseException:
        shutil.rmtree(run_dir, ignore_errors=True)  # no half-written run is left behind
        raise
    return ExtractedRun(
        model_id=f"{manifest.persona}@{run}:{manifest.step}",
        source=f"{manifest.persona}@{manifest.version}",
        extraction=extraction,
        val_loss=val_loss,
        source_val_loss=manifest.metrics.get("val_loss"),
    )


def _base_folder(name: str) -> Path:
    """The local folder of the base model a checkpoint names (as the trainer finds it)."""
    from adapters.base import PrepareError
    from adapters.training.model import model_path

    try:
        return model_path(name)[0]
    except (PrepareError, OSError, ValueError) as exc:
        raise ExtractError(f"the base model {name!r} cannot be found: {exc}") from None


def _base_weights(folder: Path) -> dict[str, mx.array]:
    weights: dict[str, mx.array] = {}
    for path in sorted(folder.glob("*.safetensors")):
        weights.update(mx.load(str(path)))  # type: ignore[arg-type]
    return weights


def _prepare(record: dict[str, Any]) -> Prepared | None:
    """The run's model and tokenized data as its trainer prepared them; None when the record's
    config, its training file or its validation split is gone (the loss is then not measured)."""
    from adapters.training.prepare import PrepareError, prepare

    try:
        config = msgspec.convert(record["config"], RunConfig)
    except msgspec.ValidationError:
        return None
    if not Path(config.train_file).is_file():
        return None
    try:
        prepared = prepare(config, lambda _m: None)
    except (PrepareError, OSError, ValueError):
        return None
    return prepared if prepared.valid else None


def _validation_loss(
    prepared: Prepared,
    factors: Mapping[str, mx.array],
    scale: float,
    base: Mapping[str, mx.array],
) -> float:
    """The run's validation loss on base + LoRA (the layers merged, the norms the base's)."""
    from adapters.training.loop import validation_loss
    from adapters.training.loss import TokenLoss

    model = prepared.base.model
    merged = []
    for name, a in factors.items():
        if name.endswith(".lora_a"):
            path = name[: -len(".lora_a")]
            b = factors[f"{path}.lora_b"].astype(mx.float32)
            change = (a.astype(mx.float32) @ b).T * scale
            weight = base[f"{path}.weight"].astype(mx.float32) + change
            merged.append((f"{path}.weight", weight.astype(base[f"{path}.weight"].dtype)))
    model.load_weights(merged, strict=False)
    mx.eval(model.parameters())
    batch = prepared.config.training.batch_size
    return validation_loss(TokenLoss(model), model, prepared.valid, batch)
