"""The on-disk adapter registry that training writes and the server reads.

Layout under the adapters folder::

    <persona>/<run>/adapter_config.json      mlx-lm adapter config of the run
    <persona>/<run>/run.json                 full training config, hashes, metrics so far
    <persona>/<run>/checkpoints/<step>/      adapters.safetensors, adapter_config.json,
                                             manifest.json (written last: "complete")
    <persona>/<run>/best, latest             marker files holding a step number

Every file is written to a temporary name and renamed, and a checkpoint counts only once its
manifest exists, so a reader never sees half a checkpoint. Names are validated before they touch
the file system: a model id can never become an arbitrary path.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec

from data.atomic import write_bytes, write_text
from data.names import NAME, parse_number, run_number
from data.problem import quote

from .manifest import CONFIG, MANIFEST, WEIGHTS, Manifest, decode_manifest, encode_manifest

SAFE_NAME = NAME
"""Persona and run names; match with `fullmatch` (see `data.names`)."""
MAX_LABEL = 40
"""The longest run label: `run-N-` plus the label stays a safe name (63 characters)."""


class RegistryError(Exception):
    """A model id or adapter could not be resolved."""


@dataclass(frozen=True)
class Checkpoint:
    """A complete, published checkpoint on disk."""

    manifest: Manifest
    path: Path


@dataclass(frozen=True)
class ModelRef:
    """A parsed model id: `persona`, `persona@run`, `persona@run:step`, `persona@run:best`."""

    persona: str
    run: str | None = None
    step: int | str | None = None
    """An int, `best` or `latest`."""

    def __str__(self) -> str:
        text = self.persona
        if self.run:
            text += f"@{self.run}"
            if self.step is not None:
                text += f":{self.step}"
        return text


def parse_model_id(model_id: str) -> ModelRef:
    """Parse a model id; raise RegistryError for anything that is not a safe name."""
    persona, _, version = model_id.partition("@")
    if not SAFE_NAME.fullmatch(persona):
        raise RegistryError(f"invalid model id {quote(model_id)}")
    if not version:
        return ModelRef(persona)
    run, _, step = version.partition(":")
    if not SAFE_NAME.fullmatch(run):
        raise RegistryError(f"invalid run in model id {quote(model_id)}")
    if not step:
        return ModelRef(persona, run)
    if step in ("best", "latest"):
        return ModelRef(persona, run, step)
    number = parse_number(step)
    if number is None:
        raise RegistryError(
            f"invalid step in model id {quote(model_id)}: "
            "a step is 1 to 9 digits, 'best' or 'latest'"
        )
    return ModelRef(persona, run, number)


def step_dirname(step: int) -> str:
    """Zero-padded so folders sort by step."""
    return f"{step:07d}"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_sort_key(name: str) -> tuple[int, str]:
    """Sort `run-2` before `run-10`."""
    number = run_number(name)
    return (1 << 30 if number is None else number, name)


class Registry:
    """Read and write access to one adapters folder."""

    def __init__(self, root: Path) -> None:
        self.root = root
        """The adapters folder."""

    def persona_dir(self, persona: str) -> Path:
        """The folder of one persona's runs (name validated)."""
        if not SAFE_NAME.fullmatch(persona):
            raise RegistryError(f"invalid persona name {quote(persona)}")
        return self.root / persona

    def run_dir(self, persona: str, run: str) -> Path:
        """The folder of one run (names validated)."""
        if not SAFE_NAME.fullmatch(run):
            raise RegistryError(f"invalid run name {quote(run)}")
        return self.persona_dir(persona) / run

    def personas(self) -> list[str]:
        """Personas that have at least one run folder."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name for p in self.root.iterdir() if p.is_dir() and SAFE_NAME.fullmatch(p.name)
        )

    def runs(self, persona: str) -> list[str]:
        """Run names of a persona, oldest first."""
        folder = self.persona_dir(persona)
        if not folder.is_dir():
            return []
        names = [p.name for p in folder.iterdir() if p.is_dir() and SAFE_NAME.fullmatch(p.name)]
        return sorted(names, key=run_sort_key)

    def checkpoints(self, persona: str, run: str) -> list[Checkpoint]:
        """Complete checkpoints of a run (those with a readable manifest), by step."""
        folder = self.run_dir(persona, run) / "checkpoints"
        if not folder.is_dir():
            return []
        found = []
        for child in sorted(folder.iterdir()):
            manifest = read_manifest(child)
            if manifest is not None:
                found.append(Checkpoint(manifest, child))
        return sorted(found, key=lambda c: c.manifest.step)

    def marker(self, persona: str, run: str, name: str) -> int | None:
        """The step a `best` or `latest` marker points at."""
        path = self.run_dir(persona, run) / name
        try:
            return parse_number(path.read_text().strip())
        except (OSError, ValueError):
            return None

    def latest(self, persona: str) -> Checkpoint | None:
        """The newest complete checkpoint of any run of a persona."""
        newest: Checkpoint | None = None
        for run in self.runs(persona):
            for ckpt in self.checkpoints(persona, run):
                if newest is None or ckpt.manifest.created > newest.manifest.created:
                    newest = ckpt
        return newest

    def resolve(self, ref: ModelRef) -> Checkpoint | None:
        """The checkpoint a model id names; None for a bare persona with no runs."""
        if ref.run is None:
            return self.latest(ref.persona)
        ckpts = self.checkpoints(ref.persona, ref.run)
        if not ckpts:
            raise RegistryError(f"no checkpoints for {ref.persona}@{ref.run}")
        step = ref.step
        if step in ("best", "latest"):
            step = self.marker(ref.persona, ref.run, str(step))
            if step is None:
                raise RegistryError(f"{ref} has no {ref.step} marker")
        if step is None:
            return ckpts[-1]
        for ckpt in ckpts:
            if ckpt.manifest.step == step:
                return ckpt
        raise RegistryError(f"no checkpoint {ref.persona}@{ref.run}:{step}")

    def checkpoint_at(self, path_text: str) -> Checkpoint:
        """The complete checkpoint a client-given path names; refuses anything outside the folder.

        The path (relative paths are taken from the adapters folder) must resolve, symlinks
        followed, to `<persona>/<run>/checkpoints/<step>` inside it and hold a manifest that
        names that same folder.
        """
        root = self.root.resolve()
        if "\x00" in path_text or not path_text.strip():
            raise RegistryError("the adapter path is empty or invalid")
        path = Path(path_text)
        try:
            real = (path if path.is_absolute() else root / path).resolve(strict=True)
        except (OSError, RuntimeError, ValueError):
            raise RegistryError(f"the adapter path {quote(path_text)} does not exist") from None
        parts = real.relative_to(root).parts if real.is_relative_to(root) else ()
        if not (
            len(parts) == 4
            and parts[2] == "checkpoints"
            and SAFE_NAME.fullmatch(parts[0])
            and SAFE_NAME.fullmatch(parts[1])
            and parse_number(parts[3]) is not None
        ):
            raise RegistryError(
                f"the adapter path {quote(path_text)} is not a checkpoint folder "
                "<persona>/<run>/checkpoints/<step> inside the adapters folder"
            )
        manifest = read_manifest(real)
        if manifest is None:
            raise RegistryError(f"{quote(path_text)} is not a complete checkpoint (no manifest)")
        persona, run, _, step = parts
        if (manifest.persona, manifest.run, step_dirname(manifest.step)) != (persona, run, step):
            raise RegistryError(f"the manifest in {quote(path_text)} does not match its folder")
        return Checkpoint(manifest, self.root / persona / run / "checkpoints" / step)

    def new_run(self, persona: str, label: str | None = None) -> tuple[str, Path]:
        """Create the next `run-N` (or `run-N-<label>`) folder exclusively; never reuses one."""
        if label is not None and (len(label) > MAX_LABEL or not SAFE_NAME.fullmatch(label)):
            raise RegistryError(
                f"run label {label!r} must be 1-{MAX_LABEL} lowercase letters, digits, '-' or '_'"
            )
        folder = self.persona_dir(persona)
        folder.mkdir(parents=True, exist_ok=True)
        runs = self.runs(persona)
        n = max((run_sort_key(r)[0] for r in runs if run_number(r) is not None), default=0) + 1
        while True:
            name = f"run-{n}-{label}" if label else f"run-{n}"
            try:
                (folder / name).mkdir()
            except FileExistsError:
                n += 1
                continue
            return name, folder / name


def read_manifest(checkpoint_dir: Path) -> Manifest | None:
    """The manifest of a checkpoint folder, or None if absent or unreadable."""
    try:
        return decode_manifest((checkpoint_dir / MANIFEST).read_bytes())
    except (OSError, msgspec.DecodeError, msgspec.ValidationError):
        return None


def publish_checkpoint(
    run_dir: Path,
    manifest: Manifest,
    write_weights: Callable[[Path], None],
    adapter_config: bytes,
) -> Path:
    """Write one checkpoint atomically, manifest last, then move the `latest` marker.

    `write_weights(path)` must write the safetensors file to exactly `path` (a temporary name
    that is renamed into place here).
    """
    folder = run_dir / "checkpoints" / step_dirname(manifest.step)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{WEIGHTS}.tmp.safetensors"
    write_weights(tmp)
    digest = sha256_file(tmp)
    tmp.replace(folder / WEIGHTS)
    write_bytes(folder / CONFIG, adapter_config)
    final = msgspec.structs.replace(manifest, weights_sha256=digest)
    write_bytes(folder / MANIFEST, encode_manifest(final))
    write_text(run_dir / "latest", f"{manifest.step}\n")
    return folder


def set_marker(run_dir: Path, name: str, step: int) -> None:
    """Point a `best` or `latest` marker at a step."""
    write_text(run_dir / name, f"{step}\n")
