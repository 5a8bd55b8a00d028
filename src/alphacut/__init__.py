"""alphacut: self-hosted, offline background removal.

>>> from alphacut import remove
>>> cut = remove("photo.jpg", model="fast")
>>> cut.save("photo.png")
"""

from typing import TYPE_CHECKING, Any

from alphacut.errors import (
    AlphacutError,
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    ModelInstallError,
    ModelNotInstalledError,
    UnsupportedImageError,
)
from alphacut.version import __version__

if TYPE_CHECKING:
    from alphacut.engine.pipeline import Cutout, Remover, remove

# The engine (numpy, Pillow, onnxruntime: about a second of imports) loads on first use of
# these names, so that `alphacut --version`, `--help` and the service's other commands
# start at once.
_ENGINE = ("Cutout", "Remover", "remove")


def __getattr__(name: str) -> Any:
    if name in _ENGINE:
        from alphacut.engine import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'alphacut' has no attribute {name!r}")


__all__ = [
    "AlphacutError",
    "CorruptImageError",
    "Cutout",
    "ImageTooLargeError",
    "InvalidInputError",
    "ModelInstallError",
    "ModelNotInstalledError",
    "Remover",
    "UnsupportedImageError",
    "__version__",
    "remove",
]
