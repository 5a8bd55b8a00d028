"""The library's front door: :class:`Remover` turns a photo into a full-size :class:`Cutout`."""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageChops

from alphacut.engine.compose import (
    RGBA,
    Box,
    Margin,
    cutout_array,
    on_background,
    parse_color,
    subject_box,
)
from alphacut.engine.confidence import Assessment, assess, assess_checked, subject_share
from alphacut.engine.config import EngineSettings, engine_settings
from alphacut.engine.decode import ALL_FORMATS, DecodedImage, ImageSource, Limits, decode
from alphacut.engine.encode import check_quality, encode_image
from alphacut.engine.foreground import estimate_foreground
from alphacut.engine.formats import OutputFormat, parse_format
from alphacut.engine.hints import Hints, Proposer, clear_outside, correct
from alphacut.engine.recipes import activate, preprocess, to_mask
from alphacut.engine.refine import (
    STEPS,
    agree,
    firm_alpha,
    resolve_refine,
    with_margin,
    zoom_box,
)
from alphacut.engine.sessions import SESSIONS, LoadedModel, LoadSpec, SessionCache
from alphacut.errors import InvalidInputError, ModelNotInstalledError, NoSubjectError
from alphacut.files import write_atomic
from alphacut.models.registry import AUTO_MODEL, ModelSpec, Recipe, Refine
from alphacut.models.store import ModelStatus, ModelStore

ModelRunner = Callable[[LoadedModel, npt.NDArray[np.float32]], npt.NDArray[np.float32]]
"""How :meth:`Remover.predict` runs a model pass: ``run(model, tensor) -> output``."""

_WHITE: RGBA = (255, 255, 255, 255)
_FAST = "fast"  # the alias of the model that proposes what a click lands on


def check_refine(settings: EngineSettings, store: ModelStore | None = None) -> None:
    """Raise :class:`InvalidInputError` if ``settings.refine`` is one that a configured model
    (default, fast, precise, loaded at start) cannot honour (``consensus`` for a model without
    a checker): services call this at start, so the mistake is reported once instead of
    failing every request. Other models chosen per request answer 400 for it."""
    for name in {settings.default_model, "fast", "precise", *settings.load_models}:
        Remover(name, settings=settings, store=store)


@dataclass(frozen=True)
class Prediction:
    """What :meth:`Remover.predict` found: the refined ``mask`` (mode ``L``, the photo's
    size), how sure it is (``assessment``; ``None`` for a mask a person corrected with clicks:
    no model's figure describes it) and the catalogue ``model`` whose mask it is
    (``model=auto`` picks one of two)."""

    mask: Image.Image
    assessment: Assessment | None
    model: str


@dataclass(frozen=True)
class _Pass:
    """One pass of a model: its mask at its own input size, and the share of the photo its
    raw output (before any stretch) sees as subject."""

    mask: npt.NDArray[np.uint8]
    share: float


