"""A request gives the same bytes alone and among 32 concurrent ones (micro-batched with others)."""

import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

pytestmark = pytest.mark.slow


def requests() -> list[tuple[str, dict]]:
    """32 requests that share micro-batches in different ways: same key, other outputs, assets, mechanisms."""
    out: list[tuple[str, dict]] = []
    for i in range(20):
        labels = {"shape": i % 10, "texture": (3 * i) % 10, "bg": (7 * i) % 10}
        out.append(("/counterfactual", labels | {"seed": 1000 + i}))
    for i in range(4):
        out.append(("/counterfactual", {"shape": i, "texture": 5, "bg": "moon", "seed": 2000 + i}))
    for i, output in enumerate(["mask", "foreground", "background", "premask"]):
        out.append(("/counterfactual", {"shape": 2, "texture": 3, "bg": 4, "seed": 3000 + i, "outputs": [output]}))
    for i, mech in enumerate(["shape", "texture", "background"]):
        out.append((f"/mechanisms/{mech}", {"label": 8, "seed": 4000 + i}))
    out.append(("/samples", {"n": 3, "seed": 5000}))
    assert len(out) == 32
    return out


def batches_over_one(metrics: str) -> float:
    """Forward passes that took more than one sample (from the micro-batch size histogram)."""
    total = re.findall(r'cgn_microbatch_size_count\{model="mnist-test"\} (\S+)', metrics)
    single = re.findall(r'cgn_microbatch_size_bucket\{le="1.0",model="mnist-test"\} (\S+)', metrics)
    return sum(map(float, total)) - sum(map(float, single))


def test_alone_and_among_32_concurrent_requests_give_identical_bytes(url):
    reqs = requests()
    with httpx.Client(base_url=url, timeout=60) as client:
        alone = []
        for path, body in reqs:  # one at a time: each runs as its own micro-batch
            r = client.post(path, json=body)
            assert r.status_code == 200, r.text
            alone.append(r.content)
        before = batches_over_one(client.get("/metrics").text)

    def post(item):
        path, body = item
        with httpx.Client(base_url=url, timeout=60) as c:
            return c.post(path, json=body)

    with ThreadPoolExecutor(32) as pool:
        together = list(pool.map(post, reqs))
    assert all(r.status_code == 200 for r in together)
    for (path, body), a, t in zip(reqs, alone, together, strict=True):
        assert a == t.content, f"{path} {body}: bytes differ alone vs concurrent"
    after = batches_over_one(httpx.get(f"{url}/metrics").text)
    assert after > before, "the concurrent requests never shared a forward pass"
