"""`cgn models pull`: a real local HTTP server serves a generated (tiny) official checkpoint."""

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import torch

from cgn.pipeline import counterfactuals
from model_store import ModelStore
from model_store.download import DownloadError
from model_store.official import pull
from tests.imagenet.helpers import tiny_model, write_official_checkpoint


class Server:
    """Serves one file: plainly (with Range), cut short, or behind a Google-Drive-style confirm page."""

    def __init__(self, payload: bytes):
        self.payload = payload
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.cut_at: int | None = None  # send only this many bytes of the body, then hang up
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                url = urlparse(self.path)
                query = parse_qs(url.query)
                if url.path == "/uc" and query.get("confirm") != ["tok123"]:
                    return self._html(
                        '<html><body>Google Drive can\'t scan this file for viruses.<form id="download-form" '
                        'action="/uc" method="get"><input type="hidden" name="id" value="abc">'
                        '<input type="hidden" name="export" value="download">'
                        '<input type="hidden" name="confirm" value="tok123"></form></body></html>'
                    )
                if url.path == "/quota":
                    return self._html("<html><body>Too many users have viewed or downloaded this file</body></html>")
                self._file()

            def _html(self, text: str):
                body = text.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _file(self):
                start = 0
                rng = self.headers.get("Range")
                if rng:
                    start = int(rng.removeprefix("bytes=").split("-")[0])
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(server.payload) - 1}/{len(server.payload)}")
                else:
                    self.send_response(200)
                body = server.payload[start:]
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if server.cut_at is not None:
                    self.wfile.write(body[: server.cut_at])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> tuple[bytes, str]:
    path = write_official_checkpoint(tmp_path_factory.mktemp("ckpt") / "cgn.pth", tiny_model(seed=5))
    data = path.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def entry(url: str, sha256: str | None) -> dict:
    return {"name": "imagenet-cgn", "source": {"file": "cgn.pth", "url": url, "sha256": sha256}}


def nothing_installed(root: Path) -> None:
    store = ModelStore(root)
    assert not store.entry("imagenet-cgn").installed
    assert not (root / "imagenet-cgn").exists()
    leftovers = [p.name for p in root.iterdir() if p.name != ".downloads"] if root.exists() else []
    assert leftovers == []  # no half-written model directory either
    if (root / ".downloads").exists():
        assert not (root / ".downloads" / "cgn.pth").exists()  # never an unverified file under the final name


def test_pull_through_google_drive_confirm_page_installs_a_working_model(tmp_path, checkpoint):
    data, sha = checkpoint
    with Server(data) as server:
        path = pull("imagenet", tmp_path, entry=entry(f"{server.url}/uc?export=download&id=abc", sha))
    assert [p for p, _ in server.requests][1].startswith("/uc?id=abc&export=download&confirm=tok123")
    loaded = ModelStore(tmp_path).load("imagenet-cgn")
    assert loaded.path == path
    assert loaded.manifest.source["sha256"] == sha and loaded.manifest.source["pinned"] is True
    assert loaded.manifest.vocabulary["texture"][385] == "Indian elephant"
    assert not (tmp_path / ".downloads" / "cgn.pth").exists()  # the .pth is not kept by default
    labels, seeds = torch.tensor([[345, 385, 970], [1, 2, 3]]), torch.tensor([[1, 2, 3], [4, 5, 6]])
    want = counterfactuals(tiny_model(seed=5), labels, seeds)["composite"]
    assert torch.equal(counterfactuals(loaded.model, labels, seeds)["composite"], want)


def test_wrong_hash_is_refused_and_nothing_is_left(tmp_path, checkpoint):
    data, sha = checkpoint
    wrong = "0" * 64
    with (
        Server(data) as server,
        pytest.raises(DownloadError, match=f"sha256 {sha} does not match the expected {wrong}"),
    ):
        pull("imagenet", tmp_path, entry=entry(f"{server.url}/file", wrong))
    nothing_installed(tmp_path)
    assert list((tmp_path / ".downloads").iterdir()) == []  # the wrong file is deleted, not kept for resuming


def test_truncated_download_is_refused_then_resumes(tmp_path, checkpoint):
    data, sha = checkpoint
    with Server(data) as server:
        server.cut_at = len(data) // 3
        with pytest.raises(DownloadError, match="run the same command again to resume"):
            pull("imagenet", tmp_path, entry=entry(f"{server.url}/file", sha))
        nothing_installed(tmp_path)
        part = tmp_path / ".downloads" / "cgn.pth.part"
        kept = part.stat().st_size
        assert kept == len(data) // 3  # every byte that arrived is kept for the resume

        server.cut_at = None
        pull("imagenet", tmp_path, entry=entry(f"{server.url}/file", sha))
    assert server.requests[-1][1] == f"bytes={kept}-"  # resumed, not restarted
    assert ModelStore(tmp_path).entry("imagenet-cgn").installed
    assert not part.exists()


def test_html_instead_of_file_and_unpinned_hash_are_refused(tmp_path, checkpoint):
    data, sha = checkpoint
    with Server(data) as server:
        with pytest.raises(DownloadError, match="HTML page instead of the file"):
            pull("imagenet", tmp_path, entry=entry(f"{server.url}/quota", sha))
        with pytest.raises(DownloadError, match="--sha256 HEX"):
            pull("imagenet", tmp_path, entry=entry(f"{server.url}/file", None))
        assert len(server.requests) == 1  # refused before downloading anything
        nothing_installed(tmp_path)
        path = pull("imagenet", tmp_path, entry=entry(f"{server.url}/file", None), trust_first_download=True)
    source = ModelStore(tmp_path).load("imagenet-cgn").manifest.source
    assert path.name == "imagenet-cgn" and source["sha256"] == sha and source["pinned"] is False


def test_catalog_lists_imagenet_as_not_installed_with_its_install_command(tmp_path):
    e = ModelStore(tmp_path).entry("imagenet-cgn")
    assert not e.installed and e.install == "cgn models pull imagenet"
