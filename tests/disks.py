"""A real small filesystem for tests of a full disk: a tmpfs mounted under the test's folder.

Mounting needs root (CI runs as root); elsewhere the tests that need one are skipped, saying so.
"""

from __future__ import annotations

import errno
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_disk(folder: Path, size: str = "24m") -> Iterator[Path]:
    """A fresh tmpfs of ``size`` at ``folder/disk``, unmounted afterwards."""
    mount, mount_exe, umount_exe = folder / "disk", shutil.which("mount"), shutil.which("umount")
    if mount_exe is None or umount_exe is None:
        pytest.skip("no mount command here")
    mount.mkdir()
    done = subprocess.run(
        [mount_exe, "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run([umount_exe, "-l", str(mount)], capture_output=True, check=False)


def fill(disk: Path) -> Path:
    """Writes one file until the filesystem has not one byte left; returns it."""
    filler = disk / "filler"
    with filler.open("ab", buffering=0) as f:
        for chunk in (1 << 20, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\xff" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    assert shutil.disk_usage(disk).free == 0
    return filler
