"""Sample adapters shipped with the package, so a fresh install chats in character at once.

`adapters/sample/<persona>/<run>/` holds a run's `run.json`, its `adapter_config.json` and only
its best checkpoint. `install_sample_adapters` copies each into the user's registry unless a run
of that name is already there; `pack_sample.py` makes such a folder from a trained run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from .registry import SAFE_NAME, read_manifest, set_marker


def sample_dir() -> Path:
    """The read-only sample adapters inside the package."""
    return Path(__file__).parent / "sample"


def install_sample_adapters(dest: Path, source: Path | None = None) -> list[Path]:
    """Copy every shipped sample run into the registry at `dest` if absent; return new run dirs."""
    source = source or sample_dir()
    installed: list[Path] = []
    if not source.is_dir():
        return installed
    for persona in sorted(
        p for p in source.iterdir() if p.is_dir() and SAFE_NAME.fullmatch(p.name)
    ):
        for run in sorted(
            r for r in persona.iterdir() if r.is_dir() and SAFE_NAME.fullmatch(r.name)
        ):
            target = dest / persona.name / run.name
            if target.exists():
                continue
            steps = [c for c in sorted((run / "checkpoints").glob("*")) if read_manifest(c)]
            if not steps:
                continue
            staging = target.with_name(f".{run.name}.installing")
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(run, staging)
            step = read_manifest(steps[-1]).step  # type: ignore[union-attr]
            set_marker(staging, "best", step)
            set_marker(staging, "latest", step)
            staging.rename(target)
            installed.append(target)
    return installed
