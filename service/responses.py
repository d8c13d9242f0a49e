"""HTTP responses of the generation routes: content negotiation, image encoding off the event loop, headers."""

import asyncio

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from service.deps import require_api_key
from service.encode import MEDIA_TYPES, encode_image
from service.schemas import CounterfactualResponse

GENERATION_ERRORS: dict[int | str, dict] = {
    404: {"description": "unknown or not installed model"},
    503: {"description": "the model queue is full; retry after Retry-After seconds"},
}


def generation_router() -> APIRouter:
    """The router of a generating route: API key, binary bodies (a route answers JSON by returning it), and
    the errors every model request may meet."""
    return APIRouter(
        tags=["generate"],
        dependencies=[Depends(require_api_key)],
        default_response_class=Response,
        responses=GENERATION_ERRORS,
    )


IMAGE_RESPONSES: dict[int | str, dict] = {
    200: {
        "description": "the first requested output (composite by default) as an image, or JSON with every output",
        "content": {"image/png": {}, "image/jpeg": {}, "application/x-npy": {}},
        "model": CounterfactualResponse,
    },
    422: {"description": "bad input: unknown name (with closest matches), bad seed, wrong type, malformed JSON"},
}
ONE_IMAGE_RESPONSES = {k: v for k, v in IMAGE_RESPONSES.items() if k != 200} | {
    200: {"description": "the image", "content": {m: {} for m in MEDIA_TYPES.values()}}
}


def json_view(model: type, not_found: str | None = None) -> dict:
    """Route options of a JSON view: its response model (fields the handler leaves out stay out) and the 404
    it may answer."""
    options: dict = {"response_model": model, "response_model_exclude_unset": True}
    if not_found:
        options["responses"] = {404: {"description": not_found}}
    return options


def wants_json(request: Request) -> bool:
    return "application/json" in request.headers.get("accept", "")


def negotiated_format(request: Request, fmt: str | None) -> str:
    """The request's `format`, else the first image type the Accept header names, else png."""
    if fmt:
        return fmt
    accept = request.headers.get("accept", "")
    for name, media in (("png", "image/png"), ("jpeg", "image/jpeg"), ("npy", "application/x-npy")):
        if media in accept:
            return name
    return "png"


async def encode_images(images: dict[str, np.ndarray], fmt: str) -> dict[str, bytes]:
    """Tiny images encode faster than a thread hop; large ones go to a thread."""
    if sum(v.size for v in images.values()) <= 3 * 64 * 64:
        return {k: encode_image(v, fmt) for k, v in images.items()}
    return await asyncio.to_thread(lambda: {k: encode_image(v, fmt) for k, v in images.items()})


def header_text(text: str) -> str:
    """Header values are latin-1 on the wire: anything else is escaped (`\\u212a`), never a 500."""
    try:
        text.encode("latin-1")
        return text
    except UnicodeEncodeError:
        return text.encode("ascii", "backslashreplace").decode("ascii")
