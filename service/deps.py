"""What handlers depend on: the app's services and API-key auth."""

import hmac
import threading
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from service.batch.queue import BatchQueue, QueueConfig
from service.problems import Unauthorized
from service.services import Services

_bearer = HTTPBearer(auto_error=False, description="required when CGN_API_KEYS is set")


# Dependencies are `async def`: FastAPI would run plain functions in the thread pool, a hop per request.
async def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]


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


_queue_lock = threading.Lock()


async def get_queue(request: Request) -> BatchQueue:
    """One Redis client per app, made on first use (the API starts even when Redis is not up yet)."""
    state = request.app.state
    with _queue_lock:
        if getattr(state, "batch_queue", None) is None:
            settings = state.services.settings
            state.batch_queue = BatchQueue.from_url(settings.redis_url, QueueConfig.from_settings(settings))
    return state.batch_queue


QueueDep = Annotated[BatchQueue, Depends(get_queue)]
