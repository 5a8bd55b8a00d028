"""Every catalogue model's recipe against rembg 2.0.86's own session class for it.

No weights of the downloadable models are reachable here, so each recipe (input size,
resize, normalisation, layout, output read, activation, output range) is proven against an
independent implementation: rembg's session class, built without a model file
(``cls.__new__``) around a stand-in ONNX session. The same photo goes through rembg's
``predict`` and through alphacut's ``Remover(name, refine="none").predict_mask``; both stand-ins
record the input tensor and return the same fixed synthetic output, chosen so that a missing
sigmoid, min-max or clip changes the mask.

Tolerances (measured numbers in the module's constants' comments):

- input tensors: same shape ``(1, 3, S, S)`` (NCHW), float32, max abs difference <= 1e-5
  for every model but ``isnet-general-use`` (rembg computes in float64, alphacut in float32);
- masks: max abs difference <= 1 grey level (the min-max's float32 rounding can move a pixel
  across a truncation step);
- ``isnet-general-use``: alphacut's file is IMG.LY's export, with its own recipe (bilinear,
  ``(x - 128) / 256``, output clipped), not rembg's (LANCZOS, ``x / max - 0.5``, min-max). The
  tensors differ by exactly ``(B - L) / 256 + L * (1/256 - 1/M)`` (B, L: the bilinear and
  LANCZOS resized pixels, M: L's maximum), checked to 1e-5. Measured on these photos: max
  0.17-0.32 (mean 0.003-0.03), mostly bilinear against LANCZOS at edges; 0.48 (mean 0.15) on
  the dark photo, which rembg stretches to its maximum and IMG.LY's recipe does not. The
  masks are equal (<= 1 grey level; measured 0) when the model's output spans 0..1, as a
  probability map does; beyond 0..1 alphacut clips where rembg stretches (tested too).
"""

from __future__ import annotations

import dataclasses
import functools
import io
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image
from rembg.sessions.base import BaseSession
from rembg.sessions.ben_custom import BenCustomSession
from rembg.sessions.birefnet_cod import BiRefNetSessionCOD
from rembg.sessions.birefnet_dis import BiRefNetSessionDIS
from rembg.sessions.birefnet_general import BiRefNetSessionGeneral
from rembg.sessions.birefnet_general_lite import BiRefNetSessionGeneralLite
from rembg.sessions.birefnet_hrsod import BiRefNetSessionHRSOD
from rembg.sessions.birefnet_massive import BiRefNetSessionMassive
from rembg.sessions.birefnet_portrait import BiRefNetSessionPortrait
from rembg.sessions.bria_rmbg import BriaRmBgSession
from rembg.sessions.dis_anime import DisSession as DisAnimeSession
from rembg.sessions.dis_general_use import DisSession as DisGeneralUseSession
from rembg.sessions.silueta import SiluetaSession
from rembg.sessions.u2net import U2netSession
from rembg.sessions.u2net_human_seg import U2netHumanSegSession
from rembg.sessions.u2netp import U2netpSession

from alphacut import Remover
from alphacut.config import Settings
from alphacut.engine.sessions import LoadSpec, RuntimeChoice
from alphacut.models.registry import CATALOGUE
from alphacut.models.store import ModelStore

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rembg"

# The synthetic outputs' ranges. Logits for the sigmoid models: sigmoid(-2.5) = 0.076 (19
# grey levels) and sigmoid(6) = 0.998, so both the sigmoid and rembg's min-max after it
# change the mask. A range beyond 0..1 for the min-max models, so that clipping instead of
# stretching fails. Exactly 0..1 for isnet-general-use (see the module docstring).
LOGITS = (-2.5, 6.0)
BEYOND_UNIT = (-0.4, 1.7)
UNIT = (0.0, 1.0)

# rembg's session class for each catalogue model, and the synthetic output's range.
REMBG: dict[str, tuple[type[BaseSession], tuple[float, float]]] = {
    "u2netp": (U2netpSession, BEYOND_UNIT),
    "isnet-general-use": (DisGeneralUseSession, UNIT),
    "u2net": (U2netSession, BEYOND_UNIT),
    "u2net_human_seg": (U2netHumanSegSession, BEYOND_UNIT),
    "silueta": (SiluetaSession, BEYOND_UNIT),
    "isnet-anime": (DisAnimeSession, BEYOND_UNIT),
    "birefnet-general": (BiRefNetSessionGeneral, LOGITS),
    "birefnet-general-lite": (BiRefNetSessionGeneralLite, LOGITS),
    "birefnet-portrait": (BiRefNetSessionPortrait, LOGITS),
    "birefnet-dis": (BiRefNetSessionDIS, LOGITS),
    "birefnet-hrsod": (BiRefNetSessionHRSOD, LOGITS),
    "birefnet-cod": (BiRefNetSessionCOD, LOGITS),
    "birefnet-massive": (BiRefNetSessionMassive, LOGITS),
    "bria-rmbg-2.0": (BriaRmBgSession, BEYOND_UNIT),
    "ben2": (BenCustomSession, BEYOND_UNIT),
}
IMGLY = "isnet-general-use"  # alphacut's file is another export, with its own recipe
TENSOR_TOLERANCE = 1e-5  # measured: <= 4.8e-7 (float32 against rembg's float64)
MASK_TOLERANCE = 1  # grey levels; measured: 0 on every model and photo
INPUT_NAME = "input.1"


