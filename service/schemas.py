"""Request and response bodies (pydantic at the edge only)."""

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

SEED_MAX = 2**63 - 1
Seed = Annotated[StrictInt, Field(ge=0, le=SEED_MAX, description="noise seed in [0, 2**63-1]")]
Output = Literal["composite", "mask", "premask", "foreground", "background"]
Format = Literal["png", "jpeg", "npy"]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]


class AssetRef(BaseModel):
    """An intervention: this image replaces the mechanism's output (a mask asset is read as grey levels)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"asset": "moon"}})
    asset: Annotated[StrictStr, Field(min_length=1, max_length=64)]


Choice = Annotated[
    StrictInt | Name | AssetRef,
    Field(description="a class id, a class name (or synonym), an asset name, or {'asset': NAME}"),
]


class MechanismSeeds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shape: Seed | None = None
    texture: Seed | None = None
    background: Seed | None = None


class CounterfactualRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"shape": "cow", "texture": "elephant", "bg": "moon"},
                {"model": "mnist-wildlife", "shape": 3, "texture": 7, "bg": {"asset": "moon"}, "seed": 42},
            ]
        },
    )
    model: Name | None = Field(None, description="model name; default: the configured default model")
    shape: Choice | None = Field(None, description="shape (mask) class; omitted: drawn from the seed")
    texture: Choice | None = Field(None, description="texture (foreground) class; omitted: drawn from the seed")
    background: Choice | None = Field(None, alias="bg", description="background class (alias: background)")
    seed: Seed = Field(0, description="the shared noise u of all three mechanisms")
    seeds: MechanismSeeds | None = Field(None, description="per-mechanism seeds overriding `seed`")
    truncation: Annotated[float, Field(gt=0, le=1)] | None = Field(None, description="BigGAN truncation (ImageNet)")
    outputs: Annotated[list[Output], Field(min_length=1, max_length=5)] = Field(
        default_factory=lambda: ["composite"], description="images to return; a binary body holds the first"
    )
    format: Format | None = Field(None, description="image encoding; default png (or what Accept asks for)")


class MechanismRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": 3, "seed": 7}]})
    model: Name | None = None
    label: StrictInt | Name = Field(..., description="class id or name for this mechanism")
    seed: Seed = 0
    truncation: Annotated[float, Field(gt=0, le=1)] | None = None
    format: Format | None = None


class SamplesRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={"examples": [{"n": 64, "seed": 1, "cfs_per_shape": 10}, {"n": 8, "shape": 3}]},
    )
    model: Name | None = None
    n: Annotated[StrictInt, Field(ge=1, description="samples; at most CGN_MAX_SAMPLES")]
    seed: Seed = Field(0, description="sample i's labels and seeds derive from (seed, i) only")
    start: Annotated[StrictInt, Field(ge=0, le=2**62)] = Field(
        0, description="index of the first sample: the response holds samples start..start+n-1 of the stream"
    )
    policy: Literal["uniform", "same"] = Field(
        "uniform", description="uniform: labels drawn independently per mechanism; same: one label for all three"
    )
    shape: StrictInt | Name | None = Field(None, description="fix the shape label of every sample")
    texture: StrictInt | Name | None = None
    background: StrictInt | Name | None = Field(None, alias="bg")
    cfs_per_shape: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = Field(
        1, description="counterfactuals per shape: k consecutive samples share shape label and noise"
    )
    truncation: Annotated[float, Field(gt=0, le=1)] | None = None
    outputs: Annotated[list[Output], Field(min_length=1, max_length=5)] = Field(default_factory=lambda: ["composite"])


class ResolvedLabel(BaseModel):
    id: int | None = Field(None, description="class id (None when an asset stands in)")
    name: str | None = None
    via: str = Field(..., description="id, name, alias, hypernym, drawn, or asset")
    asset: dict | None = Field(None, description="the asset used: name, original size, resized_to")


class CounterfactualResponse(BaseModel):
    model: str
    image_size: int
    format: Format
    media_type: str
    seeds: dict[str, int]
    labels: dict[str, ResolvedLabel]
    outputs: dict[str, str] = Field(..., description="base64 of each requested output")
    note: str | None = None
