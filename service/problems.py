"""What can go wrong with a request, in the request's own terms: the field at fault and what it accepts.

The planning layer, the resolver and the runner raise these; they know nothing of HTTP. service/errors.py
maps each kind to a status code and the one JSON error body.
"""

from typing import Any


class Problem(Exception):
    """A request the service cannot carry out; `kind` is the error body's machine-readable type."""

    kind = "bad_request"

    def __init_subclass__(cls, kind: str, **kwargs: Any):
        """Every kind of problem names its type where it is declared."""
        super().__init_subclass__(**kwargs)
        cls.kind = kind

    def __init__(self, message: str, field: str | None = None, **extra: Any):
        super().__init__(message)
        self.message = message
        self.field = field
        self.extra = extra


class InvalidInput(Problem, kind="invalid_input"):
    """A value the request may not have; `allowed` says what it may, where that is short."""


class UnknownNameError(InvalidInput, kind="unknown_name"):
    """A class name no vocabulary knows (with the closest names as `suggestions`)."""


class NotFound(Problem, kind="not_found"):
    """An unknown model, job, asset or shard."""


class ModelNotInstalled(NotFound, kind="model_not_installed"):
    """A catalogued model that is not installed here; `install` is the command that installs it."""


class Conflict(Problem, kind="conflict"):
    """The request clashes with the state: a built-in name, an idempotency key used with another body,
    a shard not written yet."""


class TooLarge(Problem, kind="payload_too_large"):
    """A body, file or quota over its limit (`limit`)."""


class RequestTimeout(Problem, kind="request_timeout"):
    """A client that stopped sending its body."""


class Unauthorized(Problem, kind="unauthorized"):
    """No API key, or one the service does not know (when keys are configured)."""

    def __init__(self, message: str = "missing or invalid API key: send 'Authorization: Bearer <key>'"):
        super().__init__(message)


class Overloaded(Problem, kind="overloaded"):
    """Busy or a dependency is down: try again in `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int, field: str | None = None, **extra: Any):
        super().__init__(message, field, retry_after=retry_after, **extra)
        self.retry_after = retry_after


class NotReady(Problem, kind="not_ready"):
    """The default model is still loading, or failed to load."""
