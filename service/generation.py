"""From resolved picks to runner work and back: shared by the counterfactual, mechanism and samples routes."""

import asyncio

import numpy as np

from cgn.mechanisms import MECHANISMS
from model_store import LoadedModel, Manifest
from service.deps import Services
from service.errors import InvalidInput, Overloaded
from service.resolve import OVERRIDE_KEY, Pick
from service.runner import BatchKey, QueueFull, Work


def check_truncation(manifest: Manifest, truncation: float | None) -> None:
    """Only a model that takes a truncation gets one (the manifest says so, so a batch submission can
    check it where the model is not loaded)."""
    if truncation is not None and not manifest.takes_truncation:
        raise InvalidInput(
            f"truncation: model {manifest.name!r} ({manifest.architecture}) takes no truncation", "truncation"
        )


def work_for(
    services: Services,
    loaded: LoadedModel,
    labels: np.ndarray,
    seeds: np.ndarray,
    outputs: tuple[str, ...],
    picks: dict[str, Pick] | None = None,
    truncation: float | None = None,
) -> Work:
    """Assets in `picks` become interventions (overrides) and part of the micro-batch key."""
    overrides, interventions = {}, []
    size = loaded.manifest.image_size
    for mech, pick in (picks or {}).items():
        if pick.asset is not None:
            key = OVERRIDE_KEY[mech]
            overrides[key] = services.assets.tensor(pick.asset, size, as_mask=mech == "shape")
            interventions.append((key, pick.asset.digest))
    key = BatchKey(loaded.manifest.name, tuple(outputs), tuple(sorted(interventions)), truncation)
    return Work(key, labels.astype(np.int64), seeds.astype(np.int64), overrides)


async def run(services: Services, work: Work) -> dict[str, np.ndarray]:
    """Queue the work for the model owner; 503 with Retry-After when the queue is full."""
    try:
        future = services.runner.submit(work)
    except QueueFull as exc:
        raise Overloaded(f"the model is busy: {exc}; retry later", services.settings.retry_after_s) from exc
    return await asyncio.wrap_future(future)


def labels_row(picks: dict[str, Pick]) -> np.ndarray:
    return np.array([[picks[m].id if picks[m].id is not None else 0 for m in MECHANISMS]], dtype=np.int64)
