"""Crash-safe file writing: readers see the old file or the complete new one, never a part."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

TEMP_SUFFIX = ".part"


@contextmanager
def atomic_file(target: Path) -> Iterator[BinaryIO]:
    """A temp file beside ``target``, renamed over it only if the block exits cleanly.

    The data is fsynced before the rename and the directory after it, so a crash leaves
    either nothing new or the whole file. On any exception the temp file is removed.
    Temp files are named ``.<name>.<random>.part`` so that leftovers are easy to find.
    """
    temp = target.with_name(f".{target.name}.{secrets.token_hex(4)}{TEMP_SUFFIX}")
    try:
        with temp.open("xb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        temp.replace(target)
        fsync_dir(target.parent)
    finally:
        temp.unlink(missing_ok=True)


def write_atomic(target: Path, data: bytes) -> None:
    with atomic_file(target) as f:
        f.write(data)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
