"""POST /counterfactual: one composed image from three mechanisms, each with its own class or asset."""

import base64
import json

import numpy as np
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from cgn.mechanisms import MECHANISMS
from model_store import Manifest
from service.deps import Services, get_services, loaded_model, manifest_of, require_api_key
from service.encode import MEDIA_TYPES, encode_image
from service.errors import UnknownNameError
from service.generation import check_truncation, labels_row, run, work_for
from service.resolve import Pick, drawn, resolve_choice
from service.schemas import CounterfactualRequest, CounterfactualResponse

router = APIRouter(tags=["generate"], dependencies=[Depends(require_api_key)])

IMAGE_RESPONSES = {
    200: {
        "description": "the first requested output (composite by default) as an image, or JSON with every output",
        "content": {
            "image/png": {},
            "image/jpeg": {},
            "application/x-npy": {},
        },
        "model": CounterfactualResponse,
    },
    401: {"description": "missing or invalid API key (when keys are configured)"},
    404: {"description": "unknown or not installed model"},
    422: {"description": "bad input: unknown name (with closest matches), bad seed, wrong type, malformed JSON"},
    503: {"description": "the model queue is full; retry after Retry-After seconds"},
}


def _picks(services: Services, manifest: Manifest, req: CounterfactualRequest) -> dict[str, Pick]:
    given = {"shape": req.shape, "texture": req.texture, "background": req.background}
    seeds = mechanism_seeds(req)
    return {
        m: drawn(manifest, m, seeds[m]) if given[m] is None else resolve_choice(services, manifest, m, given[m])
        for m in MECHANISMS
    }


def mechanism_seeds(req: CounterfactualRequest) -> dict[str, int]:
    per = req.seeds.model_dump() if req.seeds else {}
    return {m: per.get(m) if per.get(m) is not None else req.seed for m in MECHANISMS}


def choose_model(services: Services, req: CounterfactualRequest) -> tuple[Manifest, dict[str, Pick], str | None]:
    """The named model; with none named, the default, or else the one installed model that knows every word."""
    if req.model is not None:
        manifest = manifest_of(services, req.model)
        return manifest, _picks(services, manifest, req), None
    default = services.settings.default_model
    manifest = manifest_of(services, default)
    try:
        return manifest, _picks(services, manifest, req), None
    except UnknownNameError as first:
        for entry in services.store.entries():
            if entry.installed and entry.name != default:
                try:
                    picks = _picks(services, entry.manifest, req)
                except (UnknownNameError, Exception):  # noqa: BLE001 - this model does not know the words
                    continue
                note = f"served by {entry.name!r}: the default model {default!r} does not know {first.extra['word']!r}"
                return entry.manifest, picks, note
        raise


async def encode_off_loop(images: dict[str, np.ndarray], fmt: str) -> dict[str, bytes]:
    """Tiny images encode faster than a thread hop; large ones go to the thread pool."""
    if sum(v.size for v in images.values()) <= 3 * 64 * 64:
        return {k: encode_image(v, fmt) for k, v in images.items()}
    return await run_in_threadpool(lambda: {k: encode_image(v, fmt) for k, v in images.items()})


def wants_json(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" in accept


def negotiated_format(request: Request, fmt: str | None) -> str:
    if fmt:
        return fmt
    accept = request.headers.get("accept", "")
    for name, media in (("png", "image/png"), ("jpeg", "image/jpeg"), ("npy", "application/x-npy")):
        if media in accept:
            return name
    return "png"


@router.post(
    "/counterfactual",
    summary="A counterfactual image: shape, texture and background each from its own class (or an asset)",
    response_class=Response,
    responses=IMAGE_RESPONSES,
)
async def counterfactual(
    req: CounterfactualRequest, request: Request, services: Services = Depends(get_services)
) -> Response:
    manifest, picks, note = choose_model(services, req)
    check_truncation(manifest, req.truncation)
    loaded = await loaded_model(services, manifest.name)
    seeds = mechanism_seeds(req)
    seeds_row = np.array([[seeds[m] for m in MECHANISMS]], dtype=np.int64)
    outputs = tuple(dict.fromkeys(req.outputs))
    work = work_for(services, loaded, labels_row(picks), seeds_row, outputs, picks, req.truncation)
    images = await run(services, work)
    fmt = negotiated_format(request, req.format)
    size = manifest.image_size
    labels = {m: picks[m].describe(size) for m in MECHANISMS}
    headers = {
        "X-CGN-Model": manifest.name,
        "X-CGN-Labels": json.dumps({m: labels[m]["name"] for m in MECHANISMS}),
        "X-CGN-Seeds": json.dumps(seeds),
    }
    if note:
        headers["X-CGN-Note"] = note
    if wants_json(request):
        encoded = await encode_off_loop({k: v[0] for k, v in images.items()}, fmt)
        body = CounterfactualResponse(
            model=manifest.name,
            image_size=size,
            format=fmt,
            media_type=MEDIA_TYPES[fmt],
            seeds=seeds,
            labels=labels,
            outputs={k: base64.b64encode(v).decode() for k, v in encoded.items()},
            note=note,
        )
        return JSONResponse(body.model_dump(), headers=headers)
    data = (await encode_off_loop({"x": images[outputs[0]][0]}, fmt))["x"]
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)
