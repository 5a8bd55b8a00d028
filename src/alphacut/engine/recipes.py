"""A model's pre- and post-processing, run from its :class:`~alphacut.models.registry.Recipe`.

For the u2net family this reproduces rembg's pipeline bit for bit (``test_parity.py`` runs the
real U2-Netp against rembg's outputs); for every catalogue model ``tests/models/test_recipes.py``
feeds rembg's own session class and alphacut the same photo through a stand-in session and
compares the tensors and the masks.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from PIL import Image

from alphacut.engine.resize import resize
from alphacut.models.registry import Recipe

_RESAMPLE = {"lanczos": Image.Resampling.LANCZOS, "bilinear": Image.Resampling.BILINEAR}


def preprocess(recipe: Recipe, image: Image.Image, threads: int = 1) -> npt.NDArray[np.float32]:
    """An RGB image -> the model's NCHW float32 input tensor."""
    square = (recipe.size, recipe.size)
    small = resize(image, square, _RESAMPLE[recipe.resample], threads=threads)
    x = np.asarray(small, dtype=np.float32)
    divisor = recipe.divisor if recipe.divisor is not None else max(float(x.max()), 1e-6)
    x /= divisor
    x -= np.asarray(recipe.mean, dtype=np.float32)
    x /= np.asarray(recipe.std, dtype=np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1)[None])


def postprocess(recipe: Recipe, output: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """The model's raw output -> a ``size x size`` uint8 mask (0 background, 255 subject):
    channel 0 of the first image, activated, then stretched or clipped to 0..1."""
    return to_mask(recipe, activate(recipe, output))


def activate(recipe: Recipe, output: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """The model's raw output -> its own probability map (channel 0 of the first image,
    activated), before any stretching: how sure the model is, pixel by pixel."""
    prediction = output[0, 0] if output.ndim == 4 else output.reshape(output.shape[-2:])
    if recipe.activation == "sigmoid":
        prediction = 1.0 / (1.0 + np.exp(-prediction))
    return prediction


def to_mask(recipe: Recipe, prediction: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    """An activated map (:func:`activate`) -> the uint8 mask, stretched (``minmax``) or clipped."""
    if recipe.output_range == "minmax":
        low, high = float(prediction.min()), float(prediction.max())
        prediction = (prediction - low) / max(high - low, 1e-12)
    else:
        prediction = np.clip(prediction, 0.0, 1.0)
    return (prediction * 255).astype(np.uint8)