def _fixture_photo(name: str) -> Image.Image:
    with Image.open(FIXTURES / name) as opened:
        opened.load()
        return opened.copy()


def _rgba_png() -> Image.Image:
    """A real RGBA PNG: the car, with a transparent left third whose hidden colours are
    noise (rembg and alphacut's predict_mask both drop alpha: the noise is what they see)."""
    rgb = np.asarray(_fixture_photo("car-1.jpg").convert("RGB")).copy()
    rng = np.random.default_rng(7)
    third = rgb.shape[1] // 3
    rgb[:, :third] = rng.integers(0, 256, size=rgb[:, :third].shape, dtype=np.uint8)
    alpha = np.full(rgb.shape[:2], 255, np.uint8)
    alpha[:, :third] = 0
    alpha[:, third : third + 40] = np.linspace(0, 255, 40, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(np.dstack([rgb, alpha]), "RGBA").save(buffer, "PNG")
    image = Image.open(io.BytesIO(buffer.getvalue()))
    image.load()
    return image


def _dark_photo() -> Image.Image:
    """The portrait at 55% brightness (max 151 after resizing, not 255): rembg divides by
    the resized image's max, not by 255."""
    rgb = np.asarray(_fixture_photo("cloth-1.jpg").convert("RGB"), dtype=np.float32)
    return Image.fromarray((rgb * 0.55).round().astype(np.uint8), "RGB")


PHOTOS: dict[str, Callable[[], Image.Image]] = {
    "anime-girl-1": lambda: _fixture_photo("anime-girl-1.jpg"),
    "car-1": lambda: _fixture_photo("car-1.jpg"),
    "cloth-1": lambda: _fixture_photo("cloth-1.jpg"),
    "plants-1": lambda: _fixture_photo("plants-1.jpg"),  # a PNG (RGBA, opaque) named .jpg
    "rgba-png": _rgba_png,
    "dark": _dark_photo,
}


@pytest.fixture(scope="module")
def photos() -> dict[str, Image.Image]:
    return {name: make() for name, make in PHOTOS.items()}


@functools.lru_cache(maxsize=8)
def synthetic_output(size: int, low: float, high: float, seed: int = 0) -> npt.NDArray[np.float32]:
    """A fixed ``[1, 1, size, size]`` float32 map spanning exactly ``low..high``: a smooth
    blob (a subject), a soft ramp and fine noise, so every grey level is in use."""
    grid = np.linspace(-1.0, 1.0, size)
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    blob = np.exp(-((xx - 0.2) ** 2 + (yy + 0.1) ** 2) / 0.3)
    field = blob + 0.3 * (xx + 1.0) / 2 + 0.05 * np.random.default_rng(seed).random((size, size))
    field = (field - field.min()) / (field.max() - field.min())
    out: npt.NDArray[np.float32] = (low + (high - low) * field).astype(np.float32)
    out[0, 0], out[-1, -1] = low, high  # exactly the range, after float32 rounding too
    out.flags.writeable = False  # shared (cached): the stand-ins hand out copies
    return out[None, None]


class RembgStandIn:
    """Stands in for rembg's ``onnxruntime.InferenceSession``: records the feeds, returns the
    fixed output first and six decoy side outputs (like U2-Net's d1..d6) after it."""

    def __init__(self, output: npt.NDArray[np.float32]) -> None:
        decoys = [np.flip(output, axis=-1 - (i % 2)) * 0.5 - i for i in range(1, 7)]
        self.outputs = [output, *decoys]
        self.feeds: list[dict[str, npt.NDArray[Any]]] = []

    def get_inputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=INPUT_NAME)]

    def get_outputs(self) -> list[SimpleNamespace]:
        return [SimpleNamespace(name=f"d{i}") for i in range(len(self.outputs))]

    def run(
        self, output_names: list[str] | None, feeds: dict[str, npt.NDArray[Any]]
    ) -> list[npt.NDArray[np.float32]]:
        assert output_names is None
        self.feeds.append({name: value.copy() for name, value in feeds.items()})
        return [output.copy() for output in self.outputs]


