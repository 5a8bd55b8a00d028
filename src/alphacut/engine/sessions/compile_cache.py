"""The folder where OpenVINO keeps what it compiled: used only where no one else can change
what is in it (what is there runs as this process's code), and swept to its newest entries."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from pathlib import Path

log = logging.getLogger(__name__)


def compile_cache(directory: Path | None) -> Path | None:
    """``directory`` made ready to hold OpenVINO's compiled models, or None where it must not
    be used. What is there is loaded as compiled code for this process, so the directory must
    be private: created 0700, refused (with a warning; the model is then compiled as if there
    were no cache) when another user owns it or others can write to it, when any folder above
    it is unsafe (:func:`_unsafe_parent`), or when any compiled entry in it is not a regular
    file of this user's that only this user can write (:func:`_unsafe_blob`): the whole cache
    is refused then, nothing is deleted. Checking once here is enough: no one else can change
    a folder that passed, so no one else can put an entry in it later. OpenVINO keys each
    entry by the model file's path, size and modification time, the compile options and its
    own version; callers give each verified model file a folder of its own, named by its
    checksum (``Remover.load``), so a different file at the same path never loads another's
    compiled code."""
    if directory is None:
        return None
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except OSError as exc:
        log.warning("compile cache %s not used: %s", directory, exc)
        return None
    owner = os.getuid() if hasattr(os, "getuid") else info.st_uid
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != owner or info.st_mode & 0o022:
        log.warning(
            "compile cache %s not used: it must be a directory of this user's that no one "
            "else can write to (chmod 700)",
            directory,
        )
        return None
    problem = _unsafe_parent(directory, owner) or _unsafe_blob(directory, owner)
    if problem is not None:
        log.warning("compile cache %s not used: %s", directory, problem)
        return None
    if not os.access(directory, os.W_OK | os.X_OK):
        log.warning("compile cache %s not used: not writable", directory)
        return None
    _sweep(directory)
    return directory


MAX_CACHE_ENTRIES = 1000  # more files than this in one model's folder: not alphacut's cache


def _unsafe_parent(directory: Path, owner: int) -> str | None:
    """Why a folder above ``directory`` (up to ``/``, in the path as given and as resolved)
    lets another user replace it, or None. As OpenSSH's ``safe_path`` checks the folders
    above a key file: each must be owned by root or ``owner`` and not writable by group or
    others, except that a group- or world-writable folder with the sticky bit (``/tmp``) is
    accepted: there only an entry's owner can rename or delete it, and the entry below it is
    checked in turn (ours or root's). A symbolic link on the way must be owned by root or
    ``owner`` too (its target is checked in the resolved path)."""
    try:
        resolved = directory.resolve(strict=True)
    except (OSError, RuntimeError) as exc:
        return f"cannot resolve it ({exc})"
    given = directory if directory.is_absolute() else Path.cwd() / directory
    for path in (*given.parents, *resolved.parents):
        try:
            info = path.lstat()
        except OSError as exc:
            return f"cannot check {path} ({exc})"
        if info.st_uid not in (0, owner):
            return f"{path} belongs to another user (uid {info.st_uid})"
        if stat.S_ISLNK(info.st_mode):
            continue
        if not stat.S_ISDIR(info.st_mode):
            return f"{path} is not a directory"
        if info.st_mode & 0o022 and not info.st_mode & stat.S_ISVTX:
            return f"{path} can be written by others and has no sticky bit (chmod go-w or +t)"
    return None


def _unsafe_blob(directory: Path, owner: int) -> str | None:
    """Why a compiled entry (``*.blob``) in ``directory`` must not be loaded, or None: each
    must be a regular file (not a link) of ``owner``'s that no one else can write."""
    try:
        with os.scandir(directory) as entries:
            for count, entry in enumerate(entries):
                if count >= MAX_CACHE_ENTRIES:
                    return f"more than {MAX_CACHE_ENTRIES} entries"
                if not entry.name.endswith(".blob"):
                    continue
                info = entry.stat(follow_symlinks=False)
                if not stat.S_ISREG(info.st_mode):
                    return f"{entry.name} is not a regular file"
                if info.st_uid != owner:
                    return f"{entry.name} belongs to another user (uid {info.st_uid})"
                if info.st_mode & 0o022:
                    return f"{entry.name} can be written by others"
    except OSError as exc:
        return f"cannot list it ({exc})"
    return None


KEPT_COMPILES = 4
"""Compiled entries kept per model folder (one per thread count, precision and OpenVINO
version: IS-Net's are 177 MB each), newest first; an older configuration that comes back is
compiled again."""


def _sweep(directory: Path) -> None:
    """Delete all but the ``KEPT_COMPILES`` newest compiled entries in ``directory`` (a file
    another process still reads stays readable to it until closed)."""
    entries = []
    for entry in directory.glob("*.blob"):
        with contextlib.suppress(OSError):
            entries.append((entry.stat().st_mtime, entry))
    entries.sort(reverse=True)
    for _, old in entries[KEPT_COMPILES:]:
        try:
            old.unlink()
        except OSError as exc:
            log.warning("compile cache: could not delete %s: %s", old, exc)
        else:
            log.info("compile cache: deleted %s (older than the %d kept)", old, KEPT_COMPILES)
