"""POST /samples: n counterfactual training samples in one compact binary payload (behind sample_batch)."""

from fastapi import Response

from cgn.mechanisms import MECHANISMS
from service.deps import ServicesDep
from service.encode import SAMPLES_MEDIA_TYPE, encode_samples
from service.plan import run, samples_plan
from service.responses import generation_router
from service.schemas import SamplesRequest

router = generation_router()


@router.post(
    "/samples",
    summary="A batch of samples as uint8 NCHW images plus labels and seeds (format: docs/service.md)",
    responses={
        200: {"description": "CGNS binary payload", "content": {SAMPLES_MEDIA_TYPE: {}}},
        422: {"description": "bad input, e.g. n above the limit"},
    },
)
async def samples(req: SamplesRequest, services: ServicesDep) -> Response:
    plan = samples_plan(services, **req.plan_args())
    images = await run(services, plan)
    arrays = {**images, "labels": plan.labels, "seeds": plan.seeds}
    meta = {"model": plan.model, "n": req.n, "seed": req.seed, "start": req.start, "mechanisms": list(MECHANISMS)}
    return Response(encode_samples(arrays, meta), media_type=SAMPLES_MEDIA_TYPE, headers={"X-CGN-Model": plan.model})
