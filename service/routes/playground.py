"""GET / and /static/...: the playground, a static page that uses only the public HTTP API.

The page (service/static/) is plain HTML, CSS and one JS file: no build step, nothing loaded from elsewhere
(deployments may be offline), and no route of its own beyond these files. It is open like /docs; with
CGN_API_KEYS set it asks for a key and sends it as the SDK does (`Authorization: Bearer`).
"""

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from service.problems import NotFound

STATIC = Path(__file__).resolve().parents[1] / "static"
MEDIA = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml"}  # fmt: skip
# everything the page loads comes from this server; images are data: and blob: URLs made by the page
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", "Content-Security-Policy": CSP}

router = APIRouter(include_in_schema=False)


def _file(name: str) -> FileResponse:
    path = STATIC / name
    if "/" in name or name.startswith(".") or path.suffix not in MEDIA or not path.is_file():
        raise NotFound(f"name: no static file {name!r}", "name")
    return FileResponse(path, media_type=MEDIA[path.suffix], headers=HEADERS)


@router.get("/")
def index() -> FileResponse:
    return _file("index.html")


@router.get("/static/{name}")
def static(name: str) -> FileResponse:
    return _file(name)
