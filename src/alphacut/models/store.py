"""The model directory: where each model's file lives and whether it is intact."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping
from enum import StrEnum
from pathlib import Path

from alphacut.errors import InvalidInputError, ModelNotInstalledError
from alphacut.models.registry import MODELS, ModelSpec


class ModelStatus(StrEnum):
    INSTALLED = "installed"
    MISSING = "missing"
    CORRUPT = "corrupt"


def file_sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


# Verified files, keyed by what would change if the file did: hashing 88 MB costs ~0.1 s,
# which is worth paying once per process, not on every status call.
_verified: set[tuple[str, int, int, int]] = set()
_verified_lock = threading.Lock()


class ModelStore:
    """Verified model files in one directory (``ALPHACUT_MODEL_DIR``)."""

    def __init__(self, root: Path, models: Mapping[str, ModelSpec] = MODELS) -> None:
        self.root = root
        self.models = models

    def spec(self, name: str) -> ModelSpec:
        try:
            return self.models[name]
        except KeyError:
            known = ", ".join(self.models)
            raise InvalidInputError(f"unknown model {name!r}; choose one of: {known}") from None

    def path(self, spec: ModelSpec) -> Path:
        return self.root / spec.filename

    def status(self, spec: ModelSpec) -> ModelStatus:
        path = self.path(spec)
        try:
            st = path.stat()
        except FileNotFoundError:
            return ModelStatus.MISSING
        key = (str(path), st.st_size, st.st_mtime_ns, st.st_ino)
        with _verified_lock:
            if key in _verified:
                return ModelStatus.INSTALLED
        if st.st_size != spec.size or file_sha256(path) != spec.sha256:
            return ModelStatus.CORRUPT
        with _verified_lock:
            _verified.add(key)
        return ModelStatus.INSTALLED

    def require(self, name: str) -> Path:
        """The verified file of model ``name``, or a clear error naming the command to run."""
        spec = self.spec(name)
        status = self.status(spec)
        if status is not ModelStatus.INSTALLED:
            state = "is not installed" if status is ModelStatus.MISSING else "failed verification"
            raise ModelNotInstalledError(
                f"model {name!r} {state}; "
                f"run `alphacut models install {name}` to fetch and verify it"
            )
        return self.path(spec)
