"""Request and response bodies (pydantic at the edge only)."""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr

from cgn.noise import SEED_MAX

Seed = Annotated[StrictInt, Field(ge=0, le=SEED_MAX, description="noise seed in [0, 2**63-1]")]
Output = Literal["composite", "mask", "premask", "foreground", "background"]  # cgn.mechanisms.OUTPUTS
Format = Literal["png", "jpeg", "npy"]
Name = Annotated[StrictStr, Field(min_length=1, max_length=200)]
Truncation = Annotated[float, Field(gt=0, le=1, description="BigGAN truncation (ImageNet models)")]
Label = StrictInt | Name
LabelRow = Annotated[list[Label], Field(min_length=3, max_length=3)]  # [shape, texture, background]


class AssetRef(BaseModel):
    """An intervention: this image replaces the mechanism's output (a mask asset is read as grey levels)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"example": {"asset": "moon"}})
    asset: Annotated[StrictStr, Field(min_length=1, max_length=64)]


Choice = Annotated[
    StrictInt | Name | AssetRef,
    Field(description="a class id, a class name (or synonym), an asset name, or {'asset': NAME}"),
]


def _choice(value: "int | str | AssetRef | None") -> int | str | dict | None:
    return value.model_dump() if isinstance(value, AssetRef) else value


class MechanismSeeds(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shape: Seed | None = None
    texture: Seed | None = None
    background: Seed | None = None


class Composition(BaseModel):
    """What a request that composes the three mechanisms says of each (a counterfactual, an interpolation)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    model: Name | None = Field(None, description="model name; default: the configured default model")
    shape: Choice | None = Field(None, description="shape (mask) class or asset; omitted: drawn from the seed")
    texture: Choice | None = Field(None, description="texture (foreground) class or asset; omitted: drawn")
    background: Choice | None = Field(None, alias="bg", description="background class or asset (alias: background)")
    seed: Seed = Field(0, description="the shared noise u of all three mechanisms")
    seeds: MechanismSeeds | None = Field(None, description="per-mechanism seeds overriding `seed`")
    truncation: Truncation | None = Field(None, description="BigGAN truncation (ImageNet)")

    def plan_args(self) -> dict[str, Any]:
        choices = {"shape": self.shape, "texture": self.texture, "background": self.background}
        return {
            "model": self.model,
            "choices": {m: _choice(v) for m, v in choices.items()},
            "seed": self.seed,
            "seeds": self.seeds.model_dump() if self.seeds else None,
            "truncation": self.truncation,
        }


class CounterfactualRequest(Composition):
    model_config = ConfigDict(  # and Composition's: extra fields refused, `bg` or `background`
        json_schema_extra={
            "examples": [
                {"shape": "cow", "texture": "elephant", "bg": "moon"},
                {"model": "mnist-wildlife", "shape": 3, "texture": 7, "bg": {"asset": "moon"}, "seed": 42},
            ]
        },
    )
    outputs: Annotated[list[Output], Field(min_length=1, max_length=5)] = Field(
        default_factory=lambda: ["composite"], description="images to return; a binary body holds the first"
    )
    format: Format | None = Field(None, description="image encoding; default png (or what Accept asks for)")

    def plan_args(self) -> dict[str, Any]:
        return super().plan_args() | {"outputs": self.outputs}


class MechanismRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"label": 3, "seed": 7}]})
    model: Name | None = None
    label: Label = Field(..., description="class id or name for this mechanism")
    seed: Seed = 0
    truncation: Truncation | None = None
    format: Format | None = None

    def plan_args(self) -> dict[str, Any]:
        return {"model": self.model, "label": self.label, "seed": self.seed, "truncation": self.truncation}


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
    shape: Label | None = Field(None, description="fix the shape label of every sample")
    texture: Label | None = None
    background: Label | None = Field(None, alias="bg")
    cfs_per_shape: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = Field(
        1, description="counterfactuals per shape: k consecutive samples share shape label and noise"
    )
    truncation: Truncation | None = None
    outputs: Annotated[list[Output], Field(min_length=1, max_length=5)] = Field(default_factory=lambda: ["composite"])

    def plan_args(self) -> dict[str, Any]:
        fixed = {"shape": self.shape, "texture": self.texture, "background": self.background}
        return self.model_dump(include={"model", "n", "seed", "start", "policy", "cfs_per_shape", "outputs"}) | {
            "fixed": fixed,
            "truncation": self.truncation,
        }


INTERPOLATION_STEPS = (2, 16)  # the strip's fewest and most images
StripOutput = Literal["composite", "mask", "foreground", "background"]