class AlphacutStandIn:
    """Stands in for alphacut's loaded model (the ``LoadedModel`` protocol): records the
    tensor, returns the output the recipe names (the fixed one)."""

    choice = RuntimeChoice("onnxruntime", "fp32", "cpu", "stand-in")

    def __init__(self, output: npt.NDArray[np.float32]) -> None:
        self.output = output
        self.tensors: list[npt.NDArray[np.float32]] = []

    def run(self, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        self.tensors.append(tensor.copy())
        return self.output.copy()


class FakeCache:
    """Stands in for the session cache: hands out the stand-in, records what was asked."""

    def __init__(self, model: AlphacutStandIn) -> None:
        self.model = model
        self.calls: list[tuple[Path, dict[str, Any]]] = []

    def get(self, spec: LoadSpec, **options: Any) -> AlphacutStandIn:
        self.calls.append((spec.path, {**dataclasses.asdict(spec), **options}))
        return self.model


@pytest.fixture(autouse=True)
def _no_model_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``ModelStore.require`` answers a path without the file being there."""

    def require(self: ModelStore, name: str) -> Path:
        return tmp_path / self.spec(name).filename

    monkeypatch.setattr(ModelStore, "require", require)


@dataclasses.dataclass
class Pair:
    rembg: BaseSession
    rembg_inner: RembgStandIn
    remover: Remover
    alphacut_model: AlphacutStandIn
    cache: FakeCache

    def masks(self, image: Image.Image) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        theirs = np.asarray(self.rembg.predict(image)[0])
        ours = np.asarray(self.remover.predict_mask(image))
        return theirs, ours

    def tensors(self) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
        assert len(self.rembg_inner.feeds) == 1 and len(self.alphacut_model.tensors) == 1
        (feed,) = self.rembg_inner.feeds
        assert list(feed) == [INPUT_NAME]
        theirs, ours = feed[INPUT_NAME], self.alphacut_model.tensors[0]
        self.rembg_inner.feeds.clear()
        self.alphacut_model.tensors.clear()
        return theirs, ours


def make_pair(name: str, output: npt.NDArray[np.float32], tmp_path: Path) -> Pair:
    cls, _ = REMBG[name]
    session = cast(Any, cls).__new__(cls)  # no __init__: no model file, no onnxruntime
    inner = RembgStandIn(output)
    session.inner_session = inner
    model = AlphacutStandIn(output)
    cache = FakeCache(model)
    settings = Settings(model_dir=tmp_path, image_threads=2)
    remover = Remover(name, refine="none", settings=settings, sessions=cache)  # type: ignore[arg-type]
    return Pair(session, inner, remover, model, cache)


def _output_for(name: str) -> npt.NDArray[np.float32]:
    size = CATALOGUE[name].recipe.size
    low, high = REMBG[name][1]
    return synthetic_output(size, low, high)


def test_every_catalogue_model_has_a_rembg_counterpart() -> None:
    assert set(REMBG) == set(CATALOGUE), "map each catalogue model to rembg's session class"


def check_parity(name: str, photos: dict[str, Image.Image], tmp_path: Path) -> None:
    """The assertions of :func:`test_recipe_matches_rembg` (also run on broken recipes)."""
    pair = make_pair(name, _output_for(name), tmp_path)
    for photo, image in photos.items():
        theirs_mask, ours_mask = pair.masks(image)
        theirs, ours = pair.tensors()
        size = pair.remover.recipe.size
        where = f"{name} on {photo}"
        shapes = f"{where}: shapes {theirs.shape} (rembg), {ours.shape} (alphacut)"
        assert theirs.shape == ours.shape == (1, 3, size, size), shapes
        assert theirs.dtype == ours.dtype == np.float32, where
        if name == IMGLY:
            check_imgly_tensor(image, theirs, ours, where)
        else:
            gap = float(np.abs(theirs - ours).max())
            assert gap <= TENSOR_TOLERANCE, f"{where}: input tensors differ by {gap}"
        assert ours_mask.shape == theirs_mask.shape == (image.height, image.width), where
        assert ours_mask.dtype == np.uint8, where
        diff = int(np.abs(ours_mask.astype(int) - theirs_mask.astype(int)).max())
        assert diff <= MASK_TOLERANCE, f"{where}: masks differ by {diff} grey levels"
    # rembg reads the first output; alphacut asks its session for the recipe's (None: the
    # first). Only the IMG.LY export is read by name (its one output, "output").
    path, options = pair.cache.calls[0]
    assert path.name == CATALOGUE[name].filename
    wanted = "output" if name == IMGLY else None
    assert options["output"] == wanted, f"{name}: reads output {options['output']!r}"


@pytest.mark.parametrize("name", list(CATALOGUE))
def test_recipe_matches_rembg(name: str, photos: dict[str, Image.Image], tmp_path: Path) -> None:
    """Input tensor and final mask equal to rembg's, on six photos (one RGBA, one dark)."""
    assert name in REMBG, f"{name} has no rembg session class in REMBG"
    check_parity(name, photos, tmp_path)


def check_imgly_tensor(
    image: Image.Image, theirs: npt.NDArray[Any], ours: npt.NDArray[Any], where: str
) -> None:
    """alphacut (IMG.LY's recipe): ``(B - 128) / 256``; rembg: ``L / M - 0.5``. Their
    difference is exactly ``(B - L) / 256 + L * (1/256 - 1/M)`` (which, with the first
    check, pins rembg's side to ``L / M - 0.5`` too)."""
    size = theirs.shape[-1]
    rgb = image.convert("RGB")
    # float32 is exact here: 8-bit values, and divisions by 256
    bilinear = np.asarray(rgb.resize((size, size), Image.Resampling.BILINEAR), np.float32)
    lanczos = np.asarray(rgb.resize((size, size), Image.Resampling.LANCZOS), np.float32)
    peak = max(float(lanczos.max()), 1e-6)
    ours_hwc, theirs_hwc = ours[0].transpose(1, 2, 0), theirs[0].transpose(1, 2, 0)
    recipe_gap = float(np.abs(ours_hwc - (bilinear - 128) / 256).max())
    assert recipe_gap <= TENSOR_TOLERANCE, f"{where}: not (B - 128) / 256 ({recipe_gap})"
    known = (bilinear - lanczos) / 256 + lanczos * np.float32(1 / 256 - 1 / peak)
    unexplained = float(np.abs((ours_hwc - theirs_hwc) - known).max())
    assert unexplained <= 2 * TENSOR_TOLERANCE, f"{where}: gap beyond the known {unexplained}"


def test_imgly_export_clips_where_rembg_stretches(
    photos: dict[str, Image.Image], tmp_path: Path
) -> None:
    """isnet-general-use's output beyond 0..1: alphacut clips it (IMG.LY's recipe), rembg's
    min-max would stretch it; the masks then differ, as they should for another export."""
    name = IMGLY
    output = synthetic_output(CATALOGUE[name].recipe.size, -0.2, 1.2)
    pair = make_pair(name, output, tmp_path)
    image = photos["car-1"]
    theirs, ours = pair.masks(image)
    small = Image.fromarray((np.clip(output[0, 0], 0, 1) * 255).astype(np.uint8), "L")
    expected = np.asarray(small.resize(image.size, Image.Resampling.LANCZOS))
    np.testing.assert_array_equal(ours, expected)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() > 10


def test_dark_photo_is_dark(photos: dict[str, Image.Image]) -> None:
    """The dark photo tests the divide-by-max: its resized maximum is well below 255."""
    for size in (320, 1024):
        resized = photos["dark"].resize((size, size), Image.Resampling.LANCZOS)
        assert np.asarray(resized).max() < 200


def _broken(**changes: Any) -> Callable[[Any], Any]:
    return lambda recipe: dataclasses.replace(recipe, **changes)


# mistake -> (model, the broken recipe, what the check must say)
BROKEN: dict[str, tuple[str, Callable[[Any], Any], str]] = {
    "no sigmoid": ("birefnet-general", _broken(activation="none"), "masks differ"),
    "clip, not min-max": ("bria-rmbg-2.0", _broken(output_range="clip"), "masks differ"),
    "ImageNet std": ("isnet-anime", _broken(std=(0.229, 0.224, 0.225)), "tensors differ"),
    "bilinear": ("u2netp", _broken(resample="bilinear"), "tensors differ"),
    "/ 255, not / max": ("u2net", _broken(divisor=255.0), "tensors differ"),
    "BGR mean": ("ben2", _broken(mean=(0.406, 0.456, 0.485)), "tensors differ"),
    "wrong size": ("silueta", _broken(size=288), "shapes"),
    "another output": ("u2net_human_seg", _broken(output="d1"), "reads output"),
}


@pytest.mark.parametrize("mistake", list(BROKEN))
def test_a_broken_recipe_fails_the_parity_check(
    mistake: str,
    photos: dict[str, Image.Image],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The check has teeth: each of these recipe mistakes makes it fail, for its reason."""
    name, breaks, message = BROKEN[mistake]
    spec = CATALOGUE[name]
    monkeypatch.setitem(CATALOGUE, name, dataclasses.replace(spec, recipe=breaks(spec.recipe)))
    subset = {"dark": photos["dark"]}  # the one photo every mistake shows on
    with pytest.raises(AssertionError, match=message):
        check_parity(name, subset, tmp_path)


@pytest.fixture(scope="module", autouse=True)
def _catalogue_untouched() -> Iterator[None]:
    before = dict(CATALOGUE)
    yield
    assert before == CATALOGUE
