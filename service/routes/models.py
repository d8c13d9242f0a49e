"""GET /models, /models/{name}, /models/{name}/classes: what can be asked for, and how names resolve."""

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from cgn.mechanisms import MECHANISMS, OUTPUTS
from cgn.vocab import UnknownName
from model_store.store import Entry
from service.deps import ServicesDep, require_api_key
from service.plan import manifest_of
from service.problems import NotFound
from service.resolve import vocab
from service.responses import json_view
from service.schemas import ClassesResponse, ModelInfo, ModelList
from service.services import Services

router = APIRouter(tags=["models"], dependencies=[Depends(require_api_key)])


def describe(entry: Entry, services: Services) -> dict:
    out = {
        "name": entry.name,
        "installed": entry.installed,
        "default": entry.name == services.settings.default_model,
        "loaded": services.runner.loaded(entry.name) is not None,
    }
    if entry.manifest is None:
        return out | {"install": entry.install}
    m = entry.manifest
    return out | {
        "architecture": m.architecture,
        "image_size": m.image_size,
        "description": m.description,
        "mechanisms": {mech: {"classes": len(m.vocabulary[mech])} for mech in MECHANISMS},
        "outputs": list(OUTPUTS),
        "truncation": m.takes_truncation,
    }


@router.get(
    "/models",
    summary="Installed and installable models",
    response_model=ModelList,
    response_model_exclude_unset=True,
)
def models(services: ServicesDep) -> dict:
    return {
        "default": services.settings.default_model,
        "models": [describe(e, services) for e in services.store.entries()],
        "assets": [a.info() for a in map(services.assets.get, services.assets.names()) if a is not None],
    }


def _entry(services: Services, name: str) -> Entry:
    try:
        return services.store.entry(name)
    except KeyError:
        known = [e.name for e in services.store.entries()]
        raise NotFound(f"model: unknown model {name!r}", "name", allowed=known) from None


@router.get(
    "/models/{name}",
    summary="One model: mechanisms, image size, installed or not",
    **json_view(ModelInfo, "unknown model"),
)
def model(name: str, services: ServicesDep) -> dict:
    return describe(_entry(services, name), services)


@router.get(
    "/models/{name}/classes",
    summary="Class names per mechanism; with q, search and resolve a word",
    **json_view(ClassesResponse, "unknown or not installed model"),
)
def classes(
    name: str,
    services: ServicesDep,
    q: Annotated[str | None, Query(max_length=200, description="a word to search and resolve")] = None,
    mechanism: Annotated[str | None, Query(pattern="^(shape|texture|background)$")] = None,
    limit: Annotated[int, Query(ge=1, le=2000)] = 50,
) -> dict:
    manifest = manifest_of(services, name)
    mechs = [mechanism] if mechanism else list(MECHANISMS)
    out: dict = {"model": name, "query": q, "mechanisms": {}}
    for mech in mechs:
        v = vocab(manifest, mech)
        if q is None:
            out["mechanisms"][mech] = {"classes": [{"id": i, "name": n} for i, n in enumerate(v.names[:limit])]}
            continue
        entry: dict = {"matches": [{"id": i, "name": n} for i, n in v.search(q, limit)]}
        try:
            r = v.resolve(mech, q)
            entry["resolved"] = {"id": r.id, "name": r.name, "via": r.via}
        except UnknownName as exc:
            entry["resolved"] = None
            entry["suggestions"] = exc.suggestions
        except ValueError as exc:
            entry["resolved"] = None
            entry["problem"] = str(exc)
        out["mechanisms"][mech] = entry
    if q is not None and services.assets.get(q.strip().lower()) is not None:
        out["asset"] = services.assets.get(q.strip().lower()).info()
    return out
