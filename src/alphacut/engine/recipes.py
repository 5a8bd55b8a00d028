"""Each model family's exact pre- and post-processing (as ``MODELS.md`` specifies it).

U2-Net (``fast``) reproduces rembg's u2netp pipeline bit for bit (the parity tests prove it):
LANCZOS to 320x320, divide by the image's maximum value, ImageNet mean/std, and a min-max
normalised first output. IS-Net (``precise``) follows the export's own recipe: bilinear to
1024x1024, ``(x - 128) / 256``, output ``output`` already in 0..1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.engine.resize import resize
from alphacut.models.registry import Family

_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


@dataclass(frozen=True)
class Recipe:
    family: Family
    size: int
    output: str | None  # the graph output to read; None means the first

    def preprocess(self, image: Image.Image, threads: int = 1) -> npt.NDArray[np.float32]:
        """An RGB image -> the model's NCHW float32 input tensor."""
        square = (self.size, self.size)
        if self.family == "u2net":
            small = resize(image, square, Image.Resampling.LANCZOS, threads=threads)
            x = np.asarray(small, dtype=np.float32)
            x /= max(float(x.max()), 1e-6)
            x -= _IMAGENET_MEAN
            x /= _IMAGENET_STD
        else:
            small = resize(image, square, Image.Resampling.BILINEAR, threads=threads)
            x = np.asarray(small, dtype=np.float32)
            x -= 128.0
            x /= 256.0
        return np.ascontiguousarray(x.transpose(2, 0, 1)[None])

    def postprocess(self, output: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
        """The model's raw output -> a ``size x size`` uint8 mask (0 background, 255 subject)."""
        prediction = output.reshape(output.shape[-2:])
        if self.family == "u2net":
            low, high = float(prediction.min()), float(prediction.max())
            prediction = (prediction - low) / max(high - low, 1e-12)
        else:
            prediction = np.clip(prediction, 0.0, 1.0)
        return (prediction * 255).astype(np.uint8)


def recipe_for(family: Family, size: int) -> Recipe:
    return Recipe(family=family, size=size, output="output" if family == "isnet" else None)
