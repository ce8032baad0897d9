"""Our child processes never import modules from the user's working folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from data.home import studio_command
from server.jobs.trainer import train_command
from tui.settings import TuiSettings

PLANT = "import pathlib\npathlib.Path('planted-ran').write_text('yes')\nraise SystemExit(7)\n"


def test_a_planted_data_py_in_the_working_folder_is_not_imported(tmp_path: Path) -> None:
    for name in ("data.py", "server.py", "adapters.py"):
        (tmp_path / name).write_text(PLANT)
    # Without -P the working folder comes first on sys.path, and the plant runs:
    plain = subprocess.run(
        [sys.executable, "-m", "studio", "--help"], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert (tmp_path / "planted-ran").exists()
    assert plain.returncode == 7
    (tmp_path / "planted-ran").unlink()
    for argv in (
        studio_command("--help"),
        TuiSettings().command("--help"),
        [*train_command(tmp_path / "trainer.json")[:4], "--help"],
    ):
        done = subprocess.run(argv, cwd=tmp_path, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        assert b"persona studio" in done.stdout
        assert not (tmp_path / "planted-ran").exists(), argv
