"""``/v1/images``: the IMG Processing API's images resource, route for route.

Handlers are plain functions (FastAPI runs them on its thread pool); the CPU-heavy part of
each goes through a bounded work queue in the service, so a flood of requests meets a 503,
not an ever-growing backlog.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Form, Query, Request, Response, UploadFile
from fastapi.responses import JSONResponse
from PIL import Image

from alphacut.api import schemas
from alphacut.api.deps import (
    KeyDep,
    ServicesDep,
    base_url,
    created,
    image_object,
    json_body_rules,
)
from alphacut.api.openapi import errors
from alphacut.engine.encode import MEDIA_TYPES, OutputFormat, parse_format
from alphacut.errors import ImageTooLargeError, NotFoundError, NotImplementedFeatureError
from alphacut.service import operations as ops
from alphacut.service.images import Operation, alpha_capable

router = APIRouter(prefix="/v1/images", tags=["images"])
JSON_RULES = [Depends(json_body_rules)]


@router.post(
    "/upload",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(415, 422, 503, 504),
    summary="Upload an image (multipart: name, image)",
    # Two parts (name, image): a form with more, or a text part over 4 KiB, is refused (400)
    # while it is parsed, before anything reaches the disk.
    form_limits={"max_files": 1, "max_fields": 4, "max_part_size": 4096},
)
def upload(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    name: Annotated[str, Form(min_length=1, max_length=30)],
    image: Annotated[UploadFile, File(description="JPEG, PNG or WebP, up to 20 MB.")],
) -> JSONResponse:
    limit = svc.settings.max_upload_bytes
    data = image.file.read(limit + 1)
    if len(data) > limit:
        raise ImageTooLargeError(f"the image is larger than the upload limit of {limit:,} bytes")
    return created(request, svc, key, svc.images.create(key.id, name, data))


@router.post(
    "",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(415, 422, 503, 504),
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
        data=[image_object(record, base) for record in page.items],
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
    return image_object(svc.images.get(key.id, image_id), base_url(request, svc.settings))


@router.delete("/{image_id}", status_code=204, responses=errors(404), summary="Delete an image")
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
    extension = {"jpeg": "jpg"}.get(fmt, fmt)
    filename = "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "image"
    return Response(
        content=data,
        media_type=MEDIA_TYPES[parse_format(fmt)],
        headers={
            "Cache-Control": cache,
            "Content-Disposition": f'inline; filename="{filename}.{extension}"',
        },
    )


@router.post(
    "/{image_id}/publish",
    response_model=schemas.ImageObject,
    responses=errors(404),
    summary="Publish: give the image a public URL",
)
def publish(request: Request, svc: ServicesDep, key: KeyDep, image_id: str) -> schemas.ImageObject:
    return image_object(svc.images.publish(key.id, image_id), base_url(request, svc.settings))


@router.post(
    "/{image_id}/unpublish",
    response_model=schemas.ImageObject,
    responses=errors(404),
    summary="Unpublish: the public URL stops working",
)
def unpublish(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str
) -> schemas.ImageObject:
    return image_object(svc.images.unpublish(key.id, image_id), base_url(request, svc.settings))


@router.post(
    "/{image_id}/remove-background",
    status_code=201,
    response_model=schemas.ImageObject,
    responses=errors(404, 503, 504),
    dependencies=JSON_RULES,
    summary="Remove the background (PNG with transparency; counts 2 images)",
)
def remove_background(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    body: Annotated[schemas.RemoveBackground, Body()] = schemas.RemoveBackground(),  # noqa: B008
) -> JSONResponse:
    record = svc.images.remove_background(key.id, image_id, body.name, body.model)
    return created(request, svc, key, record, images=2)


def _created_by(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    name: str | None,
    operation: Operation,
    **output: Any,
) -> JSONResponse:
    record = svc.images.apply(key.id, image_id, name, operation, **output)
    return created(request, svc, key, record)


def _transform(path: str, summary: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    return router.post(
        path,
        status_code=201,
        response_model=schemas.ImageObject,
        responses=errors(404, 503, 504),
        dependencies=JSON_RULES,
        summary=summary,
    )


@_transform("/{image_id}/convert", "Convert to JPEG, PNG or WebP")
def convert(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Convert
) -> JSONResponse:
    def same(image: Image.Image, _fmt: OutputFormat) -> Image.Image:
        return image

    fmt = parse_format(body.format)
    return _created_by(
        request, svc, key, image_id, body.name, same, output_format=fmt, quality=body.quality
    )


@_transform("/{image_id}/resize", "Resize (fill, contain or cover); one side keeps the ratio")
def resize(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Resize
) -> JSONResponse:
    def operation(image: Image.Image, fmt: OutputFormat) -> Image.Image:
        return ops.resize(
            image,
            width=body.width,
            height=body.height,
            fit=body.fit,
            position=body.position,
            letterbox=ops.letterbox_color(body.letterbox_color, alpha_ok=alpha_capable(fmt)),
            max_pixels=svc.settings.max_input_pixels,
        )

    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/crop", "Crop to the rectangle (x1, y1)-(x2, y2)")
def crop(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Crop
) -> JSONResponse:
    def operation(image: Image.Image, _fmt: OutputFormat) -> Image.Image:
        return ops.crop(image, body.x1, body.y1, body.x2, body.y2)

    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/rotate", "Rotate (positive angles turn clockwise)")
def rotate(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Rotate
) -> JSONResponse:
    def operation(image: Image.Image, fmt: OutputFormat) -> Image.Image:
        return ops.rotate(
            image,
            body.angle,
            unit=body.unit,
            alpha_ok=alpha_capable(fmt),
            max_pixels=svc.settings.max_input_pixels,
        )

    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/mirror", "Mirror horizontally, vertically or both")
def mirror(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.Mirror
) -> JSONResponse:
    def operation(image: Image.Image, _fmt: OutputFormat) -> Image.Image:
        return ops.mirror(image, body.mode)

    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/blur", "Gaussian blur")
def blur(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    body: Annotated[schemas.Blur, Body()] = schemas.Blur(),  # noqa: B008
) -> JSONResponse:
    def operation(image: Image.Image, _fmt: OutputFormat) -> Image.Image:
        return ops.blur(image, body.sigma)

    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/modulate", "Adjust brightness, contrast, exposure and saturation")
def modulate(
    request: Request,
    svc: ServicesDep,
    key: KeyDep,
    image_id: str,
    body: Annotated[schemas.Modulate, Body()] = schemas.Modulate(),  # noqa: B008
) -> JSONResponse:
    modulation = ops.Modulation(body.brightness, body.contrast, body.exposure, body.saturation)

    def operation(image: Image.Image, _fmt: OutputFormat) -> Image.Image:
        return ops.modulate(image, modulation)

    return _created_by(request, svc, key, image_id, body.name, operation)


@_transform("/{image_id}/watermark", "Add watermarks (other images of this key)")
def watermark(
    request: Request, svc: ServicesDep, key: KeyDep, image_id: str, body: schemas.AddWatermarks
) -> JSONResponse:
    sources = []
    for item in body.watermarks:
        try:
            sources.append(svc.images.get(key.id, item.id))
        except NotFoundError:
            raise NotFoundError(f"watermark image {item.id!r} not found") from None

    def operation(image: Image.Image, _fmt: OutputFormat) -> Image.Image:
        marks = [
            ops.Watermark(
                image=svc.images.load(source).image,
                left=item.left,
                top=item.top,
                width=item.width,
                height=item.height,
                repetition=item.repetition_mode,
            )
            for source, item in zip(sources, body.watermarks, strict=True)
        ]
        return ops.watermark(image, marks, max_pixels=svc.settings.max_input_pixels)

    return _created_by(request, svc, key, image_id, body.name, operation)


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
