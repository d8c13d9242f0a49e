"""POST /mechanisms/{shape|texture|background}: one mechanism's output for a label and seed."""

from typing import Literal

from fastapi import Request, Response

from service.deps import ServicesDep
from service.encode import MEDIA_TYPES
from service.plan import mechanism_plan, run
from service.responses import ONE_IMAGE_RESPONSES, encode_images, generation_router, header_text, negotiated_format
from service.schemas import MechanismRequest

router = generation_router()


@router.post(
    "/mechanisms/{mechanism}",
    summary="One independent mechanism: the shape's mask, the texture's foreground or the background",
    responses=ONE_IMAGE_RESPONSES,
)
async def mechanism(
    mechanism: Literal["shape", "texture", "background"],
    req: MechanismRequest,
    request: Request,
    services: ServicesDep,
) -> Response:
    plan, label = mechanism_plan(services, mechanism=mechanism, **req.plan_args())
    images = await run(services, plan)
    fmt = negotiated_format(request, req.format)
    data = (await encode_images({"x": images[plan.outputs[0]][0]}, fmt))["x"]
    headers = {
        "X-CGN-Model": plan.model,
        "X-CGN-Label": header_text(f"{label}:{plan.manifest.vocabulary[mechanism][label]}"),
        "X-CGN-Seed": str(req.seed),
    }
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)