class InterpolateRequest(Composition):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "mnist-wildlife", "mechanism": "texture", "from": 2, "to": 7, "steps": 8, "shape": 3},
                {"mechanism": "shape", "from": "three", "to": "eight", "bg": "moon", "seed": 5},
            ]
        },
    )
    mechanism: Literal["shape", "texture", "background"] = Field(..., description="the mechanism that moves")
    start: Label = Field(..., alias="from", description="class (id or name) at the first step")
    to: Label = Field(..., description="class (id or name) at the last step")
    steps: Annotated[StrictInt, Field(ge=INTERPOLATION_STEPS[0], le=INTERPOLATION_STEPS[1])] = Field(
        8, description=f"images in the strip, both ends included ({INTERPOLATION_STEPS[0]}..{INTERPOLATION_STEPS[1]})"
    )
    outputs: Annotated[list[StripOutput], Field(min_length=1, max_length=4)] | None = Field(
        None, description="rows of the strip; default: the composite and the moving mechanism's own output"
    )
    format: Literal["png", "jpeg"] | None = Field(None, description="image encoding; default png")

    def plan_args(self) -> dict[str, Any]:
        moving = {"mechanism": self.mechanism, "start": self.start, "to": self.to, "steps": self.steps}
        return super().plan_args() | moving | {"outputs": self.outputs}


class BatchRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {"model": "mnist-wildlife", "n": 100000, "seed": 1, "format": "wds", "shard_size": 1000},
                {"n": 5000, "shape": 3, "cfs_per_shape": 10, "outputs": ["composite", "mask"]},
                {"labels": [[3, "red-white stripes", 0], ["seven", 1, "sandy marble"]], "seed": 5},
            ]
        },
    )
    model: Name | None = Field(None, description="model name; default: the configured default model")
    n: Annotated[StrictInt, Field(ge=1)] | None = Field(None, description="samples; at most CGN_BATCH_MAX_N")
    seed: Seed = Field(0, description="sample i's labels and seeds derive from (seed, i) only")
    policy: Literal["uniform", "same"] = Field(
        "uniform", description="uniform: labels drawn independently per mechanism; same: one label for all three"
    )
    shape: Label | None = Field(None, description="fix the shape label of every sample (id or name)")
    texture: Label | None = Field(None, description="fix the texture label of every sample")
    background: Label | None = Field(None, alias="bg", description="fix the background label (alias: background)")
    labels: Annotated[list[LabelRow], Field(min_length=1)] | None = Field(
        None, description="explicit [shape, texture, background] per sample; n defaults to its length"
    )
    cfs_per_shape: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = Field(
        1, description="counterfactuals per shape: k consecutive samples share shape label and noise"
    )
    outputs: Annotated[list[Output], Field(min_length=1, max_length=5)] = Field(default_factory=lambda: ["composite"])
    shard_size: Annotated[StrictInt, Field(ge=1)] | None = Field(
        None, description="samples per shard; default CGN_BATCH_SHARD_SIZE"
    )
    format: Literal["npz", "wds"] = Field(
        "npz", description="npz: uint8 NCHW arrays + labels; wds: WebDataset tar of PNG + JSON per sample"
    )
    truncation: Truncation | None = Field(None, description="BigGAN truncation (ImageNet models); default: the model's")

    def plan_args(self) -> dict[str, Any]:
        fields = {"model", "n", "seed", "policy", "cfs_per_shape", "outputs", "shard_size", "format"}
        fixed = {"shape": self.shape, "texture": self.texture, "background": self.background}
        # labels as they are: a copy of a large table would be slow
        return self.model_dump(include=fields) | {"fixed": fixed, "labels": self.labels, "truncation": self.truncation}


# ---- responses: what a client really gets -------------------------------------------------------------------


class ResolvedLabel(BaseModel):
    id: int | None = Field(None, description="class id (None when an asset stands in)")
    name: str | None = None
    via: str = Field(..., description="id, name, alias, hypernym, drawn, or asset")
    asset: dict | None = Field(None, description="the asset used: name, original size, resized_to")


class InterpolateResponse(BaseModel):
    model: str
    mechanism: str
    steps: int
    t: list[float] = Field(..., description="the mixing weight of each step: 0 is `from`, 1 is `to`")
    image_size: int
    format: Literal["png", "jpeg"]
    media_type: str
    start: ResolvedLabel = Field(..., alias="from")
    to: ResolvedLabel
    labels: dict[str, ResolvedLabel] = Field(..., description="the two mechanisms that stay put")
    seeds: dict[str, int]
    outputs: dict[str, list[str]] = Field(..., description="per output, base64 images from `from` to `to`")


