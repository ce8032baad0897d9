"""MLX's kernel cache (and every temporary file) lives in a folder only this user can write."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from adapters.private_tmp import PrivateTmpError, private_tmp, use_private_tmp
from data.home import cache_dir

ROOT = Path(__file__).parents[2]


@pytest.fixture(autouse=True)
def own_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A cache of this test's own (the suite shares the real one for the prepared model)."""
    monkeypatch.setenv("PERSONA_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("TMPDIR", os.environ.get("TMPDIR", "/tmp"))


def test_the_folder_is_made_private_and_repaired() -> None:
    folder = use_private_tmp()
    assert folder == cache_dir() / "tmp"
    assert os.environ["TMPDIR"] == str(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    folder.chmod(0o777)
    assert stat.S_IMODE(private_tmp().stat().st_mode) == 0o700


def test_a_symlink_in_its_place_is_refused(tmp_path: Path) -> None:
    cache_dir().mkdir(parents=True, exist_ok=True)
    (tmp_path / "elsewhere").mkdir()
    (cache_dir() / "tmp").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(PrivateTmpError, match="not a plain folder"):
        private_tmp()


@pytest.mark.mlx
def test_every_entry_point_compiles_mlx_kernels_into_the_private_folder(tmp_path: Path) -> None:
    shared = tmp_path / "shared-tmp"
    shared.mkdir()
    home = tmp_path / "home"
    compile_kernel = (
        "import mlx.core as mx; f = mx.compile(lambda a: mx.exp(a) * 3 + 1);"
        " mx.eval(f(mx.ones((3,))))"
    )
    env = {**os.environ, "TMPDIR": str(shared), "PERSONA_HOME": str(home)}
    env.pop("PERSONA_CACHE", None)
    script = (
        "import contextlib\n"
        "from studio.cli import main\n"
        "with contextlib.suppress(SystemExit):\n"
        "    main(['--help'])\n"
        f"{compile_kernel}\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, cwd=tmp_path, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    assert not list(shared.rglob("*.so")), "a kernel was compiled into the shared TMPDIR"
    private = home / "cache" / "tmp"
    assert list(private.glob("mlx/*/cpu/*.so"))
    assert stat.S_IMODE(private.stat().st_mode) == 0o700


def test_entry_points_call_it() -> None:
    for module in ("studio/cli.py", "server/cli.py", "adapters/training/cli.py"):
        source = (ROOT / module).read_text()
        call = source.index("use_private_tmp()")
        assert call < source.index("ensure_fast_blas()", call), module
