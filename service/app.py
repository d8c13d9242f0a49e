"""The FastAPI application: `create_app(settings)` wires settings, the model runner and one router per resource.

Run it with `cgn serve`, or `uvicorn --factory service.app:create_app`.
"""

import gc
import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service import errors, openapi
from service.assets import AssetStore
from service.metrics import Metrics
from service.middleware import RequestContext
from service.routes import assets, batches, counterfactual, health, interpolate, mechanisms, models, playground, samples
from service.runner import Runner, model_store
from service.services import Services
from service.settings import Settings

log = logging.getLogger("cgn.service")

ROUTERS = [health, models, counterfactual, mechanisms, interpolate, samples, assets, batches, playground]

DESCRIPTION = """Counterfactual images from Counterfactual Generative Networks (Sauer & Geiger, ICLR 2021).

Each image is composed from three independent mechanisms, each with its own class label: **shape**
(a mask), **texture** (the foreground) and **background**. Name the class you want for each, or give
an image asset instead (an intervention). Errors are JSON: `{"error": {"type", "message", "field", ...}}`.
"""


def _preload(app: FastAPI, services: Services) -> None:
    """Load the configured models in the background; /readyz turns ready when the default one is in."""
    state = app.state
    for name in services.settings.preload():
        try:
            services.runner.load(name)
        except Exception as exc:  # noqa: BLE001 - reported by /readyz, the service keeps serving
            log.error("could not load model %s: %s", name, exc)
            state.load_errors[name] = str(exc)
    for name in services.assets.names():  # render built-in assets now, not in the first request using them
        services.assets.get(name)
    # the models' and libraries' objects live as long as the process: keep them out of the garbage
    # collector's full passes, which otherwise stall every request for tens of milliseconds under load
    gc.freeze()


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    services: Services = app.state.services
    services.runner.start()
    threading.Thread(target=_preload, args=(app, services), name="cgn-preload", daemon=True).start()
    try:
        yield
    finally:
        services.runner.stop()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()
    services = Services(
        settings=settings,
        store=model_store(settings),
        runner=Runner(settings, on_batch=metrics.on_batch),
        assets=AssetStore(settings.assets_dir, settings.max_assets, settings.max_asset_bytes),
        metrics=metrics,
    )
    app = FastAPI(title="cgn-service", version="0.1.0", description=DESCRIPTION, lifespan=_lifespan)
    app.state.services = services
    app.state.load_errors = {}
    errors.install(app)
    openapi.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    # outermost, outside FastAPI's own layers: a refused or oversized request costs only what it must
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestContext(build(), services)  # type: ignore[method-assign]
    return app
