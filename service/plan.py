"""Request -> plan: the model, per-sample labels and seeds, outputs, truncation and interventions of one
generation request, checked before any work is queued.

No HTTP here: what is wrong with a request is raised as a `service.problems.Problem` naming the field and
what it accepts, and the routes turn a plan's images into responses.
"""

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cgn.interpolate import OUTPUT_OF
from cgn.interpolate import interpolate as interpolate_classes
from cgn.mechanisms import MECHANISMS
from cgn.pipeline import to_uint8
from cgn.sampling import plan as sample_plan
from model_store import LoadedModel, Manifest, NotInstalled
from service.problems import InvalidInput, ModelNotInstalled, NotFound, Overloaded, UnknownNameError
from service.resolve import OVERRIDE_KEY, Pick, fixed_label, label_from_seed, resolve_choice, resolve_label
from service.runner import BatchKey, QueueFull, Work
from service.services import Services

Choice = int | str | dict[str, str] | None  # a class id or name, or {"asset": NAME}


@dataclass(frozen=True)
class Plan:
    """What the runner is asked for; `picks` says how each mechanism's label was chosen (one sample)."""

    manifest: Manifest
    labels: np.ndarray  # (n, 3) int64, MECHANISMS order
    seeds: np.ndarray  # (n, 3) int64
    outputs: tuple[str, ...]
    truncation: float | None = None
    picks: dict[str, Pick] = field(default_factory=dict)
    note: str | None = None
    # work that is not rows of samples (an interpolation): (model, truncation, overrides) -> images
    task: Callable[..., dict[str, np.ndarray]] | None = None

    @property
    def model(self) -> str:
        return self.manifest.name

    def seeds_by_mechanism(self) -> dict[str, int]:
        return {m: int(self.seeds[0, k]) for k, m in enumerate(MECHANISMS)}

    def work(self, services: Services) -> Work:
        """Assets picked for a mechanism replace its output (an intervention) and key the micro-batch."""
        overrides, interventions = {}, []
        for mech, pick in self.picks.items():
            if pick.asset is not None:
                key = OVERRIDE_KEY[mech]
                overrides[key] = services.assets.tensor(pick.asset, self.manifest.image_size, as_mask=mech == "shape")
                interventions.append((key, pick.asset.digest))
        kind = "sample" if self.task is None else "task"
        key = BatchKey(self.model, self.outputs, tuple(sorted(interventions)), self.truncation, kind=kind)
        task = None if self.task is None else lambda model, truncation: self.task(model, truncation, overrides)
        return Work(key, self.labels, self.seeds, overrides, task=task)


def manifest_of(services: Services, name: str) -> Manifest:
    """The manifest of an installed model; NotFound naming the known models, or the install command."""
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


def check_truncation(manifest: Manifest, truncation: float | None) -> float | None:
    """The one place that asks whether a model takes a truncation (its manifest says so)."""
    if truncation is not None and not manifest.takes_truncation:
        raise InvalidInput(
            f"truncation: model {manifest.name!r} ({manifest.architecture}) takes no truncation", "truncation"
        )
    return truncation


def per_mechanism(seed: int, seeds: dict[str, int | None] | None) -> dict[str, int]:
    """Each mechanism's noise seed: its own where given, else the shared one."""
    given = seeds or {}
    return {m: given[m] if given.get(m) is not None else seed for m in MECHANISMS}


def _picks(
    services: Services, manifest: Manifest, choices: dict[str, Choice], seeds: dict[str, int], skip: str = ""
) -> dict[str, Pick]:
    """Each mechanism's class or asset; one the request leaves open gets a label drawn from its seed."""
    return {
        m: label_from_seed(manifest, m, seeds[m])
        if choices.get(m) is None
        else resolve_choice(services, manifest, m, choices[m])
        for m in MECHANISMS
        if m != skip
    }


def _model_for(
    services: Services, model: str | None, choices: dict[str, Choice], seeds: dict[str, int]
) -> tuple[Manifest, dict[str, Pick], str | None]:
    """The named model; with none named, the default, or else the one installed model that knows every word."""
    if model is not None:
        manifest = manifest_of(services, model)
        return manifest, _picks(services, manifest, choices, seeds), None
    default = services.settings.default_model
    manifest = manifest_of(services, default)
    try:
        return manifest, _picks(services, manifest, choices, seeds), None
    except UnknownNameError as first:
        for entry in services.store.entries():
            if entry.installed and entry.name != default:
                try:
                    picks = _picks(services, entry.manifest, choices, seeds)
                except InvalidInput:  # this model does not know the words (or ids) either
                    continue
                note = f"served by {entry.name!r}: the default model {default!r} does not know {first.extra['word']!r}"
                return entry.manifest, picks, note
        raise


def counterfactual_plan(
    services: Services,
    *,
    model: str | None,
    choices: dict[str, Choice],
    seed: int,
    seeds: dict[str, int | None] | None,
    outputs: list[str],
    truncation: float | None,
) -> Plan:
    """One composed sample; open mechanisms get a label drawn from their seed."""
    by_mech = per_mechanism(seed, seeds)
    manifest, picks, note = _model_for(services, model, choices, by_mech)
    labels = np.array([[picks[m].id if picks[m].id is not None else 0 for m in MECHANISMS]], dtype=np.int64)
    seeds_row = np.array([[by_mech[m] for m in MECHANISMS]], dtype=np.int64)
    outs = tuple(dict.fromkeys(outputs))
    return Plan(manifest, labels, seeds_row, outs, check_truncation(manifest, truncation), picks, note)


