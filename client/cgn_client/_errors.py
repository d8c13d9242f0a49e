"""The error tree: every server error carries the server's type, message, field and request id."""

from typing import Any

import httpx


class CGNError(Exception):
    """Base of every error this SDK raises."""


class APIConnectionError(CGNError):
    """The server could not be reached (after retries; for a wait, after its outage_timeout)."""

    def __init__(self, message: str, request: httpx.Request | None = None):
        super().__init__(message)
        self.request = request


class APITimeoutError(APIConnectionError):
    """The request timed out (after retries)."""


class APIStatusError(CGNError):
    """The server answered with an error status; `.type`, `.field`, `.body` come from its JSON error.

    A subclass declares the status or error type it stands for (`status=409`, `error_type="unknown_name"`);
    error_from_response picks the most specific one.
    """

    status_code: int = 0

    def __init_subclass__(cls, status: int | None = None, error_type: str | None = None, **kwargs: Any):
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status_code = status
            _BY_STATUS[status] = cls
        if error_type is not None:
            _BY_TYPE[error_type] = cls

    def __init__(self, message: str, response: httpx.Response, body: dict[str, Any] | None):
        super().__init__(message)
        self.response = response
        self.status_code = response.status_code
        self.body = body or {}
        err = self.body.get("error", {}) if isinstance(self.body, dict) else {}
        self.type: str | None = err.get("type")
        self.message: str = err.get("message", message)
        self.field: str | None = err.get("field")
        self.allowed = err.get("allowed")
        self.request_id: str | None = err.get("request_id") or response.headers.get("x-request-id")


_BY_STATUS: dict[int, type[APIStatusError]] = {}
_BY_TYPE: dict[str, type[APIStatusError]] = {}


class BadRequestError(APIStatusError, status=400):
    """A request the server could not read."""


class AuthenticationError(APIStatusError, status=401):
    """No API key, or one the server does not know."""


class NotFoundError(APIStatusError, status=404):
    """An unknown model, job, shard or asset."""


class ModelNotInstalledError(NotFoundError, error_type="model_not_installed"):
    """`.install` says how to install the model."""

    @property
    def install(self) -> str | None:
        return self.body.get("error", {}).get("install")


class ConflictError(APIStatusError, status=409):
    """E.g. an idempotency key reused with another body, or a shard not written yet."""


class PayloadTooLargeError(APIStatusError, status=413):
    """A body, file or asset quota over the server's limit."""


class InvalidRequestError(APIStatusError, status=422):
    """The server refused an input; `.field` names it."""


class UnknownNameError(InvalidRequestError, error_type="unknown_name"):
    """A class name the model does not know; `.suggestions` are the closest known names."""

    @property
    def suggestions(self) -> list[str]:
        return list(self.body.get("error", {}).get("suggestions", []))


class RateLimitError(APIStatusError, status=429):
    """Too many requests (retried automatically, raised when retries run out)."""


class OverloadedError(APIStatusError, status=503):
    """The server's queue is full (retried automatically, raised when retries run out)."""


class InternalServerError(APIStatusError):
    """Any other 5xx: a bug or an outage on the server's side."""


class BatchJobError(CGNError):
    """A batch job ended failed or cancelled; `.status` is its last status."""

    def __init__(self, message: str, status: dict[str, Any]):
        super().__init__(message)
        self.status = status


def error_from_response(response: httpx.Response) -> APIStatusError:
    try:
        body = response.json()
    except ValueError:
        body = None
    err = body.get("error", {}) if isinstance(body, dict) and isinstance(body.get("error"), dict) else {}
    cls = _BY_TYPE.get(err.get("type", "")) or _BY_STATUS.get(response.status_code)
    if cls is None:
        cls = InternalServerError if response.status_code >= 500 else APIStatusError
    message = err.get("message") or f"HTTP {response.status_code}: {response.text[:200]}"
    return cls(f"{response.status_code} {message}", response, body)
