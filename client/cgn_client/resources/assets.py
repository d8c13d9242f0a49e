"""`client.assets`: images to use instead of a mechanism's class (bg="moon", or asset("moon"))."""

import io
import os
from pathlib import Path
from typing import Any

from PIL import Image

from cgn_client._base_client import AsyncTransport, Call, SyncTransport, json_body
from cgn_client.resources.generation import png_image

ImageInput = str | os.PathLike | bytes | bytearray | Image.Image


def upload_request(name: str, image: ImageInput, description: str = "") -> Call[dict[str, Any]]:
    """POST /assets. Idempotent: uploading the same name again replaces the asset with the same image."""
    if isinstance(image, Image.Image):
        buf = io.BytesIO()
        image.save(buf, "PNG")
        data = buf.getvalue()
    elif isinstance(image, bytes | bytearray):
        data = bytes(image)
    else:
        data = Path(image).read_bytes()
    files = {"file": (f"{name}.img", data, "application/octet-stream")}
    return Call(
        "POST", "/assets", json_body, files=files, data={"name": name, "description": description}, idempotent=True
    )


def list_request() -> Call[dict[str, Any]]:
    return Call("GET", "/assets", json_body)


def image_request(name: str) -> Call[Image.Image]:
    return Call("GET", f"/assets/{name}", png_image)


def delete_request(name: str) -> Call[dict[str, Any]]:
    return Call("DELETE", f"/assets/{name}", json_body)


class Assets:
    """`client.assets.upload(name, image)`, `.list()`, `.image(name)` (a PIL image), `.delete(name)`."""

    def __init__(self, transport: SyncTransport):
        self._transport = transport

    def upload(self, name: str, image: ImageInput, description: str = "") -> dict[str, Any]:
        """`image`: a path, encoded bytes (PNG, JPEG...) or a PIL image."""
        return self._transport.send(upload_request(name, image, description))

    def list(self) -> list[dict[str, Any]]:
        return self._transport.send(list_request())["assets"]

    def image(self, name: str) -> Image.Image:
        return self._transport.send(image_request(name))

    def delete(self, name: str) -> dict[str, Any]:
        """Delete an uploaded asset; NotFoundError if there is none, ConflictError for a built-in one."""
        return self._transport.send(delete_request(name))


class AsyncAssets:
    """The asyncio twin of Assets."""

    def __init__(self, transport: AsyncTransport):
        self._transport = transport

    async def upload(self, name: str, image: ImageInput, description: str = "") -> dict[str, Any]:
        return await self._transport.send(upload_request(name, image, description))

    async def list(self) -> list[dict[str, Any]]:
        return (await self._transport.send(list_request()))["assets"]

    async def image(self, name: str) -> Image.Image:
        return await self._transport.send(image_request(name))

    async def delete(self, name: str) -> dict[str, Any]:
        return await self._transport.send(delete_request(name))
