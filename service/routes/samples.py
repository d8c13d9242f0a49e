"""POST /samples: n counterfactual training samples in one compact binary payload (behind sample_batch)."""

from fastapi import APIRouter, Depends, Response

from cgn.mechanisms import MECHANISMS
from cgn.sampling import plan
from service.deps import Services, get_services, loaded_model, manifest_of, require_api_key
from service.encode import SAMPLES_MEDIA_TYPE, encode_samples
from service.errors import InvalidInput
from service.generation import check_truncation, run, work_for
from service.resolve import fixed_label
from service.schemas import SamplesRequest

router = APIRouter(tags=["generate"], dependencies=[Depends(require_api_key)])


@router.post(
    "/samples",
    summary="A batch of samples as uint8 NCHW images plus labels and seeds (format: docs/service.md)",
    response_class=Response,
    responses={
        200: {"description": "CGNS binary payload", "content": {SAMPLES_MEDIA_TYPE: {}}},
        401: {"description": "missing or invalid API key"},
        404: {"description": "unknown or not installed model"},
        422: {"description": "bad input, e.g. n above the limit"},
        503: {"description": "the model queue is full; retry after Retry-After seconds"},
    },
)
async def samples(req: SamplesRequest, services: Services = Depends(get_services)) -> Response:
    limit = services.settings.max_samples
    if req.n > limit:
        raise InvalidInput(f"n: at most {limit} samples per request, got {req.n}", "n", allowed=f"1..{limit}")
    name = req.model or services.settings.default_model
    manifest = manifest_of(services, name)
    given = {"shape": req.shape, "texture": req.texture, "background": req.background}
    fixed = tuple(fixed_label(manifest, m, given[m]) for m in MECHANISMS)
    classes = tuple(len(manifest.vocabulary[m]) for m in MECHANISMS)
    try:
        p = plan(req.seed, req.start, req.start + req.n, classes, req.policy, fixed, req.cfs_per_shape)
    except ValueError as exc:
        raise InvalidInput(str(exc), None) from exc
    check_truncation(manifest, req.truncation)
    loaded = await loaded_model(services, name)
    outputs = tuple(dict.fromkeys(req.outputs))
    images = await run(services, work_for(services, loaded, p.labels, p.seeds, outputs, None, req.truncation))
    arrays = {**images, "labels": p.labels, "seeds": p.seeds}
    meta = {
        "model": name,
        "n": req.n,
        "seed": req.seed,
        "start": req.start,
        "mechanisms": list(MECHANISMS),
    }
    return Response(encode_samples(arrays, meta), media_type=SAMPLES_MEDIA_TYPE, headers={"X-CGN-Model": name})
