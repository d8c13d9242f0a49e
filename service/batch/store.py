"""Where shards live: a local directory by default, or any fsspec URL (s3://, gs://, memory://...).

Writes are atomic: a reader never sees half a shard. Locally that is a temp file + rename; object
stores publish an object only when its upload completes. Two workers writing the same shard (a
redelivered chunk whose first worker was slow, not dead) write the same bytes, so the last wins safely.
"""

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec


def resolve_url(url: str | Path) -> str:
    """Local paths become absolute, so workers started in other directories agree on them."""
    text = str(url)
    if "://" in text:
        return text.rstrip("/")
    return str(Path(text).expanduser().resolve())


class ResultStore:
    def __init__(self, url: str | Path):
        self.url = resolve_url(url)
        self.fs, self.root = fsspec.core.url_to_fs(self.url)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))

    def path(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def put(self, relpath: str, data: bytes) -> None:
        target = self.path(relpath)
        parent = target.rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)
        if not self.local:
            self.fs.pipe_file(target, data)
            return
        tmp = f"{parent}/.{target.rsplit('/', 1)[1]}.{uuid.uuid4().hex}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def get(self, relpath: str) -> bytes:
        return self.fs.cat_file(self.path(relpath))

    def exists(self, relpath: str) -> bool:
        return self.fs.exists(self.path(relpath))

    def size(self, relpath: str) -> int:
        return int(self.fs.size(self.path(relpath)))

    def iter_bytes(self, relpath: str, block: int = 1 << 20) -> Iterator[bytes]:
        with self.fs.open(self.path(relpath), "rb") as f:
            while data := f.read(block):
                yield data

    def remove_tree(self, relpath: str) -> None:
        target = self.path(relpath)
        if self.fs.exists(target):
            self.fs.rm(target, recursive=True)
