"""What handlers depend on: settings, API-key auth, the model runner, assets and name resolution."""

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from model_store import LoadedModel, Manifest, ModelStore, NotInstalled
from service.assets import AssetStore
from service.errors import ModelNotInstalled, NotFound, Unauthorized
from service.metrics import Metrics
from service.runner import Runner
from service.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="required when CGN_API_KEYS is set")


@dataclass
class Services:
    """Everything one app instance owns; lives on app.state.services."""

    settings: Settings
    store: ModelStore
    runner: Runner
    assets: AssetStore
    metrics: Metrics


# Dependencies are `async def`: FastAPI would run plain functions in the thread pool, a hop per request.
async def get_services(request: Request) -> Services:
    return request.app.state.services


async def get_settings(request: Request) -> Settings:
    return request.app.state.services.settings


async def require_api_key(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> str | None:
    """401 unless a configured key is presented as a bearer token; open when no keys are configured."""
    keys = request.app.state.services.settings.api_keys
    if not keys:
        return None
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthorized()
    token = credentials.credentials.encode()
    if not any(hmac.compare_digest(token, k.encode()) for k in keys):
        raise Unauthorized("invalid API key")
    return credentials.credentials


def manifest_of(services: Services, name: str) -> Manifest:
    """The manifest of an installed model; 404 naming the known models or the install command."""
    loaded = services.runner.loaded(name)
    if loaded is not None:  # fast path: no disk reads for a model in memory
        return loaded.manifest
    try:
        entry = services.store.entry(name)
    except KeyError:
        known = [e.name for e in services.store.entries()]
        raise NotFound(f"model: unknown model {name!r}", "model", allowed=known) from None
    if not entry.installed:
        raise ModelNotInstalled(
            f"model: {name!r} is not installed; install it with: {entry.install}", "model", install=entry.install
        )
    return entry.manifest


async def loaded_model(services: Services, name: str) -> LoadedModel:
    """Load (once per process, off the event loop) and return a model."""
    manifest_of(services, name)
    found = services.runner.loaded(name)
    if found is not None:
        return found
    try:
        return await run_in_threadpool(services.runner.load, name)
    except NotInstalled as exc:
        raise ModelNotInstalled(str(exc), "model", install=exc.install) from exc
