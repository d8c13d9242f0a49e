"""Liveness, readiness and Prometheus metrics; open even when API keys are configured."""

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from service.deps import ServicesDep
from service.problems import NotReady
from service.schemas import Health, Readiness

router = APIRouter(tags=["health"])


@router.get("/healthz", summary="The process is alive", response_model=Health)
async def healthz() -> dict:
    return {"status": "ok"}


@router.get(
    "/readyz",
    summary="The default model is loaded and the service can generate",
    response_model=Readiness,
    responses={503: {"description": "still loading, or the default model could not be loaded"}},
)
async def readyz(request: Request, services: ServicesDep) -> dict:
    name = services.settings.default_model
    if services.runner.loaded(name) is None:
        problem = request.app.state.load_errors.get(name)
        message = f"default model {name!r} " + (f"could not be loaded: {problem}" if problem else "is still loading")
        raise NotReady(message, "model")
    runner = services.runner
    return {"status": "ready", "default_model": name, "loaded": runner.names(), "queue": runner.depth()}


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
def metrics(services: ServicesDep) -> Response:
    services.metrics.queue_depth.set(services.runner.depth())
    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
