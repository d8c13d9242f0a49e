"""POST /interpolate: one mechanism moves from one class to another, noise and the other mechanisms fixed."""

import asyncio
import base64

import numpy as np
from fastapi import Request, Response
from fastapi.responses import JSONResponse

from service.deps import ServicesDep
from service.encode import MEDIA_TYPES, encode_image
from service.plan import interpolation_plan, run
from service.responses import generation_router
from service.schemas import InterpolateRequest, InterpolateResponse

router = generation_router()


def wants_strip(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "application/json" not in accept and ("image/png" in accept or "image/jpeg" in accept)


def strip(images: dict[str, np.ndarray], outputs: tuple[str, ...], fmt: str) -> bytes:
    """One image: a row per output, a column per step, no gaps (masks as grey RGB)."""
    rows = [np.concatenate(list(np.broadcast_to(images[o], (len(images[o]), 3, *images[o].shape[2:]))), axis=2)
            for o in outputs]  # fmt: skip
    return encode_image(np.ascontiguousarray(np.concatenate(rows, axis=1)), fmt)


@router.post(
    "/interpolate",
    summary="Interpolation strip: one mechanism moves between two classes, noise and the others fixed",
    responses={
        200: {
            "description": "JSON with base64 images per output and step; with Accept: image/png (or image/jpeg) "
            "one strip image, a row per output and a column per step",
            "model": InterpolateResponse,
            "content": {"image/png": {}, "image/jpeg": {}},
        },
        422: {"description": "bad input: unknown class name (with closest matches), steps out of range, ..."},
    },
)
async def interpolate(req: InterpolateRequest, request: Request, services: ServicesDep) -> Response:
    plan, first, last = interpolation_plan(services, **req.plan_args())
    images = await run(services, plan)
    fmt = req.format or ("jpeg" if "image/jpeg" in request.headers.get("accept", "") else "png")
    headers = {"X-CGN-Model": plan.model}
    if wants_strip(request):
        data = await asyncio.to_thread(strip, images, plan.outputs, fmt)
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)
    encoded = await asyncio.to_thread(
        lambda: {k: [base64.b64encode(encode_image(img, fmt)).decode() for img in images[k]] for k in plan.outputs}
    )
    size = plan.manifest.image_size
    body = {
        "model": plan.model,
        "mechanism": req.mechanism,
        "steps": req.steps,
        "t": [i / (req.steps - 1) for i in range(req.steps)],
        "image_size": size,
        "format": fmt,
        "media_type": MEDIA_TYPES[fmt],
        "from": first.describe(size),
        "to": last.describe(size),
        "labels": {m: p.describe(size) for m, p in plan.picks.items()},
        "seeds": plan.seeds_by_mechanism(),
        "outputs": encoded,
    }
    return JSONResponse(body, headers=headers)
