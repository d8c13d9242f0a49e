"""POST /assets, GET /assets, GET and DELETE /assets/{name}: images that replace a mechanism's output."""

from typing import Annotated

from fastapi import APIRouter, Depends, File, Form, Response, UploadFile
from starlette.concurrency import run_in_threadpool

from service.assets import MEDIA_TYPES, AssetError, AssetQuotaExceeded, check_upload
from service.deps import ServicesDep, require_api_key
from service.problems import Conflict, InvalidInput, NotFound, TooLarge
from service.responses import json_view
from service.schemas import AssetInfo, AssetList, DeletedAsset
from service.services import Services

router = APIRouter(tags=["assets"], dependencies=[Depends(require_api_key)])


def _refuse_builtin(services: Services, name: str, action: str) -> None:
    """409 for a built-in asset, before any work on the request."""
    asset = services.assets.get(name)
    if asset is not None and asset.builtin:
        raise Conflict(f"name: {name!r} is a built-in asset and cannot be {action}", "name")


@router.post(
    "/assets",
    status_code=201,
    summary="Store an uploaded image under a name; use it as {'asset': NAME} or a plain word",
    response_model=AssetInfo,
    responses={
        409: {"description": "the name is a built-in asset, or CGN_MAX_ASSETS uploads are stored"},
        413: {"description": "file too large, or the uploads would take more than CGN_MAX_ASSET_BYTES"},
        422: {"description": "not an image, bad name, too many pixels, decompression bomb"},
    },
)
async def upload(
    services: ServicesDep,
    name: Annotated[str, Form(min_length=1, max_length=64, description="lower-case name, e.g. mars")],
    file: Annotated[UploadFile, File(description="PNG, JPEG, WEBP, BMP or GIF")],
    description: Annotated[str, Form(max_length=500)] = "",
) -> dict:
    s = services.settings
    data = await file.read(s.max_body_bytes + 1)
    if len(data) > s.max_body_bytes:
        raise TooLarge(f"file: larger than {s.max_body_bytes} bytes", "file")
    _refuse_builtin(services, name, "replaced")
    try:
        checked = await run_in_threadpool(check_upload, data, s.max_asset_side, s.max_asset_pixels)
        asset = await run_in_threadpool(services.assets.put, name, checked, description)
    except AssetQuotaExceeded as exc:
        kind = TooLarge if exc.setting == "CGN_MAX_ASSET_BYTES" else Conflict
        raise kind(str(exc), exc.field, setting=exc.setting, limit=exc.limit) from exc
    except AssetError as exc:
        raise InvalidInput(str(exc), exc.field, allowed=exc.allowed) from exc
    return asset.info()


@router.get("/assets", summary="Built-in and uploaded assets", response_model=AssetList)
def list_assets(services: ServicesDep) -> dict:
    return {"assets": [a.info() for a in map(services.assets.get, services.assets.names()) if a is not None]}


@router.get(
    "/assets/{name}",
    summary="An asset's image, as stored: a PNG, JPEG or WebP upload as uploaded, other formats as PNG",
    response_class=Response,
    responses={200: {"content": {t: {} for t in MEDIA_TYPES.values()}}, 404: {"description": "unknown asset"}},
)
def get_asset(name: str, services: ServicesDep) -> Response:
    asset = services.assets.get(name)
    if asset is None:
        raise NotFound(f"name: unknown asset {name!r}", "name", allowed=services.assets.names())
    return Response(services.assets.data(asset), media_type=asset.media_type)


@router.delete(
    "/assets/{name}",
    summary="Delete an uploaded asset (built-in ones stay); requests already under way finish with it",
    **json_view(DeletedAsset),
    responses={404: {"description": "unknown asset"}, 409: {"description": "a built-in asset"}},
)
def delete_asset(name: str, services: ServicesDep) -> dict:
    _refuse_builtin(services, name, "deleted")
    if services.assets.delete(name) is None:
        raise NotFound(f"name: unknown asset {name!r}", "name", allowed=services.assets.names())
    return {"name": name, "deleted": True}