class Cutout:
    """One background removal's result, always at the photo's full resolution.

    ``image`` is the RGBA cut-out, ``mask`` its alpha as a greyscale image. Fully transparent
    pixels carry no colour. ``timings`` holds the seconds each stage took. ``confidence``
    estimates the cut-out's IoU against a person's mask (0..1, :mod:`~.confidence`);
    ``doubtful`` says it is below ``ALPHACUT_DOUBTFUL_BELOW``: worth a person's look.
    """

    def __init__(
        self,
        rgba: npt.NDArray[np.uint8],
        *,
        icc_profile: bytes | None,
        model: str,
        timings: dict[str, float],
        settings: EngineSettings,
        assessment: Assessment | None = None,
        mask_model: str | None = None,
    ) -> None:
        rgba.flags.writeable = False
        self._rgba = rgba
        self.icc_profile = icc_profile
        self.model = model  # as asked: auto, an alias or a catalogue name
        self.mask_model = mask_model or model  # the catalogue model whose mask this is
        self.timings = timings
        self.assessment = assessment
        self._settings = settings

    @property
    def confidence(self) -> float | None:
        """The estimated IoU of this cut-out (0..1); None for one made without a model."""
        return None if self.assessment is None else self.assessment.confidence

    @property
    def doubtful(self) -> bool:
        """Whether :attr:`confidence` is below the settings' ``doubtful_below``."""
        confidence = self.confidence
        return confidence is not None and confidence < self._settings.doubtful_below

    @property
    def array(self) -> npt.NDArray[np.uint8]:
        """The cut-out as a read-only ``(height, width, 4)`` uint8 RGBA array."""
        return self._rgba

    @property
    def image(self) -> Image.Image:
        """The cut-out as an RGBA PIL image."""
        return Image.fromarray(self._rgba, "RGBA")

    @property
    def mask(self) -> Image.Image:
        """The alpha mask as a greyscale (``L``) PIL image: 255 subject, 0 background."""
        return Image.fromarray(np.ascontiguousarray(self._rgba[..., 3]), "L")

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` in pixels."""
        return (self._rgba.shape[1], self._rgba.shape[0])

    @property
    def width(self) -> int:
        return self.size[0]

    @property
    def height(self) -> int:
        return self.size[1]

    def subject_box(self) -> Box | None:
        """``(left, top, right, bottom)`` of the visible subject, or ``None`` if there is none."""
        return subject_box(self.mask)

    def crop(self, margin: int | float | str = 0) -> Cutout:
        """A new cut-out cropped to the subject plus ``margin`` (``30``, ``"30px"``, ``"10%"``
        of the subject's size). Margins beyond the photo's edge are transparent. With no
        subject at all, the whole frame is kept."""
        box = self.subject_box()
        if box is None:
            return self
        left, top, right, bottom = Margin.parse(margin).box_around(box)
        cropped = self.image.crop((left, top, right, bottom))  # outside the photo: zeros
        return self.with_pixels(np.asarray(cropped).copy())

    def with_pixels(self, rgba: npt.NDArray[np.uint8]) -> Cutout:
        """A cut-out of the same photo (profile, model, timings) with other pixels."""
        return Cutout(
            rgba,
            icc_profile=self.icc_profile,
            model=self.model,
            timings=self.timings,
            settings=self._settings,
            assessment=self.assessment,
            mask_model=self.mask_model,
        )

    def encode(
        self,
        pixels: Image.Image | npt.NDArray[np.uint8],
        fmt: OutputFormat,
        quality: int | None = None,
        icc_profile: bytes | None = None,
    ) -> bytes:
        """``pixels`` of this cut-out (its mask, its colours...) encoded as its own are."""
        return encode_image(
            pixels,
            fmt,
            quality=quality,
            icc_profile=icc_profile,
            png_level=self._settings.png_compress_level,
            threads=self._settings.image_threads,
        )

    def on_background(self, color: str | tuple[int, ...] = "#ffffff") -> Image.Image:
        """The subject over a solid colour (RGB if the colour is opaque, RGBA if it has alpha)."""
        return on_background(self.image, parse_color(color))

    def to_bytes(
        self,
        format: str = "png",
        quality: int | None = None,
        *,
        mask: bool = False,
        background: str | tuple[int, ...] | None = None,
    ) -> bytes:
        """Encode the result.

        - default: the RGBA cut-out (PNG, or WebP: lossless unless ``quality`` is given);
        - ``mask=True``: the greyscale mask;
        - ``background="#rrggbb[aa]"``: the subject on that colour;
        - JPEG cannot hold transparency, so a JPEG cut-out is put on white unless
          ``background`` names another opaque colour.
        """
        fmt = parse_format(format)
        check_quality(quality)
        pixels: Image.Image | npt.NDArray[np.uint8]
        if mask:
            if background is not None:
                raise InvalidInputError("choose either a mask or a background, not both")
            pixels = np.ascontiguousarray(self._rgba[..., 3])
        elif background is not None or fmt == "jpeg":
            color = parse_color(background) if background is not None else _WHITE
            if fmt == "jpeg" and color[3] != 255:
                raise InvalidInputError("JPEG cannot hold a translucent background colour")
            pixels = on_background(self.image, color)
        else:
            pixels = self._rgba
        # The photo's colour profile describes its colours: a mask has none (an RGB profile
        # in a greyscale PNG is invalid).
        icc = None if mask else self.icc_profile
        return self.encode(pixels, fmt, quality, icc)

    def save(
        self,
        path: str | os.PathLike[str],
        format: str | None = None,
        quality: int | None = None,
        *,
        mask: bool = False,
        background: str | tuple[int, ...] | None = None,
    ) -> Path:
        """Write the result to ``path`` atomically (temp file, then rename).

        The format comes from ``format`` or else the file's suffix; other options are those of
        :meth:`to_bytes`.
        """
        target = Path(path)
        fmt = parse_format(format or target.suffix or "png")
        data = self.to_bytes(fmt, quality, mask=mask, background=background)
        write_atomic(target, data)
        return target


class Remover:
    """Removes backgrounds with one model; reuses the process-wide loaded session.

    >>> remover = Remover(model="fast")
    >>> cut = remover.remove("photo.jpg")
    >>> cut.save("photo.png")
    """

    def __init__(
        self,
        model: str | None = None,
        *,
        refine: str | None = None,
        settings: EngineSettings | None = None,
        store: ModelStore | None = None,
        sessions: SessionCache = SESSIONS,
    ) -> None:
        self.settings = settings or engine_settings()
        self.model = model or self.settings.default_model  # as asked: an alias or a name
        self._store = store or self.settings.model_store()
        # auto: the precise model with its consensus check; where the two models disagree and
        # the checker's output is the more decided, the checker's cut-out (with zoom) is kept
        # instead (engine/confidence.py; docs/quality.md, "model=auto").
        self.spec = self._store.spec(self.model)
        # Without a checker (ALPHACUT_PRECISE_MODEL=birefnet-general...) auto is precise alone.
        self.routes = self.model == AUTO_MODEL and self.spec.checker is not None
        if self.routes and refine not in (None, Refine.AUTO, Refine.CONSENSUS):
            raise InvalidInputError(
                f"model auto chooses between two models' cut-outs and needs refine consensus; "
                f"leave refine unset (or auto) or choose a model for refine {refine}"
            )
        requested = Refine.CONSENSUS if self.routes else refine
        self.refine = resolve_refine(requested or self.settings.refine, self.spec.refine)
        self.steps = STEPS[self.refine]
        self.recipe: Recipe = self.spec.recipe
        self._sessions = sessions
        self._checker: Remover | None = None
        if self.steps.checker:
            if self.spec.checker is None:
                raise InvalidInputError(
                    f"refine consensus needs a second model to check {self.spec.name} with and "
                    "it has none; choose none, edges or zoom (auto picks each model's best)"
                )
            self._checker = Remover(
                self.spec.checker,
                refine=Refine.NONE,
                settings=self.settings,
                store=self._store,
                sessions=sessions,
            )
        # auto's other cut-out: the checker's model with zoom (the same loaded session)
        self._fallback: Remover | None = None
        if self.routes and self.spec.checker is not None:  # (checked: for the type checker)
            self._fallback = Remover(
                self.spec.checker,
                refine=Refine.ZOOM,
                settings=self.settings,
                store=self._store,
                sessions=sessions,
            )
        # The library reads every format the engine does, not only the HTTP APIs' three.
        self._limits = Limits(
            self.settings.max_input_bytes, self.settings.max_input_pixels, ALL_FORMATS
        )

    @property
    def checker_spec(self) -> ModelSpec | None:
        """The second model that ``consensus`` runs, if this remover runs one."""
        return self._checker.spec if self._checker is not None else None

    def installed(self) -> bool:
        """Whether this remover's model files (its checker's too) are installed and intact."""
        specs = [self.spec] if self.checker_spec is None else [self.spec, self.checker_spec]
        return all(self._store.status(spec) is ModelStatus.INSTALLED for spec in specs)

    @functools.cached_property
    def load_spec(self) -> LoadSpec:
        """What :meth:`load` asks the session cache for: built once, the settings are frozen."""
        return LoadSpec(
            path=self._store.path(self.spec),
            output=self.recipe.output,
            runtime=self.settings.runtime,
            device=self.settings.device,
            threads=self.settings.inference_threads,
            streams=self.settings.streams_for(self.spec.memory_mb),
            precision=self.settings.precision_for(self.spec.name),
            bf16_proven=self.spec.bf16,
            cache_dir=_compile_cache(self.settings, self.spec),
        )

    def load(self) -> LoadedModel:
        """Load (or fetch from the cache) the model's session (and its checker's, for
        ``consensus``); raises if a model it needs is not installed."""
        self._store.require(self.spec.name)  # installed and intact: checked on every load
        loaded = self._sessions.get(
            self.load_spec,
            max_loaded=self.settings.max_loaded_models,
            pinned=self.spec.name in self.settings.configured_models,
        )
        if self._checker is not None:
            try:
                self._checker.load()
            except ModelNotInstalledError as exc:
                raise ModelNotInstalledError(
                    f"{exc.message} (refine consensus checks {self.model!r} with it; "
                    "or choose another refine)"
                ) from exc
        return loaded

    def predict_mask(self, image: Image.Image) -> Image.Image:
        """The model's mask for an image, resized to the image's size (mode ``L``)."""
        return self._predict(image.convert("RGB"), {}, _run_here).mask

    def remove(
        self,
        source: ImageSource,
        *,
        crop: bool = False,
        crop_margin: int | float | str = 0,
        hints: Hints | None = None,
    ) -> Cutout:
        """Cut the subject out of ``source``: a path, bytes, a binary file object, a PIL image
        or a numpy array (RGB/RGBA/grey; uint8, uint16 or float in 0..1). ``hints``: a box
        the subject lies in and clicks (:mod:`~alphacut.engine.hints`), in its pixels."""
        timings: dict[str, float] = {}
        with _timed(timings, "decode"):
            decoded = self.decode(source)
        cutout = self.compose(decoded, self.predict(decoded, timings, hints=hints), timings)
        return cutout.crop(crop_margin) if crop else cutout

    def decode(self, source: ImageSource) -> DecodedImage:
        """``source`` decoded within the library's limits (every format the engine reads): the
        first of :meth:`remove`'s three steps, with :meth:`predict` and :meth:`compose`."""
        return decode(source, self._limits)

    def predict(
        self,
        decoded: DecodedImage,
        timings: dict[str, float] | None = None,
        run: ModelRunner | None = None,
        hints: Hints | None = None,
    ) -> Prediction:
        """The refined mask (mode ``L``) of a decoded photo, at its size, and how sure it is:
        the model's pass(es) and the image work around them. With :meth:`compose`,
        :meth:`remove` in two steps, so that a service can run this one where its models are
        and decoding and encoding elsewhere. ``run(model, tensor)`` runs each model pass
        (default: right here), so that a service can hold its inference slot for the model's
        work alone. Raises :class:`~alphacut.errors.NoSubjectError` where the model sees no
        subject (under ``ALPHACUT_NO_SUBJECT_SHARE`` of the photo): never an empty cut-out.

        ``hints`` (:mod:`~alphacut.engine.hints`): with a box, the model looks at the box
        alone (with a margin of context) and nothing outside it is subject; clicks then
        correct the mask (and a click on a subject is never refused as showing none)."""
        image = self._viewed(decoded)
        timings = timings if timings is not None else {}
        hints = hints or Hints()
        hints.check(*image.size)
        if hints.box is None:
            found = self._predict(image, timings, run or _run_here)
        else:
            found = self._predict_in(image, hints.box, timings, run or _run_here)
        if hints.points:
            rgb = np.asarray(image.convert("RGB"))
            propose = self.proposer(timings, run)
            with _timed(timings, "hints"):
                mask = correct(rgb, np.asarray(found.mask), Hints(points=hints.points), propose)
            return Prediction(Image.fromarray(mask, "L"), None, found.model)
        assert found.assessment is not None  # noqa: S101 - a model's own pass has one
        least = self.settings.no_subject_share
        if found.assessment.subject < least:
            seen = found.assessment.subject
            other = found.assessment.checker_subject
            if self.routes or (other is not None and other < least):  # both models looked
                who, hint = "neither model sees", ""
            elif other is not None:
                who, hint = f"{self.spec.name} sees", "; the fast model sees one: try model auto"
            else:
                who, hint = f"{self.spec.name} sees", "; another model may find one"
            raise NoSubjectError(
                f"no subject found in this photo: {who} anything to cut out ({seen:.2%} of "
                f"it, under {least:.2%}): a plain surface or an empty scene has no "
                f"foreground{hint}"
            )
        return found

    def correct(
        self,
        decoded: DecodedImage,
        base: Image.Image,
        hints: Hints,
        timings: dict[str, float] | None = None,
        run: ModelRunner | None = None,
    ) -> Prediction:
        """A cut-out made before (``base``: its RGBA image, or its mask, at the photo's size)
        corrected by ``hints`` without running this remover's model again: nothing outside the
        box, then each click (:func:`~alphacut.engine.hints.correct`; a subject click away
        from the mask asks the fast model about a window around it, once per photo and click).
        What a page's clicks cost."""
        image = self._viewed(decoded)
        if base.size != image.size:
            raise InvalidInputError(
                f"the cut-out to correct is {base.size[0]}x{base.size[1]} and the photo "
                f"{image.size[0]}x{image.size[1]}: it must be a cut-out of this photo, "
                "at its size"
            )
        if base.mode not in ("RGBA", "LA", "L"):
            raise InvalidInputError(
                "the image to correct has no transparency: it must be a cut-out of this photo"
            )
        alpha = np.asarray(base.getchannel("A") if base.mode in ("RGBA", "LA") else base)
        timings = timings if timings is not None else {}
        propose = self.proposer(timings, run)
        with _timed(timings, "hints"):
            mask = correct(np.asarray(image.convert("RGB")), alpha, hints, propose)
        return Prediction(Image.fromarray(mask, "L"), None, self.spec.name)

    def proposer(
        self, timings: dict[str, float] | None = None, run: ModelRunner | None = None
    ) -> Proposer | None:
        """The fast model's plain mask of a crop (what a subject click lands on): this
        remover's own pass when it is the fast model, its checker's for precise; ``None``
        where the fast model is not installed (clicks then use GrabCut alone)."""
        timings = timings if timings is not None else {}
        run = run or _run_here
        fast = self._store.spec(_FAST)
        if self._store.status(fast) is not ModelStatus.INSTALLED:
            return None
        if self.spec.name == fast.name:
            remover: Remover = self
        elif self._checker is not None and self._checker.spec.name == fast.name:
            remover = self._checker
        else:
            remover = self._fast_remover()

        def propose(crop: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
            image = Image.fromarray(crop, "RGB")
            small = remover._model_output(image, timings, run).mask
            with _timed(timings, "postprocess"):
                resized = Image.fromarray(small, "L").resize(image.size, Image.Resampling.LANCZOS)
            return np.asarray(resized)

        return propose

    @functools.cache  # noqa: B019 - one per remover, which lives as long as its process
    def _fast_remover(self) -> Remover:
        return Remover(
            _FAST,
            refine=Refine.NONE,
            settings=self.settings,
            store=self._store,
            sessions=self._sessions,
        )

    def compose(
        self,
        decoded: DecodedImage,
        prediction: Prediction,
        timings: dict[str, float] | None = None,
    ) -> Cutout:
        """The cut-out of a decoded photo from its :meth:`predict` mask: the subject's own
        colour in soft pixels (unless ``refine`` is ``none``), the input's own transparency
        applied, fully transparent pixels cleared."""
        timings = timings if timings is not None else {}
        image = decoded.image
        mask = prediction.mask
        input_alpha = None
        if image.mode == "RGBA":
            input_alpha = image.getchannel("A")
            image = image.convert("RGB")
        with _timed(timings, "compose"):
            rgb = np.asarray(image)
            if self.steps.settle:
                # Where the model's alpha is soft the photo mixes subject and background; an
                # input's own transparency mixes nothing, so it is applied after.
                rgb = estimate_foreground(
                    rgb, np.asarray(mask), threads=self.settings.image_threads
                )
            if input_alpha is not None:
                mask = ImageChops.multiply(mask, input_alpha)
            rgba = cutout_array(rgb, np.asarray(mask))
        return Cutout(
            rgba,
            icc_profile=decoded.icc_profile,
            model=self.model,
            timings=timings,
            settings=self.settings,
            assessment=prediction.assessment,
            mask_model=prediction.model,
        )

    @staticmethod
    def _viewed(decoded: DecodedImage) -> Image.Image:
        """The photo as a model (and a person) sees it: transparent areas may hold any
        colour, so an RGBA photo is put on white."""
        image = decoded.image
        return on_background(image, _WHITE) if image.mode == "RGBA" else image

    def _predict_in(
        self, image: Image.Image, box: tuple[int, int, int, int], timings: dict[str, float],
        run: ModelRunner,
    ) -> Prediction:  # fmt: skip
        """The model's cut-out of ``box`` alone (with a margin of context around it, as
        ``zoom`` takes), pasted into an empty mask: nothing outside the box is subject."""
        width, height = image.size
        around = with_margin(box, image.size)
        found = self._predict(image.crop(around), timings, run)
        with _timed(timings, "hints"):
            mask = np.zeros((height, width), np.uint8)
            mask[around[1] : around[3], around[0] : around[2]] = np.asarray(found.mask)
            mask = clear_outside(mask, box)
        return Prediction(Image.fromarray(mask, "L"), found.assessment, found.model)

    def _predict(
        self, image: Image.Image, timings: dict[str, float], run: ModelRunner
    ) -> Prediction:
        first = self._model_output(image, timings, run)
        mask = self._full_size(first.mask, image.size, timings)
        if self.steps.zoom:
            mask = self._zoomed(image, mask, timings, run)
        if self._checker is None:
            with _timed(timings, "assess"):
                assessment = assess(first.mask, first.share, self.spec.name)
            return Prediction(mask, assessment, self.spec.name)
        checker = self._checker
        with _timed(timings, "check"):
            second = checker._model_output(image, {}, run)
        with _timed(timings, "refine"):
            mask = Image.fromarray(agree(np.asarray(mask), second.mask), "L")
        with _timed(timings, "assess"):
            checked = assess_checked(first.mask, first.share, second.mask, second.share)
        # Never switch to a cut-out the checker's raw output does not back (its stretched
        # mask can show a subject where its raw output sees none): that would be refused.
        backed = second.share > 0 and second.share >= self.settings.no_subject_share
        if self._fallback is not None and checked.switch and backed:
            # auto keeps the checker's cut-out, made the best way measured for it: its pass
            # (already run) settled, and a second pass over the subject's box (zoom).
            fallback = self._fallback
            mask = fallback._zoomed(image, fallback._full_size(second.mask, image.size, timings),
                                    timings, run)  # fmt: skip
            return Prediction(mask, checked.checker, fallback.spec.name)
        return Prediction(mask, checked.own, self.spec.name)

    def _zoomed(
        self, image: Image.Image, mask: Image.Image, timings: dict[str, float], run: ModelRunner
    ) -> Image.Image:
        """``mask`` with a second pass of the model over the subject's box pasted in, where
        the box is small enough to be worth it (:func:`zoom_box`)."""
        with _timed(timings, "refine"):
            box = zoom_box(mask)
        if box is None:
            return mask
        crop = image.crop(box)
        detail = self._full_size(self._model_output(crop, timings, run).mask, crop.size, timings)
        with _timed(timings, "refine"):
            mask.paste(detail, box[:2])
        return mask

    def _model_output(
        self, image: Image.Image, timings: dict[str, float], run: ModelRunner | None = None
    ) -> _Pass:
        """One pass of the model over ``image``: its mask at the model's input size. The
        input is made before the model is asked for: where it is still loading (the CLI
        loads it on a thread while the first photo is decoded), the two overlap."""
        with _timed(timings, "preprocess"):
            tensor = preprocess(self.recipe, image, threads=self.settings.image_threads)
        loaded = self.load()
        with _timed(timings, "inference"):
            output = (run or _run_here)(loaded, tensor)
        with _timed(timings, "postprocess"):
            probability = activate(self.recipe, output)
            return _Pass(to_mask(self.recipe, probability), subject_share(probability))

    def _full_size(
        self, small: npt.NDArray[np.uint8], size: tuple[int, int], timings: dict[str, float]
    ) -> Image.Image:
        """A pass's mask at the image's ``size``, settled where this refinement settles."""
        with _timed(timings, "postprocess"):
            mask = Image.fromarray(small, "L").resize(size, Image.Resampling.LANCZOS)
        if not self.steps.settle:
            return mask
        with _timed(timings, "refine"):
            return _settled(mask, self.recipe.size, self.settings)


def _settled(mask: Image.Image, model_size: int, settings: EngineSettings) -> Image.Image:
    """A model's mask at the photo's size (the model saw it at ``model_size`` px), with
    :func:`firm_alpha`."""
    model_pixel = max(mask.size) / model_size
    alpha = firm_alpha(np.asarray(mask), model_pixel, threads=settings.image_threads)
    return Image.fromarray(alpha, "L")


def _compile_cache(settings: EngineSettings, spec: ModelSpec) -> Path | None:
    """Where OpenVINO may keep this model compiled: a folder per verified content. OpenVINO
    keys what it keeps by the file's path, size and modification time; the folder's name (the
    model's checksum) makes the key the file's content as well."""
    root = settings.compile_cache_dir
    return None if root is None else root / f"{spec.name}-{spec.checksum.hexdigest[:16]}"


def _run_here(loaded: LoadedModel, tensor: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    return loaded.run(tensor)


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    started = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - started


_removers: dict[str, Remover] = {}


def remove(
    source: ImageSource,
    model: str | None = None,
    *,
    crop: bool = False,
    crop_margin: int | float | str = 0,
) -> Cutout:
    """Cut the subject out of ``source`` with ``model`` (``"fast"``, ``"precise"`` or any
    installed catalogue model: ``alphacut models list``)."""
    name = model or engine_settings().default_model
    remover = _removers.get(name)
    if remover is None:
        remover = _removers.setdefault(name, Remover(name))
    return remover.remove(source, crop=crop, crop_margin=crop_margin)
