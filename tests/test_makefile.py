"""`make clean` deletes only this checkout's own venv and tool caches (issue 22, item 0: a
tool that deletes must only ever delete what it created), never a folder it was handed."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")


def _clean(folder: Path, venv: str) -> subprocess.CompletedProcess[str]:
    """`make clean` with the checkout's Makefile, run from ``folder`` and pointed at it
    (ROOT), so that the caches it removes are that folder's, not the checkout's."""
    assert MAKE is not None
    return subprocess.run(
        [MAKE, "-s", "-f", str(REPO / "Makefile"), "clean", f"ROOT={folder}", f"VENV={venv}"],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.skipif(MAKE is None, reason="needs make")
def test_clean_removes_a_virtual_environment_but_never_a_folder_it_was_handed(
    tmp_path: Path,
) -> None:
    (tmp_path / "precious").mkdir()
    (tmp_path / "precious" / "work.txt").write_text("keep")
    answer = _clean(tmp_path, "precious")
    assert answer.returncode == 0, answer.stderr
    assert (tmp_path / "precious" / "work.txt").read_text() == "keep"
    assert "left alone" in answer.stdout

    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    assert _clean(tmp_path, "link").returncode == 0
    assert (tmp_path / "link").is_symlink() and (tmp_path / "elsewhere" / "pyvenv.cfg").exists()

    (tmp_path / "venv").mkdir()
    (tmp_path / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (tmp_path / ".mypy_cache").mkdir()
    assert _clean(tmp_path, "venv").returncode == 0
    assert not (tmp_path / "venv").exists() and not (tmp_path / ".mypy_cache").exists()
