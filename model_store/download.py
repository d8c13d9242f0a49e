"""Resumable, verified downloads of official weights (Google Drive included).

The file grows as `<dest>.part` beside its destination; an interrupted download resumes from there with an
HTTP Range request, and only a file whose sha256 matches is renamed into place. A file with the wrong hash
is deleted. Google Drive answers large files with an HTML "can't scan for viruses" page first: the
confirm token (a form, a cookie, or a `confirm=` link in that page) is followed to the real file.
"""

import os
import re
from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode, urljoin

import httpx

from model_store.manifest import sha256_file

MAX_CONFIRM_HOPS = 3


class DownloadError(ValueError):
    """A download that did not produce a verified file; the message says what to do."""


def gdrive_url(file_id: str) -> str:
    return f"https://drive.google.com/uc?export=download&id={file_id}"


class _ConfirmForm(HTMLParser):
    """Collects the action and hidden inputs of the download form on Google Drive's warning page."""

    def __init__(self):
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._in_form = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form" and (a.get("id") == "download-form" or "download" in (a.get("action") or "")):
            self.action, self._in_form = a.get("action"), True
        elif tag == "input" and self._in_form and a.get("name"):
            self.fields[a["name"]] = a.get("value") or ""

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False


def confirm_url(url: str, page: str, cookies: httpx.Cookies) -> str | None:
    """The URL that skips Google Drive's warning page, or None when the page is not one."""
    form = _ConfirmForm()
    form.feed(page)
    if form.action and "confirm" in form.fields:
        return urljoin(url, form.action) + "?" + urlencode(form.fields)
    token = next((v for k, v in cookies.items() if k.startswith("download_warning")), None)
    if token is None:
        m = re.search(r"confirm=([0-9A-Za-z_\-]+)", page)
        token = m.group(1) if m else None
    if token is None:
        return None
    return url + ("&" if "?" in url else "?") + urlencode({"confirm": token})


def download(
    url: str,
    dest: Path,
    sha256: str | None,
    client: httpx.Client | None = None,
    progress: Callable[[int, int | None], None] | None = None,
) -> Path:
    """Download `url` to `dest`, resuming a previous `.part`; verify sha256 when given; return dest."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    own = client is None
    client = client or httpx.Client(follow_redirects=True, timeout=httpx.Timeout(30.0, read=300.0))
    try:
        _fetch(client, url, part, progress)
    finally:
        if own:
            client.close()
    actual = sha256_file(part)
    if sha256 is not None and actual != sha256.lower():
        part.unlink()
        raise DownloadError(
            f"{url}: sha256 {actual} does not match the expected {sha256.lower()}; the download was deleted "
            "(a changed or corrupted file: nothing was installed)"
        )
    os.replace(part, dest)
    return dest


def _fetch(client: httpx.Client, url: str, part: Path, progress) -> None:
    target = url
    for _ in range(MAX_CONFIRM_HOPS + 1):
        offset = part.stat().st_size if part.exists() else 0
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with client.stream("GET", target, headers=headers) as response:
                if response.status_code == 416 and offset:  # nothing left past our .part: start over
                    part.unlink()
                    continue
                if response.status_code not in (200, 206):
                    raise DownloadError(f"{url}: the server answered HTTP {response.status_code}")
                if response.headers.get("content-type", "").startswith("text/html"):
                    page = response.read().decode("utf-8", "replace")
                    nxt = confirm_url(str(response.url), page, client.cookies)
                    if nxt is None:
                        raise DownloadError(
                            f"{url}: got an HTML page instead of the file (link broken, or the host's download "
                            "quota exceeded): try again later"
                        )
                    target = nxt
                    continue
                _write_body(url, response, part, offset, progress)
                return
        except httpx.HTTPError as exc:
            have = part.stat().st_size if part.exists() else 0
            raise DownloadError(
                f"{url}: download interrupted after {have} bytes ({exc.__class__.__name__}); "
                "run the same command again to resume"
            ) from exc
    raise DownloadError(f"{url}: still no file after {MAX_CONFIRM_HOPS} confirmation pages")


def _write_body(url: str, response: httpx.Response, part: Path, offset: int, progress) -> None:
    resumed = response.status_code == 206
    if resumed:
        m = re.match(r"bytes (\d+)-", response.headers.get("content-range", ""))
        if not m or int(m.group(1)) != offset:
            raise DownloadError(
                f"{url}: the server resumed at the wrong offset ({response.headers.get('content-range')})"
            )
    else:
        offset = 0
    length = response.headers.get("content-length")
    total = offset + int(length) if length is not None else None
    done = offset
    with open(part, "ab" if resumed else "wb") as f:
        for block in response.iter_bytes():  # unbuffered: keep every byte that arrived
            f.write(block)
            done += len(block)
            if progress:
                progress(done, total)
        f.flush()
        os.fsync(f.fileno())
    if total is not None and done != total:
        raise DownloadError(
            f"{url}: download truncated at {done} of {total} bytes; run the same command again to resume"
        )
