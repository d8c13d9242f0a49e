"""The README's requests give the same bytes as the recorded ones: a refactoring of the inference path must
not change a single pixel.

Covered: the MNIST composite, each single mechanism, a 256-sample `sample_batch`, a 2,000-sample batch job's
shards (through Redis and a worker) and a tiny random ImageNet CGN at truncation 0.4, all through a real
`cgn serve`. Float kernels may round differently on another CPU instruction set, so the digests are kept per
torch version and CPU capability; `CGN_RECORD_BYTES=1` records them for the machine at hand.
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import httpx
import pytest
import torch
from cgn_client import CGNClient

sys.path.insert(0, str(Path(__file__).parents[1] / "service"))
from servers import random_imagenet_model  # noqa: E402

pytestmark = pytest.mark.slow

GOLDEN = Path(__file__).parent / "data" / "readme_bytes.json"
MODEL = "mnist-wildlife"


def machine_key() -> str:
    return f"torch-{torch.__version__}-{torch.backends.cpu.get_cpu_capability()}"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def readme_digests(url: str, tmp: Path) -> dict[str, str]:
    out: dict[str, str] = {}

    def post(path: str, body: dict) -> bytes:
        r = httpx.post(f"{url}{path}", json=body, timeout=120)
        assert r.status_code == 200, r.text
        return r.content

    out["counterfactual"] = sha(
        post("/counterfactual", {"model": MODEL, "shape": "seven", "texture": 2, "bg": "moon", "seed": 1})
    )
    for mech in ("shape", "texture", "background"):
        out[f"mechanism-{mech}"] = sha(post(f"/mechanisms/{mech}", {"model": MODEL, "label": 3, "seed": 7}))
    cow = {"model": "imagenet-cgn", "shape": "cow", "texture": "elephant", "bg": "moon", "truncation": 0.4}
    out["imagenet-truncation-0.4"] = sha(post("/counterfactual", cow | {"seed": 3}))

    client = CGNClient(url)
    batch = client.sample_batch(256, seed=0, model=MODEL)
    out["sample_batch-256"] = sha(batch.images.tobytes() + batch.labels.astype("int64").tobytes())
    job = client.submit_batch(model=MODEL, n=2000, cfs_per_shape=10, seed=0, format="npz", shard_size=500)
    job.wait(timeout=600)
    for path in job.download(tmp / "shards", labels=True):
        out[f"batch-2000/{path.name}"] = sha(path.read_bytes())
    return out


def test_readme_requests_keep_their_bytes(stack, tmp_path):
    random_imagenet_model(stack.model_root)
    stack.start_worker()
    stack.start_api()
    stack.client()  # waits for the API
    got = readme_digests(stack.url, tmp_path)
    assert len([k for k in got if k.startswith("batch-2000/shard-")]) == 4, sorted(got)
    recorded = json.loads(GOLDEN.read_text()) if GOLDEN.exists() else {}
    key = machine_key()
    if os.environ.get("CGN_RECORD_BYTES"):
        recorded[key] = got
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
    if key not in recorded:
        pytest.skip(f"no bytes recorded for {key} (recorded: {sorted(recorded)}); CGN_RECORD_BYTES=1 records them")
    differ = sorted(k for k in recorded[key].keys() | got.keys() if recorded[key].get(k) != got.get(k))
    assert not differ, f"these README requests changed their bytes: {differ}"
