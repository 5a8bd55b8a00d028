"""alphacut: self-hosted, offline background removal.

>>> from alphacut import remove
>>> cut = remove("photo.jpg", model="fast")
>>> cut.save("photo.png")
"""

from importlib.metadata import PackageNotFoundError, version

from alphacut.engine.pipeline import Cutout, Remover, remove
from alphacut.errors import (
    AlphacutError,
    CorruptImageError,
    ImageTooLargeError,
    InvalidInputError,
    ModelInstallError,
    ModelNotInstalledError,
    UnsupportedImageError,
)

try:
    __version__ = version("alphacut")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

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
