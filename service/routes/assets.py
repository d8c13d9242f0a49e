"""POST /assets, GET /assets, GET /assets/{name}: images that replace a mechanism's output."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from service.assets import AssetError, decode_upload
from service.deps import get_services, require_api_key
from service.problems import Conflict, InvalidInput, NotFound, TooLarge
from service.schemas import AssetInfo, AssetList
from service.services import Services

router = APIRouter(tags=["assets"], dependencies=[Depends(require_api_key)])


@router.post(
    "/assets",
    status_code=201,
    summary="Store an uploaded image under a name; use it as {'asset': NAME} or a plain word",
    response_model=AssetInfo,
    responses={
        409: {"description": "the name is a built-in asset"},
        413: {"description": "file too large"},
        422: {"description": "not an image, bad name, too many pixels, decompression bomb"},
    },
)
async def upload(
    name: Annotated[str, Form(min_length=1, max_length=64, description="lower-case name, e.g. mars")],
    file: Annotated[UploadFile, File(description="PNG, JPEG, WEBP, BMP or GIF")],
    description: Annotated[str, Form(max_length=500)] = "",
    services: Services = Depends(get_services),
) -> dict:
    s = services.settings
    data = await file.read(s.max_body_bytes + 1)
    if len(data) > s.max_body_bytes:
        raise TooLarge(f"file: larger than {s.max_body_bytes} bytes", "file")
    if name in ("moon",) or (services.assets.get(name) is not None and services.assets.get(name).builtin):
        raise Conflict(f"name: {name!r} is a built-in asset and cannot be replaced", "name")
    try:
        img = await run_in_threadpool(decode_upload, data, s.max_asset_side, s.max_asset_pixels)
        asset = await run_in_threadpool(services.assets.put, name, img, description)
    except AssetError as exc:
        raise InvalidInput(str(exc), exc.field, allowed=exc.allowed) from exc
    return asset.info()


@router.get("/assets", summary="Built-in and uploaded assets", response_model=AssetList)
def list_assets(services: Services = Depends(get_services)) -> dict:
    return {"assets": [a.info() for a in map(services.assets.get, services.assets.names()) if a is not None]}


@router.get(
    "/assets/{name}",
    summary="An asset's image (PNG)",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}, 404: {"description": "unknown asset"}},
)
def get_asset(name: str, services: Services = Depends(get_services)) -> Response:
    asset = services.assets.get(name)
    if asset is None:
        raise NotFound(f"name: unknown asset {name!r}", "name", allowed=services.assets.names())
    return Response(services.assets.png(name), media_type="image/png")
