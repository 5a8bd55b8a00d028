"""``/v1/images``: the IMG Processing API's images resource, route for route.

Handlers are plain functions (FastAPI runs them on its thread pool); the CPU-heavy part of
each goes through a bounded work queue in the service, so a flood of requests meets a 503,
not an ever-growing backlog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from alphacut.api import schemas
from alphacut.api.deps import (
    BoundedJsonRoute,
    KeyDep,
    ServicesDep,
    base_url,
    client_gone,
    created,
    image_object,
    json_body_rules,
)
from alphacut.api.openapi import errors
from alphacut.engine import operations as ops
from alphacut.engine.effects import Background
from alphacut.engine.formats import FORMATS, MEDIA_TYPES, holds_alpha, parse_format
from alphacut.engine.hints import Hints, Point
from alphacut.errors import (
    ImageTooLargeError,
    InvalidInputError,
    NotFoundError,
    NotImplementedFeatureError,
)
from alphacut.service.cutout import CutoutRequest, Source
from alphacut.service.images import said

router = APIRouter(prefix="/v1/images", tags=["images"], route_class=BoundedJsonRoute)
JSON_RULES = [Depends(json_body_rules)]


@router.post(
    "/upload",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(403, 415, 422, 503, 504, 507),
    summary="Upload an image (multipart: name, image)",
    # Two parts (name, image): a form with more, or a text part over 4 KiB, is refused (400)
    # while it is parsed, before anything reaches the disk.
    form_limits={"max_files": 1, "max_fields": 4, "max_part_size": 4096},
)
def upload(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    name: Annotated[
        str,
        Form(
            min_length=1,
            max_length=30,
            description=schemas.NAME_DESCRIPTION,
            json_schema_extra={"pattern": schemas.NAME_PATTERN},
        ),
        AfterValidator(schemas.check_name),
    ],
    image: Annotated[UploadFile, File(description="JPEG, PNG, WebP, HEIC or AVIF, up to 20 MB.")],
) -> JSONResponse:
    limit = svc.settings.max_upload_bytes
    data = image.file.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLargeError.over_bytes(image.size, limit)
    return created(request, svc, key, svc.images.create(key.id, name, data))


@router.post(
    "",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(403, 415, 422, 503, 504, 507),
    dependencies=JSON_RULES,
    summary="Create an image from a URL",
)
def create_from_url(
    request: Request, svc: ServicesDep, key: KeyDep, body: schemas.CreateFromUrl
) -> JSONResponse:
    return created(request, svc, key, svc.images.create_from_url(key.id, body.name, body.url))


@router.get("", response_model=schemas.ImageList, summary="List images")
def list_images(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    take: Annotated[int, Query(ge=1, le=100)] = 10,
    from_id: Annotated[str | None, Query(alias="from", max_length=64)] = None,
) -> schemas.ImageList:
    page = svc.images.page(key.id, take, from_id)
    base = base_url(request, svc.settings)

    def link(start: str | None) -> str | None:
        return f"{base}v1/images?take={take}&from={start}" if start else None

    return schemas.ImageList(
        data=[image_object(record, base, svc.settings.doubtful_below) for record in page.items],
        links=schemas.Links(previous=link(page.previous_from), next=link(page.next_from)),
    )


@router.post("/imagine", status_code=501, responses=errors(501))
def imagine(key: KeyDep) -> None:
    raise NotImplementedFeatureError(
        "image generation (imagine) is not offered by alphacut, which runs no generative model"
    )


@router.get(
    "/{image_id}", response_model=schemas.ImageObject, responses=errors(404), summary="Get an image"
)
def get_image(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str
) -> schemas.ImageObject:
    return image_object(
        svc.images.get(key.id, image_id),
        base_url(request, svc.settings),
        svc.settings.doubtful_below,
    )


@router.delete(
    "/{image_id}", status_code=204, responses=errors(404, 507), summary="Delete an image"
)
def delete_image(svc: ServicesDep, key: KeyDep, image_id: str) -> Response:
    svc.images.delete(key.id, image_id)
    return Response(status_code=204)


@router.get(
    "/{image_id}/download",
    responses={**errors(404), 200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
    response_class=Response,
    summary="Download an image's bytes",
)
def download(svc: ServicesDep, key: KeyDep, image_id: str) -> Response:
    record = svc.images.get(key.id, image_id)
    return image_response(svc.images.read(record), record.format, record.name, "private, no-store")


def image_response(data: bytes, fmt: str, name: str, cache: str) -> Response:
    return Response(
        content=data,
        media_type=MEDIA_TYPES[parse_format(fmt)],
        headers={"Cache-Control": cache, "Content-Disposition": content_disposition(name, fmt)},
    )


def content_disposition(name: str, fmt: str) -> str:
    """``inline`` with the image's name as the file name, whatever its characters (RFC 6266):
    an ASCII ``filename`` every client understands (other characters become ``_``), and, when
    the name is not plain ASCII, ``filename*`` (RFC 8187) with the exact name in UTF-8, which
    clients prefer. Starlette's FileResponse does the same; every byte outside ``[A-Za-z0-9
    ._~-]`` is percent-encoded, so no name can break or add a header."""
    extension = FORMATS[parse_format(fmt)].extension
    exact = f"{name}.{extension}"
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "-_.") else "_" for c in name)
    fallback = f"{fallback.lstrip('.') or 'image'}.{extension}"
    if fallback == exact:
        return f'inline; filename="{fallback}"'
    encoded = quote(exact, safe="", errors="replace")  # a lone surrogate becomes "?"
    return f"inline; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


@router.post(
    "/{image_id}/publish",
    response_model=schemas.ImageObject,
    responses=errors(404, 507),
    summary="Publish: give the image a public URL",
)
def publish(request: Request, svc: ServicesDep, key: KeyDep, image_id: str) -> schemas.ImageObject:
    return image_object(
        svc.images.publish(key.id, image_id),
        base_url(request, svc.settings),
        svc.settings.doubtful_below,
    )


@router.post(
    "/{image_id}/unpublish",
    response_model=schemas.ImageObject,
    responses=errors(404, 507),
    summary="Unpublish: the public URL stops working",
)
def unpublish(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str
) -> schemas.ImageObject:
    return image_object(
        svc.images.unpublish(key.id, image_id),
        base_url(request, svc.settings),
        svc.settings.doubtful_below,
    )


@router.post(
    "/{image_id}/remove-background",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(403, 404, 422, 503, 504, 507),
    dependencies=JSON_RULES,
    summary="Remove the background (PNG with transparency; counts 2 images), or correct a "
    "cut-out with a box and clicks (counts 1)",
)
def remove_background(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    body: Annotated[schemas.RemoveBackground, Body()] = schemas.RemoveBackground(),  # noqa: B008
) -> JSONResponse:
    source = svc.images.get(key.id, image_id)
    hints = Hints(
        (body.box.x1, body.box.y1, body.box.x2, body.box.y2) if body.box is not None else None,
        tuple(Point(p.x, p.y, p.label) for p in body.points),
    )
    hints.check(source.width, source.height)  # 400 before any work
    base = None
    if body.cutout_id is not None:
        if not hints:
            raise InvalidInputError("cutout_id names a cut-out to correct: give a box or points")
        base = svc.images.get(key.id, body.cutout_id)
        if (base.width, base.height) != (source.width, source.height):
            raise InvalidInputError(
                f"cutout_id {body.cutout_id} is {base.width}x{base.height} and the photo "
                f"{source.width}x{source.height}: it must be a cut-out of this photo"
            )
    images = 2 if base is None else 1  # a correction runs no model
    wanted = CutoutRequest(
        key.id,
        Source(image=source),
        model=body.model,
        keep="image",
        name=body.name,
        billed=images,
        hints=hints,
        base=base,
    )
    result = svc.cutouts.run(wanted, answered=lambda: not client_gone(request))
    assert result.image is not None  # noqa: S101 - keep="image" stores one
    return created(request, svc, key, result.image, images=images, billed=True)


def _created_by(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    name: str | None,
    operation: ops.Operation,
    **output: Any,
) -> JSONResponse:
    record = svc.images.apply(key.id, image_id, name, operation, **output)
    return created(request, svc, key, record)


def _transform(path: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return router.post(
        path,
        status_code=201,
        response_model=schemas.ImageObject,
        responses=errors(403, 404, 422, 503, 504, 507),
        dependencies=JSON_RULES,
        summary=summary,
    )


@_transform("/{image_id}/convert", "Convert to JPEG, PNG or WebP")
def convert(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Convert
) -> JSONResponse:
    fmt = parse_format(body.format)
    return _created_by(
        request,
        svc,
        key,
        image_id,
        body.name,
        ops.Convert(),
        output_format=fmt,
        quality=body.quality,
    )


@_transform("/{image_id}/resize", "Resize (fill, contain or cover); one side keeps the ratio")
def resize(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Resize
) -> JSONResponse:
    operation = ops.Resize(body.width, body.height, body.fit, body.position, body.letterbox_color)
    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/crop", "Crop to the rectangle (x1, y1)-(x2, y2)")
def crop(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Crop
) -> JSONResponse:
    operation = ops.Crop(body.x1, body.y1, body.x2, body.y2)
    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/rotate", "Rotate (positive angles turn clockwise)")
def rotate(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Rotate
) -> JSONResponse:
    source_format = svc.images.get(key.id, image_id).format
    # Made here, so that a bad colour is a 400 before any work.
    operation = ops.Rotate(
        body.angle, body.unit, body.background_color, source_alpha=holds_alpha(source_format)
    )
    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/mirror", "Mirror horizontally, vertically or both")
def mirror(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Mirror
) -> JSONResponse:
    return _created_by(request, svc, key, image_id, body.name, ops.Mirror(body.mode))


@_transform("/{image_id}/blur", "Gaussian blur")
def blur(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    body: Annotated[schemas.Blur, Body()] = schemas.Blur(),  # noqa: B008
) -> JSONResponse:
    return _created_by(request, svc, key, image_id, body.name, ops.Blur(body.sigma))


@_transform("/{image_id}/modulate", "Adjust brightness, contrast, exposure and saturation")
def modulate(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    body: Annotated[schemas.Modulate, Body()] = schemas.Modulate(),  # noqa: B008
) -> JSONResponse:
    modulation = ops.Modulation(
        body.brightness, body.contrast, body.exposure, body.saturation, body.hue, body.lightness
    )
    return _created_by(request, svc, key, image_id, body.name, ops.Modulate(modulation))


@_transform("/{image_id}/watermark", "Add watermarks (other images of this key)")
def watermark(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.AddWatermarks
) -> JSONResponse:
    marks = []
    for item in body.watermarks:
        try:
            source = svc.images.get(key.id, item.id)
        except NotFoundError:
            raise NotFoundError(f"watermark image {said(item.id)} not found") from None
        marks.append(
            ops.Mark(
                source=source.id,
                source_size=(source.width, source.height),
                left=item.left,
                top=item.top,
                width=item.width,
                height=item.height,
                repetition=item.repetition_mode,
            )
        )
    return _created_by(request, svc, key, image_id, body.name, ops.Watermarks(tuple(marks)))


@router.post(
    "/{image_id}/background",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(403, 404, 413, 422, 503, 504, 507),
    dependencies=JSON_RULES,
    summary="alphacut extension: put a cut-out on a colour, a photo (maybe blurred) or a drop "
    "shadow (counts 1)",
)
def background(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.ApplyBackground
) -> JSONResponse:
    """A new image: the cut-out ``image_id`` (an image of yours with transparency: made by
    remove-background, or an RGBA PNG you uploaded) over a colour or another image of yours
    (covering it, maybe blurred: the cut-out's own photo makes a blurred backdrop), with or
    without a drop shadow. The remove.bg dialect's ``bg_color``, ``bg_image_*`` and
    ``add_shadow`` run the same engine code; no model runs. 400: not a cut-out, a bad colour,
    a blur over 100 px or without a background image; 404: an image that is not yours; 413: a
    background image over the pixel limit."""
    cutout = svc.images.get(key.id, image_id)
    if not holds_alpha(cutout.format):
        raise InvalidInputError(
            f"image {image_id!r} is not a cut-out: {cutout.format.upper()} has no transparency"
        )
    photo = None
    if body.background_image_id is not None:
        try:
            photo = svc.images.get(key.id, body.background_image_id)
        except NotFoundError:
            raise NotFoundError(
                f"background image {said(body.background_image_id)} not found"
            ) from None
        limit = svc.settings.max_input_pixels
        if photo.width * photo.height > limit:  # stored under an older, higher limit
            raise ImageTooLargeError(
                f"the background image is {photo.width}x{photo.height}; the limit is "
                f"{limit / 1e6:g} MP"
            )
    operation = Background(
        color=body.color,
        image=photo.id if photo is not None else None,
        image_size=(photo.width, photo.height) if photo is not None else (0, 0),
        blur=body.blur,
        shadow_opacity=body.shadow_opacity if body.shadow else None,
    )
    fmt = "auto" if body.format == "auto" else parse_format(body.format)
    return _created_by(request, svc, key, image_id, body.name, operation, output_format=fmt)


_AI_ONLY = {
    "classify": "image classification",
    "extract-formatted-text": "text extraction (OCR)",
    "visualize": "visual question answering",
}


def _not_offered(operation: str) -> None:
    raise NotImplementedFeatureError(
        f"{_AI_ONLY[operation]} ({operation}) is not offered by alphacut, which runs "
        "background-removal models only"
    )


@router.post("/{image_id}/classify", status_code=501, responses=errors(501))
def classify(key: KeyDep, image_id: str) -> None:
    _not_offered("classify")


@router.post("/{image_id}/extract-formatted-text", status_code=501, responses=errors(501))
def extract_formatted_text(key: KeyDep, image_id: str) -> None:
    _not_offered("extract-formatted-text")


@router.post("/{image_id}/visualize", status_code=501, responses=errors(501))
def visualize(key: KeyDep, image_id: str) -> None:
    _not_offered("visualize")
