"""The model store a command reads or writes: the one its command line names, else CGN_MODEL_STORE."""

from pathlib import Path


def configured_store(given: Path | None) -> Path | None:
    """`given`, else the service's one setting (CGN_MODEL_STORE; None where unset)."""
    if given is not None:
        return given
    from service.settings import Settings

    return Settings().model_store


def writable_store(given: Path | None, missing: str) -> Path:
    """configured_store(given), never the shipped built-in directory; ValueError(missing) where there is none."""
    root = configured_store(given)
    if root is None:
        raise ValueError(missing)
    return root
