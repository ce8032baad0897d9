"""The docs site builds strictly, covers every `persona` subcommand, and the README's links land."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from studio.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def subcommands(parser: argparse.ArgumentParser, prefix: str = "persona") -> list[str]:
    """Every command line `persona ...` accepts, nested actions included (`persona data check`)."""
    found: list[str] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found.extend(subcommands(sub, f"{prefix} {name}"))
    return found


def test_the_site_builds_strictly_offline(tmp_path: Path) -> None:
    # --strict turns every warning into a failure: a link to a missing page or anchor, a page
    # left out of nav (mkdocs.yml's `validation` raises those to warnings).
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    config, site = str(ROOT / "mkdocs.yml"), str(tmp_path / "site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "-f", config, "-d", site],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "cli" / "index.html").is_file()


def test_every_subcommand_has_its_section_in_the_cli_page() -> None:
    headings = {
        line.lstrip("#").strip().strip("`")
        for line in (DOCS / "cli.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("#")
    }
    commands = subcommands(build_parser())
    assert "persona data check" in commands
    missing = [command for command in commands if command not in headings]
    assert not missing, f"docs/cli.md has no heading for {missing}"


def test_the_architecture_page_names_every_package_folder() -> None:
    page = (DOCS / "architecture.md").read_text(encoding="utf-8")
    folders = [
        path.relative_to(ROOT).as_posix()
        for package in ("adapters", "data", "server", "studio", "tui")
        for path in [ROOT / package, *(ROOT / package).iterdir()]
        if path.is_dir() and path.name != "__pycache__"
    ]
    assert "server/jobs" in folders
    missing = [f for f in folders if f"{f.rpartition('/')[2]}/" not in page]
    assert not missing, f"docs/architecture.md does not say what these folders hold: {missing}"


def test_the_readme_links_only_to_files_that_exist() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", readme)
    local = [t for t in targets if not re.match(r"[a-z]+:", t)]
    assert local, "the README links into the docs"
    missing = [t for t in local if not (ROOT / t).exists()]
    assert not missing, f"README.md links to missing files: {missing}"


def test_the_readme_keeps_the_commands_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "make run     # install everything, then open persona studio on the embedded model" in (
        readme
    )
    assert "make test    # install the test tools, then run the whole test suite" in readme


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_pages_speak_of_the_product_not_of_this_machine(page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    assert "/work/" not in text
    assert "/home/" not in text
