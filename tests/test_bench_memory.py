"""bench/memory.py removes only the photo it wrote (issue 22, item 0's audit: it wrote and then
deleted a fixed name in the shared temp folder, whoever's file that was)."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_the_memory_bench_leaves_a_file_of_the_same_name_alone() -> None:
    width = int((0.05 * 1e6 * 2) ** 0.5)  # as the bench sizes its photo for --mp 0.05
    height = int(0.05 * 1e6 / width)
    theirs = Path(tempfile.gettempdir()) / f"alphacut-memory-{width}x{height}.jpg"
    if os.path.lexists(theirs):  # not this test's to replace or delete either
        pytest.skip(f"{theirs} exists already")
    with theirs.open("xb") as file:  # made here, so removed here
        file.write(b"someone else's")
    try:
        done = subprocess.run(
            [sys.executable, str(REPO / "bench" / "memory.py"), "--mp", "0.05", "--only", "decode"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr
        assert "decode" in done.stdout
        assert theirs.read_bytes() == b"someone else's"
        assert not list(Path(tempfile.gettempdir()).glob(f"alphacut-memory-{width}x{height}-*"))
    finally:
        theirs.unlink(missing_ok=True)
