"""llama.cpp for the browser: npm `@wllama/wllama`, fetched once with npm into the cache.

The package is 12 MB unpacked and its WebAssembly build alone is 10 MB, too big to ship inside
the Python package for an export most users never make; a web export needs just three files of
it (the ES module, the .wasm and the licence), so the first `persona export --to web` runs
`npm pack` for the pinned version and keeps those three under `<cache>/wllama/<version>/`.
"""

from __future__ import annotations

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from data.home import cache_dir

VERSION = "3.13.0"
"""The exact @wllama/wllama version every web export uses."""
PACKAGE = f"@wllama/wllama@{VERSION}"
FILES = {
    "package/esm/index.js": "index.js",
    "package/esm/wasm/wllama.wasm": "wllama.wasm",
    "package/LICENCE": "LICENCE",
}
"""Member of the npm tarball -> name in the export's `wllama/` folder."""


class WllamaError(Exception):
    """wllama could not be fetched; the message says why and what to do."""


def wllama_dir() -> Path:
    """Where the pinned version's three files are cached."""
    return cache_dir() / "wllama" / VERSION


def ensure_wllama() -> Path:
    """The cached folder holding index.js, wllama.wasm and LICENCE; fetched with npm if missing."""
    folder = wllama_dir()
    if all((folder / name).is_file() for name in FILES.values()):
        return folder
    npm = shutil.which("npm")
    if npm is None:
        raise WllamaError(
            f"a web export needs {PACKAGE} from npm, and npm is not installed "
            "(apt-get install nodejs npm), nor is it cached in " + str(folder)
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent) as tmp:
        done = subprocess.run(
            [npm, "pack", PACKAGE, "--pack-destination", tmp, "--silent"],
            capture_output=True, text=True, timeout=600, check=False,
        )  # fmt: skip
        tarballs = list(Path(tmp).glob("*.tgz"))
        if done.returncode != 0 or len(tarballs) != 1:
            raise WllamaError(f"npm pack {PACKAGE} failed: {done.stderr.strip()[-500:]}")
        staging = Path(tmp) / "files"
        staging.mkdir()
        with tarfile.open(tarballs[0]) as archive:
            # Only the named members are read, each written under a fixed name: nothing in the
            # archive chooses a path here.
            for member, name in FILES.items():
                handle = archive.extractfile(member)
                if handle is None:
                    raise WllamaError(f"{PACKAGE} has no {member}")
                (staging / name).write_bytes(handle.read())
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)
    return folder
