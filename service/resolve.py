"""Request words -> class ids or assets, per mechanism; unknown words give 422 with the closest matches."""

import difflib
from dataclasses import dataclass

import numpy as np

from cgn.mechanisms import MECHANISMS
from cgn.sampling import derive
from cgn.vocab import UnknownName, Vocabulary
from model_store import Manifest
from service.assets import Asset
from service.problems import InvalidInput, UnknownNameError
from service.services import Services

OVERRIDE_KEY = {"shape": "mask", "texture": "foreground", "background": "background"}
FIELD = {"shape": "shape", "texture": "texture", "background": "bg"}


@dataclass(frozen=True)
class Pick:
    """What one mechanism gets: a class (id, name) or an asset."""

    mechanism: str
    id: int | None
    name: str | None
    resolved_by: str  # id, name, alias, hypernym, asset, or drawn (from the seed: the request left it open)
    asset: Asset | None = None

    def describe(self, image_size: int) -> dict:
        if self.asset is None:
            return {"id": self.id, "name": self.name, "via": self.resolved_by}
        a = self.asset
        info = {"name": a.name, "width": a.width, "height": a.height, "resized_to": image_size}
        info["read_as"] = "grey levels" if self.mechanism == "shape" else "RGB"
        return {"id": None, "name": a.name, "via": "asset", "asset": info}


_VOCABS: dict[tuple[str, str, str], Vocabulary] = {}


def vocab(manifest: Manifest, mechanism: str) -> Vocabulary:
    """Vocabularies are cached per model version: ImageNet's builds a WordNet index."""
    key = (manifest.name, manifest.sha256, mechanism)
    if key not in _VOCABS:
        _VOCABS[key] = manifest.vocab(mechanism)
    return _VOCABS[key]


_RESOLVED: dict[tuple, Pick | tuple] = {}


def resolve_class(manifest: Manifest, mechanism: str, field: str, value: int | str) -> Pick:
    """Cached: clients repeat the same words, and a miss computes the closest names (difflib)."""
    key = (manifest.name, manifest.sha256, mechanism, field, type(value), value)
    found = _RESOLVED.get(key)
    if found is None:
        try:
            found = _resolve_class(manifest, mechanism, field, value)
        except UnknownName as exc:
            found = ("unknown", exc.field, exc.word, tuple(exc.suggestions))
        except InvalidInput as exc:
            found = ("invalid", exc.message, exc.field, exc.extra.get("allowed"))
        if len(_RESOLVED) > 10_000:
            _RESOLVED.clear()
        _RESOLVED[key] = found
    if isinstance(found, Pick):
        return found
    if found[0] == "unknown":  # a fresh exception per request: a re-raised one would grow its traceback
        raise UnknownName(found[1], found[2], list(found[3]))
    raise InvalidInput(found[1], found[2], allowed=found[3])


def _resolve_class(manifest: Manifest, mechanism: str, field: str, value: int | str) -> Pick:
    try:
        r = vocab(manifest, mechanism).resolve(field, value)
    except UnknownName:
        raise
    except ValueError as exc:
        allowed = f"0..{len(manifest.vocabulary[mechanism]) - 1} or a class name"
        raise InvalidInput(str(exc), field, allowed=allowed) from exc
    return Pick(mechanism, r.id, r.name, r.via)


def unknown_name_error(services: Services, manifest: Manifest, exc: UnknownName, allow_assets: bool) -> InvalidInput:
    assets = services.assets.names() if allow_assets else []
    close_assets = difflib.get_close_matches(str(exc.word).lower(), assets, n=3, cutoff=0.6)
    suggestions = list(dict.fromkeys([*exc.suggestions, *close_assets]))
    msg = f"{exc.field}: {exc.word!r} is no class of model {manifest.name!r}"
    if allow_assets:
        msg += " and no asset"
    if suggestions:
        msg += f"; closest: {', '.join(suggestions)}"
    hint = install_hint(services, manifest.name)
    if hint:
        msg += f". {hint}"
    return UnknownNameError(
        msg, exc.field, word=exc.word, suggestions=suggestions, model=manifest.name, assets=assets or None
    )


def install_hint(services: Services, model: str) -> str | None:
    """Point at catalogued models that are not installed (e.g. ImageNet names on an MNIST deployment)."""
    missing = [e for e in services.store.entries() if not e.installed and e.name != model]
    if not missing:
        return None
    cmds = "; ".join(f"{e.name}: `{e.install}`" for e in missing)
    return f'Models that are not installed here may know it ({cmds}); then pass "model": "{missing[0].name}"'


def resolve_choice(services: Services, manifest: Manifest, mechanism: str, value: int | str | dict) -> Pick:
    """A class id/name, or an asset (`{"asset": NAME}` or a plain word that is no class but an asset)."""
    field = FIELD[mechanism]
    if isinstance(value, dict):
        asset = services.assets.get(value["asset"])
        if asset is None:
            names = services.assets.names()
            raise InvalidInput(f"{field}.asset: unknown asset {value['asset']!r}", f"{field}.asset", allowed=names)
        return Pick(mechanism, None, None, "asset", asset)
    try:
        return resolve_class(manifest, mechanism, field, value)
    except UnknownName as exc:
        asset = services.assets.get(value.strip().lower()) if isinstance(value, str) else None
        if asset is not None:
            return Pick(mechanism, None, None, "asset", asset)
        raise unknown_name_error(services, manifest, exc, allow_assets=True) from exc


def resolve_label(services: Services, manifest: Manifest, mechanism: str, field: str, value: int | str) -> Pick:
    """A class id or name for `field` (no assets); unknown names say the closest classes."""
    try:
        return resolve_class(manifest, mechanism, field, value)
    except UnknownName as exc:
        raise unknown_name_error(services, manifest, exc, allow_assets=False) from exc


def label_from_seed(manifest: Manifest, mechanism: str, seed: int) -> Pick:
    """A label for a mechanism the request left open: derived from the seed, so it is reproducible."""
    k = MECHANISMS.index(mechanism)
    classes = len(manifest.vocabulary[mechanism])
    label = int(derive(seed, np.array([0], dtype=np.int64), 100 + k)[0] % classes)
    return Pick(mechanism, label, manifest.vocabulary[mechanism][label], "drawn")


def fixed_label(manifest: Manifest, mechanism: str, value) -> int | None:
    """A label fixed for all samples of POST /samples (no assets there)."""
    if value is None:
        return None
    try:
        return resolve_class(manifest, mechanism, FIELD[mechanism], value).id
    except UnknownName as exc:
        raise UnknownNameError(
            f"{exc}", exc.field, word=exc.word, suggestions=exc.suggestions, model=manifest.name
        ) from exc
