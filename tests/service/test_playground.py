"""GET / and /static/...: the playground's files, open and self-contained, and out of the OpenAPI document."""

import re

import httpx
import pytest

from service.routes.playground import STATIC

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keyed(thread_server):
    return thread_server(api_keys=["secret"]).url


def test_the_page_and_its_files_are_open_while_the_api_needs_a_key(keyed):
    page = httpx.get(f"{keyed}/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-cache"
    for name, media in (
        ("playground.js", "text/javascript"),
        ("playground.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
    ):
        r = httpx.get(f"{keyed}/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media), name
    assert httpx.get(f"{keyed}/models").status_code == 401  # the page asks for the key, the API checks it
    assert httpx.get(f"{keyed}/models", headers={"Authorization": "Bearer secret"}).status_code == 200


def test_everything_the_page_loads_is_served_here(keyed):
    html = httpx.get(f"{keyed}/").text
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs, "no references found"
    for ref in refs:
        assert not re.match(r"^[a-z]+:|^//", ref), f"the page loads {ref} from elsewhere"
        assert httpx.get(f"{keyed}/{ref}").status_code == 200, ref
    js = (STATIC / "playground.js").read_text()
    assert not re.search(r"https?://", js), "the script refers to another origin"


@pytest.mark.parametrize("name", ["nope.js", "..%2Fapp.py", ".hidden.js", "index.py", "playground.js.map"])
def test_other_names_are_404_in_the_error_format(keyed, name):
    r = httpx.get(f"{keyed}/static/{name}")
    assert r.status_code == 404
    assert r.json()["error"]["type"] == "not_found"


def test_the_page_is_not_an_api_operation(keyed):
    paths = httpx.get(f"{keyed}/openapi.json").json()["paths"]
    assert "/" not in paths and not any(p.startswith("/static") for p in paths)
    assert "/interpolate" in paths


def test_the_package_data_ships_the_static_files():
    import tomllib
    from pathlib import Path

    pyproject = tomllib.loads((Path(__file__).parents[2] / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["*"]
    suffixes = {p.removeprefix("*") for p in patterns}
    assert {f.suffix for f in STATIC.iterdir()} <= suffixes