class CounterfactualResponse(BaseModel):
    model: str
    image_size: int
    format: Format
    media_type: str
    seeds: dict[str, int]
    labels: dict[str, ResolvedLabel]
    outputs: dict[str, str] = Field(..., description="base64 of each requested output")
    note: str | None = None


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: str = Field(..., description="machine-readable kind, e.g. invalid_input, unknown_name, overloaded")
    message: str = Field(..., description="what is wrong, starting with the field it concerns")
    field: str | None = Field(None, description="the request field at fault (dotted path)")
    allowed: Any = Field(None, description="the values the field accepts, when there is a short list")
    request_id: str | None = Field(None, description="this request's X-Request-ID, for the logs")


class ErrorBody(BaseModel):
    """The one error format of every 4xx and 5xx response."""

    error: ErrorDetail


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    status: Literal["ready"]
    default_model: str
    loaded: list[str] = Field(..., description="models loaded in memory")
    queue: int = Field(..., description="requests waiting for the model runner")


class MechanismInfo(BaseModel):
    classes: int


class ModelInfo(BaseModel):
    name: str
    installed: bool
    default: bool
    loaded: bool
    install: str | None = Field(None, description="the command that installs it (models not installed)")
    architecture: str | None = None
    image_size: int | None = None
    description: str | None = None
    mechanisms: dict[str, MechanismInfo] | None = None
    outputs: list[Output] | None = None
    truncation: bool | None = Field(None, description="whether the model takes a BigGAN truncation")


class AssetInfo(BaseModel):
    name: str
    width: int
    height: int
    sha256: str = Field(..., description="sha256 of the stored image file")
    builtin: bool
    description: str
    media_type: str = Field("image/png", description="how the image is stored and served: PNG, JPEG or WebP")
    bytes: int | None = Field(None, description="size of the stored image file")


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]
    assets: list[AssetInfo]


class DeletedAsset(BaseModel):
    name: str
    deleted: Literal[True]


class AssetList(BaseModel):
    assets: list[AssetInfo]


class ClassEntry(BaseModel):
    id: int
    name: str


class ResolvedName(BaseModel):
    id: int
    name: str
    via: str


class MechanismClasses(BaseModel):
    classes: list[ClassEntry] | None = Field(None, description="the vocabulary (without q)")
    matches: list[ClassEntry] | None = Field(None, description="names matching q")
    resolved: ResolvedName | None = Field(None, description="what q resolves to for this mechanism, if anything")
    suggestions: list[str] | None = Field(None, description="close names when q resolves to nothing")
    problem: str | None = None


class ClassesResponse(BaseModel):
    model: str
    query: str | None
    mechanisms: dict[str, MechanismClasses]
    asset: AssetInfo | None = Field(None, description="the asset q names, if any")


class ShardInfo(BaseModel):
    index: int
    start: int
    stop: int
    samples: int
    name: str
    url: str


class JobError(BaseModel):
    model_config = ConfigDict(extra="allow")
    shard: int
    worker: str
    message: str
    attempt: int
    at: float


class JobSpecView(BaseModel):
    seed: int
    policy: str
    fixed: dict[str, int | None]
    explicit_labels: bool
    cfs_per_shape: int
    outputs: list[Output]
    truncation: float | None


JobState = Literal["queued", "running", "completed", "failed", "cancelled"]


class BatchJob(BaseModel):
    """A job's status; the list view leaves out shards, errors and spec."""

    id: str
    state: JobState
    model: str
    n: int
    done: int
    failed: int
    progress: float = Field(..., description="done / n, in [0, 1]")
    format: Literal["npz", "wds"]
    shard_size: int
    num_shards: int
    done_shards: int
    created_at: float | None
    started_at: float | None
    finished_at: float | None
    expires_at: float | None
    url: str
    shards: list[ShardInfo] | None = None
    failed_shards: list[int] | None = None
    errors: list[JobError] | None = None
    labels_url: str | None = None
    spec: JobSpecView | None = None


class BatchJobList(BaseModel):
    jobs: list[BatchJob]
    total: int
    offset: int
    limit: int


class DeletedJob(BaseModel):
    id: str
    state: Literal["deleted"]
    deleted_at: float


class WorkerInfo(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    alive: bool = Field(..., description="heard from within the last 3 heartbeats")
    state: str | None = Field(None, description="idle, busy or stopping; lost once silent for 3 heartbeats")
    last_state: str | None = Field(None, description="a lost worker's last reported state")
    heartbeat_at: float | None = None


class WorkerList(BaseModel):
    workers: list[WorkerInfo]
    queued_samples: int
