"""POST /mechanisms/{shape|texture|background}: one mechanism's output for a label and seed."""

from typing import Literal

import numpy as np
from fastapi import APIRouter, Depends, Request, Response

from cgn.mechanisms import MECHANISMS
from service.deps import Services, get_services, loaded_model, manifest_of, require_api_key
from service.encode import MEDIA_TYPES
from service.generation import check_truncation, run, work_for
from service.resolve import OVERRIDE_KEY, fixed_label
from service.routes.counterfactual import IMAGE_RESPONSES, encode_off_loop, negotiated_format
from service.schemas import MechanismRequest

router = APIRouter(tags=["generate"], dependencies=[Depends(require_api_key)])


MechanismName = Literal["shape", "texture", "background"]


@router.post(
    "/mechanisms/{mechanism}",
    summary="One independent mechanism: the shape's mask, the texture's foreground or the background",
    response_class=Response,
    responses={k: v for k, v in IMAGE_RESPONSES.items() if k != 200}
    | {200: {"description": "the mechanism's output image", "content": {m: {} for m in MEDIA_TYPES.values()}}},
)
async def mechanism(
    mechanism: MechanismName, req: MechanismRequest, request: Request, services: Services = Depends(get_services)
) -> Response:
    mech = mechanism
    name = req.model or services.settings.default_model
    manifest = manifest_of(services, name)
    label = fixed_label(manifest, mech, req.label)
    check_truncation(manifest, req.truncation)
    loaded = await loaded_model(services, name)
    k = MECHANISMS.index(mech)
    labels = np.zeros((1, 3), dtype=np.int64)
    labels[0, k] = label
    seeds = np.full((1, 3), req.seed, dtype=np.int64)
    output = OVERRIDE_KEY[mech]
    images = await run(services, work_for(services, loaded, labels, seeds, (output,), None, req.truncation))
    fmt = negotiated_format(request, req.format)
    data = (await encode_off_loop({"x": images[output][0]}, fmt))["x"]
    headers = {
        "X-CGN-Model": name,
        "X-CGN-Label": f"{label}:{manifest.vocabulary[mech][label]}",
        "X-CGN-Seed": str(req.seed),
    }
    return Response(data, media_type=MEDIA_TYPES[fmt], headers=headers)