def mechanism_plan(
    services: Services, *, model: str | None, mechanism: str, label: int | str, seed: int, truncation: float | None
) -> tuple[Plan, int]:
    """One mechanism's own output for a class; the other mechanisms are not run."""
    manifest = manifest_of(services, model or services.settings.default_model)
    label_id = fixed_label(manifest, mechanism, label)
    k = MECHANISMS.index(mechanism)
    labels = np.zeros((1, 3), dtype=np.int64)
    labels[0, k] = label_id
    seeds = np.full((1, 3), seed, dtype=np.int64)
    output = (OVERRIDE_KEY[mechanism],)
    return Plan(manifest, labels, seeds, output, check_truncation(manifest, truncation)), label_id


def samples_plan(
    services: Services,
    *,
    model: str | None,
    n: int,
    seed: int,
    start: int,
    policy: str,
    fixed: dict[str, int | str | None],
    cfs_per_shape: int,
    outputs: list[str],
    truncation: float | None,
) -> Plan:
    """Samples start..start+n-1 of the (seed, policy) stream: labels and seeds from (seed, index) alone."""
    limit = services.settings.max_samples
    if n > limit:
        raise InvalidInput(f"n: at most {limit} samples per request, got {n}", "n", allowed=f"1..{limit}")
    manifest = manifest_of(services, model or services.settings.default_model)
    labels = tuple(fixed_label(manifest, m, fixed.get(m)) for m in MECHANISMS)
    classes = tuple(len(manifest.vocabulary[m]) for m in MECHANISMS)
    try:
        p = sample_plan(seed, start, start + n, classes, policy, labels, cfs_per_shape)  # type: ignore[arg-type]
    except ValueError as exc:
        raise InvalidInput(str(exc), None) from exc
    outs = tuple(dict.fromkeys(outputs))
    return Plan(manifest, p.labels, p.seeds, outs, check_truncation(manifest, truncation))


def interpolation_plan(
    services: Services,
    *,
    model: str | None,
    mechanism: str,
    start: int | str,
    to: int | str,
    steps: int,
    choices: dict[str, Choice],
    seed: int,
    seeds: dict[str, int | None] | None,
    outputs: list[str] | None,
    truncation: float | None,
) -> tuple[Plan, Pick, Pick]:
    """A strip of `steps` images: `mechanism` moves from class `start` to `to`, noise and the rest fixed."""
    manifest = manifest_of(services, model or services.settings.default_model)
    first = resolve_label(services, manifest, mechanism, "from", start)
    last = resolve_label(services, manifest, mechanism, "to", to)
    if choices.get(mechanism) is not None:
        field = "bg" if mechanism == "background" else mechanism
        raise InvalidInput(
            f"{field}: {mechanism} is the interpolated mechanism; it takes `from` and `to`, leave `{field}` out", field
        )
    by_mech = per_mechanism(seed, seeds)
    picks = _picks(services, manifest, choices, by_mech, skip=mechanism)
    outs = tuple(dict.fromkeys(outputs or ["composite", OUTPUT_OF[mechanism]]))
    labels = [first.id if m == mechanism else (picks[m].id or 0) for m in MECHANISMS]
    seed_list = [by_mech[m] for m in MECHANISMS]

    def task(net, trunc: float | None, overrides: dict) -> dict[str, np.ndarray]:
        out = interpolate_classes(net, mechanism, labels, last.id, seed_list, steps, overrides, trunc)
        return {k: to_uint8(out[k]).numpy() for k in outs}

    label_rows = np.tile(np.array(labels, dtype=np.int64), (steps, 1))
    seed_rows = np.tile(np.array(seed_list, dtype=np.int64), (steps, 1))
    plan = Plan(manifest, label_rows, seed_rows, outs, check_truncation(manifest, truncation), picks, task=task)
    return plan, first, last


async def load(services: Services, name: str) -> LoadedModel:
    """The model in memory (loaded once per process, off the event loop)."""
    found = services.runner.loaded(name)
    if found is not None:
        return found
    try:
        return await asyncio.to_thread(services.runner.load, name)
    except NotInstalled as exc:
        raise ModelNotInstalled(str(exc), "model", install=exc.install) from exc


async def run(services: Services, plan: Plan) -> dict[str, np.ndarray]:
    """Queue the plan for the model owner and wait; Overloaded (with Retry-After) when the queue is full."""
    await load(services, plan.model)
    # an asset's first use decodes and resizes its image (a large one takes a while): not on the event loop
    assets = any(pick.asset is not None for pick in plan.picks.values())
    work = await asyncio.to_thread(plan.work, services) if assets else plan.work(services)
    try:
        future = services.runner.submit(work)
    except QueueFull as exc:
        wait = max(services.settings.retry_after_s, math.ceil(exc.retry_after_s))
        raise Overloaded(f"the model is busy: {exc}; retry later", wait) from exc
    return await asyncio.wrap_future(future)


def describe_labels(plan: Plan) -> dict[str, dict[str, Any]]:
    return {m: plan.picks[m].describe(plan.manifest.image_size) for m in MECHANISMS}
