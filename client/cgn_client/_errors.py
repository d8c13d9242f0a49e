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
    """The server answered with an error status; `.type`, `.field`, `.body` come from its JSON error."""

    status_code: int = 0

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


class BadRequestError(APIStatusError):
    """400: a request the server could not read."""

    status_code = 400


class AuthenticationError(APIStatusError):
    """401: no API key, or one the server does not know."""

    status_code = 401


class NotFoundError(APIStatusError):
    """404: an unknown model, job, shard or asset."""

    status_code = 404


class ModelNotInstalledError(NotFoundError):
    """`.install` says how to install the model."""

    @property
    def install(self) -> str | None:
        return self.body.get("error", {}).get("install")


class ConflictError(APIStatusError):
    """409: e.g. an idempotency key reused with another body, or a shard not written yet."""

    status_code = 409


class PayloadTooLargeError(APIStatusError):
    """413: a body, file or asset quota over the server's limit."""

    status_code = 413


class InvalidRequestError(APIStatusError):
    """422: the server refused an input; `.field` names it."""

    status_code = 422


class UnknownNameError(InvalidRequestError):
    """A class name the model does not know; `.suggestions` are the closest known names."""

    @property
    def suggestions(self) -> list[str]:
        return list(self.body.get("error", {}).get("suggestions", []))


class RateLimitError(APIStatusError):
    """429: too many requests (retried automatically, raised when retries run out)."""

    status_code = 429


class OverloadedError(APIStatusError):
    """503: the server's queue is full (retried automatically, raised when retries run out)."""

    status_code = 503


class InternalServerError(APIStatusError):
    pass


class BatchJobError(CGNError):
    """A batch job ended failed or cancelled; `.status` is its last status."""

    def __init__(self, message: str, status: dict[str, Any]):
        super().__init__(message)
        self.status = status


_BY_STATUS: dict[int, type[APIStatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    404: NotFoundError,
    409: ConflictError,
    413: PayloadTooLargeError,
    422: InvalidRequestError,
    429: RateLimitError,
    503: OverloadedError,
}
_BY_TYPE: dict[str, type[APIStatusError]] = {
    "unknown_name": UnknownNameError,
    "model_not_installed": ModelNotInstalledError,
}


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
