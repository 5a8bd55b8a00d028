"""Request and response bodies of the IMG Processing-compatible API (field names as theirs)."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SerializerFunctionWrapHandler,
    model_serializer,
    model_validator,
)

from alphacut.engine.formats import OUTPUT_FORMATS, SPELLINGS
from alphacut.engine.hints import MAX_POINTS

# A name is text a person reads: any character but the control ones (NUL, CR, LF, tab, DEL,
# C1), which have no place in a name and which no file name or header can carry.
NAME_PATTERN = r"^[^\x00-\x1f\x7f-\x9f]*$"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
NAME_DESCRIPTION = "1-30 characters, none of them a control character."


def check_name(name: str) -> str:
    if _CONTROL.search(name):
        raise ValueError("must not contain control characters (NUL, CR, LF, tab...)")
    return name


ImageName = Annotated[
    str,
    Field(
        min_length=1,
        max_length=30,
        description=NAME_DESCRIPTION,
        json_schema_extra={"pattern": NAME_PATTERN},
    ),
    AfterValidator(check_name),
]
ImageId = Annotated[str, Field(min_length=1, max_length=64)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ImageObject(BaseModel):
    """The Image object: every field, exactly as the IMG Processing API returns it."""

    id: str = Field(description='"image_" + 24 lowercase alphanumerics')
    name: str
    url: str | None = Field(description="Public URL once published, else null.")
    width: int
    height: int
    format: str = Field(json_schema_extra={"enum": list(OUTPUT_FORMATS)})
    size: int = Field(description="Bytes.")
    created_at: str = Field(description="ISO 8601, UTC, e.g. 2021-09-01T12:00:00.000Z")
    # alphacut's extensions (clients that do not know them ignore them)
    confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="alphacut extension: for an image made by remove-background, the cut-out's "
        "estimated IoU against a person's mask (0..1); absent for other images.",
    )
    doubtful: bool | None = Field(
        None,
        description="alphacut extension: whether that confidence is under the server's "
        "threshold (ALPHACUT_DOUBTFUL_BELOW): worth a person's look; absent for other images.",
    )

    # No return annotation on purpose: pydantic would take it for the answer's schema (a bare
    # object) instead of this model's fields.
    @model_serializer(mode="wrap")
    def _extensions_only_where_set(self, handler: SerializerFunctionWrapHandler):  # type: ignore[no-untyped-def]
        """An image that is not a cut-out answers exactly the IMG Processing API's fields."""
        data = handler(self)
        for name in ("confidence", "doubtful"):
            if data.get(name) is None:
                data.pop(name, None)
        return data


class Links(BaseModel):
    previous: str | None
    next: str | None


class ImageList(BaseModel):
    data: list[ImageObject]
    links: Links


class CreateFromUrl(Strict):
    name: ImageName
    url: str = Field(min_length=1, max_length=4096, description="http or https URL.")


Pixel = Annotated[int, Field(ge=0, le=100_000)]


class HintBox(Strict):
    """alphacut extension: the subject lies inside (x1, y1)-(x2, y2), in the photo's pixels
    (x2, y2 exclusive)."""

    x1: Pixel
    y1: Pixel
    x2: Pixel
    y2: Pixel

    @model_validator(mode="after")
    def _not_empty(self) -> HintBox:
        if self.x2 <= self.x1 or self.y2 <= self.y1:
            raise ValueError("x2 and y2 must be right of and below x1 and y1")
        return self


class HintPoint(Strict):
    """alphacut extension: a click on the photo's pixel (x, y): this is subject (or
    background)."""

    x: Pixel
    y: Pixel
    label: Literal["subject", "background"] = "subject"


class RemoveBackground(Strict):
    name: ImageName | None = None
    box: HintBox | None = Field(
        None,
        description="alphacut extension: the subject lies inside this box, in the photo's "
        "pixels; the model looks at the box alone and nothing outside it is kept.",
    )
    points: list[HintPoint] = Field(
        default_factory=list,
        max_length=MAX_POINTS,
        description="alphacut extension: clicks that correct the cut-out, in the photo's "
        "pixels, in the order they were made (send them all each time: the answer depends "
        "on nothing else). Each marks a pixel as subject or background and moves the "
        'mistake it lands in (docs/quality.md, "Correcting a cut-out with clicks").',
    )
    cutout_id: ImageId | None = Field(
        None,
        description="alphacut extension: a cut-out of this photo made before (by "
        "remove-background, or an RGBA PNG of yours uploaded) that the box and points correct, "
        "without running a model again (a fraction of a second; counts 1 image). It must "
        "have the photo's size and transparency.",
    )
    model: str | None = Field(
        None,
        max_length=64,
        pattern=r"^[a-z0-9][a-z0-9._-]*$",
        description="fast (U2-Netp), precise (IS-Net, the default), auto (precise, or fast's "
        "cut-out where the confidence prefers it) or any model installed on this server "
        "(alphacut models list), e.g. birefnet-general.",
    )


def _known_format(name: str, also: tuple[str, ...] = ()) -> str:
    if name not in also and name not in SPELLINGS:
        raise ValueError(f"must be one of {', '.join((*also, *SPELLINGS))}")
    return name


