"""What can go wrong with a request, in the request's own terms: the field at fault and what it accepts.

The planning layer, the resolver and the runner raise these; they know nothing of HTTP. service/errors.py
maps each kind to a status code and the one JSON error body.
"""

from typing import Any


class Problem(Exception):
    """A request the service cannot carry out; `kind` is the error body's machine-readable type."""

    kind = "bad_request"

    def __init__(self, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class InvalidInput(Problem):
    """A value the request may not have; `allowed` says what it may, where that is short."""

    kind = "invalid_input"


class UnknownNameError(InvalidInput):
    """A class name no vocabulary knows (with the closest names as `suggestions`)."""

    kind = "unknown_name"


class NotFound(Problem):
    """An unknown model, job, asset or shard."""

    kind = "not_found"


class ModelNotInstalled(NotFound):
    """A catalogued model that is not installed here; `install` is the command that installs it."""

    kind = "model_not_installed"


class Conflict(Problem):
    """The request clashes with the state: a built-in name, an idempotency key used with another body,
    a shard not written yet."""

    kind = "conflict"


class TooLarge(Problem):
    """A body, file or quota over its limit (`limit`)."""

    kind = "payload_too_large"


class RequestTimeout(Problem):
    """A client that stopped sending its body."""

    kind = "request_timeout"


class Unauthorized(Problem):
    """No API key, or one the service does not know (when keys are configured)."""

    kind = "unauthorized"

    def __init__(self, message: str = "missing or invalid API key: send 'Authorization: Bearer <key>'"):
        super().__init__(message)


class Overloaded(Problem):
    """Busy or a dependency is down: try again in `retry_after` seconds."""

    kind = "overloaded"

    def __init__(self, message: str, retry_after: int, field: str | None = None, **extra: Any):
        super().__init__(message, field, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class NotReady(Problem):
    """The default model is still loading, or failed to load."""

    kind = "not_ready"
