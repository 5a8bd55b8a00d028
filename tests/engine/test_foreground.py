"""Foreground colour estimation: soft pixels lose the old background's colour."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from alphacut.engine.foreground import estimate_foreground


def _scene(
    seed: int = 0,
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """A textured subject (a disc with a soft rim) over a textured, differently coloured
    background: foreground, background and alpha, all known exactly."""
    rng = np.random.default_rng(seed)
    height, width = 240, 320

    def texture(base: tuple[float, float, float]) -> npt.NDArray[np.float32]:
        noise = cv2.GaussianBlur(rng.random((height, width, 3), dtype=np.float32), (0, 0), 6)
        return np.clip(np.array(base, np.float32) + 0.4 * (noise - 0.5), 0, 1)

    foreground = texture((0.85, 0.25, 0.2))  # reddish subject
    background = texture((0.15, 0.7, 0.25))  # a lawn
    yy, xx = np.mgrid[:height, :width]
    radius = np.hypot(yy - height / 2, xx - width / 2)
    alpha = np.clip((90 - radius) / 12 + 0.5, 0, 1).astype(np.float32)  # a 12 px soft rim
    return foreground, background, alpha


def _u8(x: npt.NDArray[np.float32]) -> npt.NDArray[np.uint8]:
    return np.asarray(np.clip(x * 255 + 0.5, 0, 255), np.uint8)


def test_soft_pixels_get_the_subjects_colour_back() -> None:
    foreground, background, alpha = _scene()
    photo = alpha[..., None] * foreground + (1 - alpha[..., None]) * background
    estimated = estimate_foreground(_u8(photo), _u8(alpha)).astype(np.float32) / 255
    soft = (alpha > 0.05) & (alpha < 0.95)
    a = alpha[..., None]
    # The error of the cut-out over any new background is a * (colour - true foreground).
    kept = np.abs(a * (photo - foreground))[soft].mean()
    fused = np.abs(a * (estimated - foreground))[soft].mean()
    assert fused < 0.5 * kept, (kept, fused)
    # The green of the lawn is gone from the rim: the rim is no greener than the subject.
    rim = (alpha > 0.2) & (alpha < 0.6)
    assert estimated[rim][:, 1].mean() < foreground[rim][:, 1].mean() + 0.05
    assert photo[rim][:, 1].mean() > foreground[rim][:, 1].mean() + 0.1


def test_opaque_and_transparent_pixels_keep_the_photos_colour() -> None:
    foreground, background, alpha = _scene(1)
    photo = _u8(alpha[..., None] * foreground + (1 - alpha[..., None]) * background)
    mask = _u8(alpha)
    estimated = estimate_foreground(photo, mask)
    hard = (mask == 0) | (mask == 255)
    assert np.array_equal(estimated[hard], photo[hard])
    assert not np.array_equal(estimated[~hard], photo[~hard])


def test_a_mask_with_no_soft_pixels_changes_nothing() -> None:
    photo = np.random.default_rng(2).integers(0, 256, (50, 60, 3), dtype=np.uint8)
    mask = np.zeros((50, 60), np.uint8)
    mask[10:40, 20:50] = 255
    estimated = estimate_foreground(photo, mask)
    assert np.array_equal(estimated, photo)
    assert estimated is not photo


def test_threads_share_the_tiles_and_change_no_pixel() -> None:
    rng = np.random.default_rng(3)
    photo = rng.integers(0, 256, (700, 900, 3), dtype=np.uint8)
    noise = cv2.GaussianBlur(rng.random((700, 900), dtype=np.float32), (0, 0), 25)
    mask = _u8(np.clip((noise - noise.mean()) * 40 + 0.5, 0, 1))  # soft, winding contours
    one = estimate_foreground(photo, mask)
    tiles = int(np.count_nonzero(((mask > 0) & (mask < 255))[::64, ::64]))
    assert tiles >= 2 * 32, "enough soft tiles for two threads"
    for threads in (2, 3, 8):
        assert np.array_equal(estimate_foreground(photo, mask, threads=threads), one)
