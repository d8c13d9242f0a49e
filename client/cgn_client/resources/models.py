"""`client.models`: the installed models and their class names. Calling it lists the models."""

from typing import Any

from cgn_client._base_client import AsyncTransport, Call, SyncTransport, json_body, without_none


def list_request() -> Call[dict[str, Any]]:
    """GET /models: {"models": [...], "default": name}."""
    return Call("GET", "/models", json_body)


def retrieve_request(name: str) -> Call[dict[str, Any]]:
    return Call("GET", f"/models/{name}", json_body)


def classes_request(name: str, q: str | None = None, mechanism: str | None = None) -> Call[dict[str, Any]]:
    return Call("GET", f"/models/{name}/classes", json_body, params=without_none({"q": q, "mechanism": mechanism}))


class Models:
    """`client.models()` (or `.list()`): the models; `.retrieve(name)`, `.default()`, `.classes(q, model=...)`."""

    def __init__(self, transport: SyncTransport):
        self._transport = transport

    def __call__(self) -> list[dict[str, Any]]:
        return self.list()

    def list(self) -> list[dict[str, Any]]:
        return self._transport.send(list_request())["models"]

    def default(self) -> str:
        """The name of the model requests without `model` get."""
        return self._transport.send(list_request())["default"]

    def retrieve(self, name: str) -> dict[str, Any]:
        return self._transport.send(retrieve_request(name))

    def classes(self, q: str | None = None, *, model: str | None = None, mechanism: str | None = None) -> dict:
        """Class names per mechanism of `model` (default: the server's default); with q, the matches and how q
        resolves."""
        return self._transport.send(classes_request(model or self.default(), q, mechanism))


class AsyncModels:
    """The asyncio twin of Models: `await client.models()`, `await client.models.retrieve(name)`..."""

    def __init__(self, transport: AsyncTransport):
        self._transport = transport

    async def __call__(self) -> list[dict[str, Any]]:
        return await self.list()

    async def list(self) -> list[dict[str, Any]]:
        return (await self._transport.send(list_request()))["models"]

    async def default(self) -> str:
        return (await self._transport.send(list_request()))["default"]

    async def retrieve(self, name: str) -> dict[str, Any]:
        return await self._transport.send(retrieve_request(name))

    async def classes(self, q: str | None = None, *, model: str | None = None, mechanism: str | None = None) -> dict:
        return await self._transport.send(classes_request(model or await self.default(), q, mechanism))
