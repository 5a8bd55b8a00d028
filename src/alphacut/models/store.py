"""The model directory: where each model's file lives and whether it is intact."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import threading
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from alphacut.errors import InvalidInputError, ModelNotInstalledError
from alphacut.models.registry import (
    ALIASES,
    AUTO_MODEL,
    CATALOGUE,
    DEFAULT_TARGETS,
    Checksum,
    ModelSpec,
)


class ModelStatus(StrEnum):
    INSTALLED = "installed"
    MISSING = "missing"
    CORRUPT = "corrupt"


def open_regular_file(path: Path) -> io.BufferedReader:
    """``path`` opened for reading if it is a regular file (through symlinks), else OSError.
    Opened non-blocking and checked with fstat after the open, so that a FIFO or a device in
    the file's place (even one swapped in after a check) is refused at once, never waited
    on."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(f"{path} is not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def file_digest(path: Path, algorithm: str = "sha256") -> str:
    with open_regular_file(path) as f:
        return hashlib.file_digest(f, algorithm).hexdigest()


def file_sha256(path: Path) -> str:
    return file_digest(path, "sha256")


def matches(path: Path, spec: ModelSpec) -> bool:
    """Whether the file at ``path`` is ``spec``'s: its size (where known exactly) and digest."""
    if spec.size_exact and path.stat().st_size != spec.size:
        return False
    return file_digest(path, spec.checksum.algorithm) == spec.checksum.hexdigest


# Checked files and what they were found to be, keyed by what would change if the file did:
# hashing 88 MB costs ~0.1 s (1 GB: ~1.5 s), worth paying once per process, not on every
# status call (a bad file too: a request must not re-hash a corrupt 1 GB file).
_checked: dict[tuple[str, int, int, int, Checksum], bool] = {}
_checked_lock = threading.Lock()


class ModelStore:
    """Verified model files in one directory (``ALPHACUT_MODEL_DIR``).

    ``aliases`` maps ``fast`` and ``precise`` to the catalogue models they stand for (the
    ``ALPHACUT_FAST_MODEL`` and ``ALPHACUT_PRECISE_MODEL`` settings); ``auto`` runs
    ``precise``'s model, so it stands for that one too."""

    def __init__(
        self,
        root: Path,
        models: Mapping[str, ModelSpec] = CATALOGUE,
        aliases: Mapping[str, str] = DEFAULT_TARGETS,
    ) -> None:
        self.root = root
        self.models = models
        self.aliases = {alias: target for alias, target in aliases.items() if target in models}
        if "precise" in self.aliases:  # auto runs the precise model (and may keep its checker's)
            self.aliases.setdefault(AUTO_MODEL, self.aliases["precise"])

    def spec(self, name: str) -> ModelSpec:
        """The model ``name`` stands for: a catalogue name, or an alias of one."""
        try:
            return self.models[self.aliases.get(name, name)]
        except KeyError:
            known = ", ".join([*self.aliases, *self.models])
            raise InvalidInputError(
                f"unknown model {name!r}; choose one of: {known} (`alphacut models list`)"
            ) from None

    def aliases_of(self, name: str) -> list[str]:
        """The aliases that stand for catalogue model ``name`` (``["fast"]``...)."""
        return [alias for alias in ALIASES if self.aliases.get(alias) == name]

    def path(self, spec: ModelSpec) -> Path:
        return self.root / spec.filename

    def status(self, spec: ModelSpec) -> ModelStatus:
        path = self.path(spec)
        try:
            st = path.stat()
        except FileNotFoundError:
            return ModelStatus.MISSING
        except OSError:
            return ModelStatus.CORRUPT
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino, spec.checksum)
        # One hash per file at a time: concurrent first checks wait for the first one.
        with _checked_lock:
            good = _checked.get(key)
            if good is None:
                try:
                    good = stat.S_ISREG(st.st_mode) and matches(path, spec)
                except OSError:  # unreadable: not a model file that can be used
                    good = False
                _checked[key] = good
        return ModelStatus.INSTALLED if good else ModelStatus.CORRUPT

    def installed(self) -> list[ModelSpec]:
        return [spec for spec in self.models.values() if self.status(spec) is ModelStatus.INSTALLED]

    def require(self, name: str) -> Path:
        """The verified file of model ``name``, or a clear error naming the command to run."""
        spec = self.spec(name)
        status = self.status(spec)
        if status is not ModelStatus.INSTALLED:
            state = "is not installed" if status is ModelStatus.MISSING else "failed verification"
            shown = spec.name if name == spec.name else f"{spec.name} ({name})"
            raise ModelNotInstalledError(
                f"model {shown} {state}; "
                f"run `alphacut models install {spec.name}` to fetch and verify it"
            )
        return self.path(spec)
