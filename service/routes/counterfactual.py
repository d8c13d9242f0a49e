"""POST /counterfactual: one composed image from three mechanisms, each with its own class or asset."""

import base64
import json

from fastapi import Request, Response
from fastapi.responses import JSONResponse

from service.deps import ServicesDep
from service.encode import MEDIA_TYPES
from service.plan import counterfactual_plan, describe_labels, run
from service.responses import (
    IMAGE_RESPONSES,
    encode_images,
    generation_router,
    header_text,
    negotiated_format,
    wants_json,
)
from service.schemas import CounterfactualRequest, CounterfactualResponse

router = generation_router()


@router.post(
    "/counterfactual",
    summary="A counterfactual image: shape, texture and background each from its own class (or an asset)",
    responses=IMAGE_RESPONSES,
)
async def counterfactual(req: CounterfactualRequest, request: Request, services: ServicesDep) -> Response:
    plan = counterfactual_plan(services, **req.plan_args())
    images = await run(services, plan)
    fmt = negotiated_format(request, req.format)
    labels = describe_labels(plan)
    seeds = plan.seeds_by_mechanism()
    headers = {
        "X-CGN-Model": plan.model,
        "X-CGN-Labels": json.dumps({m: label["name"] for m, label in labels.items()}),
        "X-CGN-Seeds": json.dumps(seeds),
    }
    if plan.note:
        headers["X-CGN-Note"] = header_text(plan.note)
    if not wants_json(request):
        data = (await encode_images({"x": images[plan.outputs[0]][0]}, fmt))["x"]
        return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)
    encoded = await encode_images({k: v[0] for k, v in images.items()}, fmt)
    body = CounterfactualResponse(
        model=plan.model,
        image_size=plan.manifest.image_size,
        format=fmt,
        media_type=MEDIA_TYPES[fmt],
        seeds=seeds,
        labels=labels,
        outputs={k: base64.b64encode(v).decode() for k, v in encoded.items()},
        note=plan.note,
    )
    return JSONResponse(body.model_dump(), headers=headers)
