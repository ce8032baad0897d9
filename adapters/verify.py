"""Cheap integrity checks of a published checkpoint, run before any weights reach the model.

They catch what can be told from the files alone: a manifest that does not match its folder, a
different base model, a missing or inconsistent config, and a weights file that is truncated,
corrupt or not the one the manifest hashed. Shapes against the live model are the engine's check.
"""

from __future__ import annotations

import json
import struct
import threading
from pathlib import Path

import msgspec

from .manifest import CONFIG, WEIGHTS
from .registry import Checkpoint, sha256_file, step_dirname

DTYPE_BYTES = {
    "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
    "BOOL": 1,
}  # fmt: skip
MAX_HEADER = 100 << 20
DIGESTS_KEPT = 256

_digests: dict[tuple[str, int, int, int], str] = {}
"""sha256 by (path, inode, size, mtime): the watcher and the engine check the same file."""
_digests_lock = threading.Lock()


class AdapterConfig(msgspec.Struct, frozen=True):
    """The parts of mlx-lm's `adapter_config.json` a checkpoint must agree on."""

    fine_tune_type: str
    num_layers: int
    lora_parameters: dict[str, object]


def checkpoint_problems(ckpt: Checkpoint, base_hash: str | None = None) -> list[str]:
    """Every problem found in a checkpoint folder (empty when it looks loadable)."""
    manifest, folder = ckpt.manifest, ckpt.path
    problems: list[str] = []
    where = (folder.parent.parent.parent.name, folder.parent.parent.name, folder.name)
    if where != (manifest.persona, manifest.run, step_dirname(manifest.step)):
        problems.append(
            f"manifest names {manifest.persona}@{manifest.version} but sits in {'/'.join(where)}"
        )
    if manifest.status != "complete":
        problems.append(f"manifest status is {manifest.status!r}, not 'complete'")
    if base_hash is not None and manifest.base_hash != base_hash:
        problems.append(
            f"trained on base {manifest.base_hash[:16]!r}, this server runs {base_hash[:16]!r}"
        )
    problems += _config_problems(folder / CONFIG, ckpt)
    problems += weights_problems(folder / WEIGHTS, manifest.weights_sha256)
    return problems


def _config_problems(path: Path, ckpt: Checkpoint) -> list[str]:
    if path.is_symlink() or not path.is_file():
        return [f"{CONFIG} is missing"]
    try:
        config = msgspec.json.decode(path.read_bytes(), type=AdapterConfig)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        return [f"{CONFIG} is not a valid adapter config: {exc}"]
    lora = ckpt.manifest.lora
    problems = []
    if config.fine_tune_type != lora.fine_tune_type:
        problems.append(
            f"{CONFIG} says {config.fine_tune_type!r}, manifest says {lora.fine_tune_type!r}"
        )
    if config.num_layers != lora.num_layers:
        problems.append(f"{CONFIG} adapts {config.num_layers} layers, manifest {lora.num_layers}")
    rank = config.lora_parameters.get("rank")
    if rank != lora.rank:
        problems.append(f"{CONFIG} has rank {rank}, manifest {lora.rank}")
    return problems


def weights_problems(path: Path, expected_sha256: str | None = None) -> list[str]:
    """Problems with a safetensors file: missing, truncated, malformed, or not the hashed one."""
    if path.is_symlink() or not path.is_file():
        return [f"{WEIGHTS} is missing"]
    size = path.stat().st_size
    try:
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return [f"{WEIGHTS} is truncated ({size} bytes)"]
            (header_len,) = struct.unpack("<Q", head)
            if header_len > MAX_HEADER or 8 + header_len > size:
                return [f"{WEIGHTS} is truncated or corrupt (header of {header_len} bytes)"]
            header = json.loads(handle.read(header_len))
    except (OSError, ValueError) as exc:
        return [f"{WEIGHTS} has an unreadable header: {exc}"]
    if not isinstance(header, dict):
        return [f"{WEIGHTS} has an unreadable header"]
    problems = _tensor_problems(header, size - 8 - header_len)
    if not problems and expected_sha256 is not None:
        actual = _digest(path)
        if actual != expected_sha256:
            problems.append(
                f"{WEIGHTS} sha256 {actual[:12]} does not match the manifest's "
                f"{expected_sha256[:12]}"
            )
    return problems


def _tensor_problems(header: dict[str, object], data_size: int) -> list[str]:
    problems = []
    end = 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(info, dict):
            problems.append(f"{WEIGHTS}: tensor {name} has no description")
            continue
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if dtype not in DTYPE_BYTES or not isinstance(shape, list) or not isinstance(offsets, list):
            problems.append(f"{WEIGHTS}: tensor {name} is malformed")
            continue
        count = 1
        for dim in shape:
            count *= int(dim)
        start, stop = int(offsets[0]), int(offsets[1])
        if stop - start != count * DTYPE_BYTES[dtype]:
            problems.append(f"{WEIGHTS}: tensor {name} size does not match its shape {shape}")
        end = max(end, stop)
    if end > data_size:
        problems.append(f"{WEIGHTS} is truncated: {data_size} of {end} data bytes present")
    return problems


def _digest(path: Path) -> str:
    info = path.stat()
    key = (str(path), info.st_ino, info.st_size, info.st_mtime_ns)
    with _digests_lock:
        digest = _digests.get(key)
    if digest is None:
        digest = sha256_file(path)
        with _digests_lock:
            if len(_digests) >= DIGESTS_KEPT:
                _digests.pop(next(iter(_digests)))
            _digests[key] = digest
    return digest