# A format by any of its names (engine/formats.py: a new row there is a new choice here).
FormatName = Annotated[
    str, AfterValidator(_known_format), Field(json_schema_extra={"enum": list(SPELLINGS)})
]


class Convert(Strict):
    format: FormatName
    quality: int | None = Field(None, ge=1, le=100)
    name: ImageName | None = None


class Resize(Strict):
    width: int | None = Field(None, ge=1, le=9999)
    height: int | None = Field(None, ge=1, le=9999)
    fit: Literal["fill", "contain", "cover"] = "fill"
    letterbox_color: str | None = Field(
        None, max_length=64, description="A colour or 'transparent' (contain only)."
    )
    position: Literal[
        "center", "top", "right", "bottom", "left", "top-left", "top-right", "bottom-left",
        "bottom-right",
    ] = "center"  # fmt: skip
    name: ImageName | None = None

    @model_validator(mode="after")
    def _some_size(self) -> Resize:
        if self.width is None and self.height is None:
            raise ValueError("give a width, a height or both")
        return self


class Crop(Strict):
    x1: int = Field(ge=0, le=100_000)
    y1: int = Field(ge=0, le=100_000)
    x2: int = Field(ge=0, le=100_000)
    y2: int = Field(ge=0, le=100_000)
    name: ImageName | None = None


class Rotate(Strict):
    angle: float = Field(ge=-1e6, le=1e6, description="Positive turns clockwise.")
    unit: Literal["degrees", "radians"] = "degrees"
    background_color: str | None = Field(
        None,
        max_length=64,
        description="Fill of the uncovered corners (a colour, or transparent); default: "
        "transparent where the format holds transparency, black otherwise.",
    )
    name: ImageName | None = None


class Mirror(Strict):
    mode: Literal["horizontal", "vertical", "both"]
    name: ImageName | None = None


class Blur(Strict):
    sigma: float = Field(2.0, ge=0.3, le=1000, description="Standard deviation, in pixels.")
    name: ImageName | None = None


class Modulate(Strict):
    brightness: float = Field(0.0, ge=-100, le=100, description="-100..100, 0: unchanged.")
    contrast: float = Field(0.0, ge=-100, le=100, description="-100..100, 0: unchanged.")
    exposure: float = Field(1.0, ge=0, le=10, description="Light multiplier, 1: unchanged.")
    saturation: float = Field(1.0, ge=0, le=10, description="Colour multiplier, 1: unchanged.")
    hue: float = Field(
        0.0, ge=-3600, le=3600, description="Hue rotation in degrees (the official client's)."
    )
    lightness: float = Field(
        0.0,
        ge=-100,
        le=100,
        description="Added to every colour value, in percent of full scale (the official "
        "client's; brightness multiplies, lightness adds).",
    )
    name: ImageName | None = None


class WatermarkItem(Strict):
    id: ImageId
    left: int = Field(0, ge=-100_000, le=100_000)
    top: int = Field(0, ge=-100_000, le=100_000)
    width: int | None = Field(None, ge=1, le=9999)
    height: int | None = Field(None, ge=1, le=9999)
    repetition_mode: Literal["no_repeat", "repeat", "repeat_x", "repeat_y"] = "no_repeat"


class AddWatermarks(Strict):
    watermarks: list[WatermarkItem] = Field(min_length=1, max_length=5)
    name: ImageName | None = None


def _auto_or_known(name: str) -> str:
    return _known_format(name, also=("auto",))


class ApplyBackground(Strict):
    """alphacut extension: a background under a stored cut-out (the remove.bg dialect's
    ``bg_color``, ``bg_image_*`` and ``add_shadow``, by the same engine code)."""

    color: str | None = Field(
        None,
        max_length=64,
        description="A colour under the cut-out: #rgb, #rrggbb, #rrggbbaa (with or without "
        "#) or a CSS name.",
    )
    background_image_id: ImageId | None = Field(
        None,
        description="Another image of yours to put under the cut-out, centred and resized "
        "to cover it (remove.bg's bg_image rule).",
    )
    blur: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Blur the background image by this many pixels (with background_image_id;"
        " the cut-out's own photo makes a blurred backdrop).",
    )
    shadow: bool = Field(False, description="A soft drop shadow under the subject.")
    shadow_opacity: int = Field(
        50, ge=0, le=100, description="The shadow's opacity, % (with shadow: true)."
    )
    format: Annotated[
        str,
        AfterValidator(_auto_or_known),
        Field(json_schema_extra={"enum": ["auto", *SPELLINGS]}),
    ] = Field(
        "auto",
        description="auto (the default): PNG where the result has transparency, else JPEG.",
    )
    name: ImageName | None = None

    @model_validator(mode="after")
    def _opacity_needs_a_shadow(self) -> ApplyBackground:
        # An opacity without the shadow would be dropped without a word: say so instead.
        if "shadow_opacity" in self.model_fields_set and not self.shadow:
            raise ValueError("shadow_opacity sets the shadow's opacity: send shadow: true too")
        return self


class Health(BaseModel):
    status: str
    checks: dict[str, str] = Field(default_factory=dict)
    models: dict[str, str] = Field(
        default_factory=dict,
        description="/readyz: each model file loaded in this process, with its runtime, "
        "precision and device (`openvino bf16 cpu`); empty on a fleet's API replicas.",
    )
