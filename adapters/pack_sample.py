"""`python -m adapters.pack_sample PERSONA RUN`: pack a trained run as a shipped sample adapter.

The packed folder, `adapters/sample/<persona>/<run>/`, holds the run's `run.json` (with the
trainer's machine paths cut to file names), its `adapter_config.json` and one checkpoint;
`sample_adapters.py` installs it into an empty registry.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from data.atomic import write_text

from .manifest import CONFIG, MANIFEST, WEIGHTS
from .registry import Registry
from .sample_adapters import sample_dir
from .training.record import RUN_FILE


def pack_run(
    registry: Registry, persona: str, run: str, dest: Path, step: int | None = None
) -> Path:
    """Copy a run's record, config and one checkpoint (weights, config, manifest) into `dest`:
    `step`, else the best, else the latest."""
    run_dir = registry.run_dir(persona, run)
    if step is None:
        step = registry.marker(persona, run, "best") or registry.marker(persona, run, "latest")
    ckpt = next((c for c in registry.checkpoints(persona, run) if c.manifest.step == step), None)
    if ckpt is None:
        raise FileNotFoundError(f"{persona}@{run} has no checkpoint {step}")
    target = dest / persona / run
    shutil.rmtree(target, ignore_errors=True)
    (target / "checkpoints" / ckpt.path.name).mkdir(parents=True)
    for name in (WEIGHTS, CONFIG, MANIFEST):
        shutil.copy2(ckpt.path / name, target / "checkpoints" / ckpt.path.name / name)
    shutil.copy2(run_dir / CONFIG, target / CONFIG)
    record = json.loads((run_dir / RUN_FILE).read_text())
    config = record.get("config", {})
    for key in ("persona_folder", "train_file", "valid_file"):
        # Paths of the machine it was trained on mean nothing elsewhere; keep the file name.
        if config.get(key):
            config[key] = Path(config[key]).name
    write_text(target / RUN_FILE, json.dumps(record, indent=2))
    return target


def main(argv: list[str] | None = None) -> int:
    """`python -m adapters.pack_sample PERSONA RUN`: pack a trained run as the shipped sample."""
    from data.home import adapters_dir

    parser = argparse.ArgumentParser(
        prog="python -m adapters.pack_sample", description=main.__doc__
    )
    parser.add_argument("persona")
    parser.add_argument("run")
    parser.add_argument("--adapters", type=Path, help="registry to read (default: the user's)")
    parser.add_argument("--step", type=int, help="the checkpoint to pack (default: the best)")
    args = parser.parse_args(argv)
    target = pack_run(Registry(args.adapters or adapters_dir()), args.persona, args.run,
                      sample_dir(), args.step)  # fmt: skip
    print(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
