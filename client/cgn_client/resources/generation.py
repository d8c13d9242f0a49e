"""Request builders of the generation endpoints: /counterfactual, /mechanisms/{mechanism}, /samples.

Each returns a `Call`; CGNClient and AsyncCGNClient send them. Generation is a pure function of the
request, so every Call here is idempotent (replaying one after a lost answer is safe).
"""

import io
from collections.abc import Sequence

import httpx
from PIL import Image

from cgn_client._base_client import Call, without_none
from cgn_client._payload import MEDIA_TYPE, decode_samples
from cgn_client._types import Counterfactual, SampleBatch

Label = int | str | dict | None


def png_image(response: httpx.Response) -> Image.Image:
    img = Image.open(io.BytesIO(response.content))
    img.load()
    return img


def counterfactual_request(
    shape: Label = None,
    texture: Label = None,
    bg: Label = None,
    *,
    seed: int = 0,
    seeds: dict[str, int] | None = None,
    outputs: Sequence[str] = ("composite",),
    model: str | None = None,
    truncation: float | None = None,
    format: str = "png",
) -> Call[Counterfactual]:
    """Each of shape/texture/bg: a class id, a class name, an asset name, or asset("NAME")."""
    body = {"model": model, "shape": shape, "texture": texture, "bg": bg, "seed": seed, "seeds": seeds}
    body |= {"truncation": truncation, "outputs": list(outputs), "format": format}
    return Call(
        "POST",
        "/counterfactual",
        lambda r: Counterfactual.from_json(r.json()),
        json=without_none(body),
        headers={"Accept": "application/json"},
        idempotent=True,
    )


def mechanism_request(
    mechanism: str,
    label: int | str,
    *,
    seed: int = 0,
    model: str | None = None,
    truncation: float | None = None,
) -> Call[Image.Image]:
    """One mechanism's output: "shape" (the mask), "texture" (foreground) or "background"."""
    body = without_none({"model": model, "label": label, "seed": seed, "truncation": truncation, "format": "png"})
    return Call("POST", f"/mechanisms/{mechanism}", png_image, json=body, idempotent=True)


def samples_request(
    n: int,
    *,
    seed: int = 0,
    start: int = 0,
    shape: int | str | None = None,
    texture: int | str | None = None,
    bg: int | str | None = None,
    policy: str = "uniform",
    cfs_per_shape: int = 1,
    model: str | None = None,
    outputs: Sequence[str] = ("composite",),
    truncation: float | None = None,
    as_torch: bool = False,
) -> Call[SampleBatch]:
    """Samples start..start+n-1 of the stream `seed` (the same samples a batch job with that seed holds)."""
    body = {"model": model, "n": n, "seed": seed, "start": start, "shape": shape, "texture": texture, "bg": bg}
    body |= {"policy": policy, "cfs_per_shape": cfs_per_shape, "outputs": list(outputs), "truncation": truncation}

    def parse(r: httpx.Response) -> SampleBatch:
        arrays, meta = decode_samples(r.content)
        return SampleBatch.from_arrays(arrays, meta, as_torch)

    return Call("POST", "/samples", parse, json=without_none(body), headers={"Accept": MEDIA_TYPE}, idempotent=True)
