"""POST /batches bodies parsed in slices give what one pydantic call on the whole body gives: value or errors."""

import json
import threading
import time

import numpy as np
import pytest
from pydantic import ValidationError

from model_store import ModelStore
from service.batch import body as batch_body
from service.batch.body import InvalidBody, parse_batch_request
from service.batch.jobs import explicit_labels
from service.problems import InvalidInput, UnknownNameError
from service.schemas import BatchRequest


@pytest.fixture
def tiny_slices(monkeypatch):
    """Every body is sliced, a few rows per slice, and scanned in blocks of a few bytes."""
    monkeypatch.setattr(batch_body, "WHOLE", 0)
    monkeypatch.setattr(batch_body, "SLICE", 24)
    monkeypatch.setattr(batch_body, "SCAN_BLOCK", 5)


def reference(body: bytes):
    try:
        return BatchRequest.model_validate_json(body)
    except ValidationError as exc:
        return [(tuple(e["loc"]), e["type"]) for e in exc.errors()]


def sliced(body: bytes):
    try:
        req, table = parse_batch_request(body)
    except InvalidBody as exc:
        return [(tuple(e["loc"]), e["type"]) for e in exc.errors]
    assert req.labels is None and (table is None or table.shape == (len(table), 3))
    return req.model_copy(update={"labels": None if table is None else table.tolist()})


ROWS = [
    [1, 2, 3],
    ["seven", "a ] , [ b", 'quo"te\\\\'],
    [0, 'x"],[y', 9],
    ["back\\", 'sl\\"],["ash', 9],
    ["{", "}", ":"],
]
BODIES = [
    {"labels": ROWS, "seed": 3, "format": "wds"},
    {"seed": 3, "labels": ROWS * 7, "bg": 2},
    {"labels": ROWS + [[1, 2]], "seed": 1},
    {"labels": ROWS + [[1, 2, 3, 4], [1.5, 2, 3], [True, 1, 1]] + ROWS, "seed": -1, "colour": 3},
    {"labels": [[[1], [2], 3]] + ROWS},
    {"labels": ROWS, "n": "x", "outputs": ["depth"]},
    {"labels": [], "seed": 1},
    {"labels": None, "n": 5},
    {"labels": {"a": [1, 2, 3]}, "n": 5},
    {"n": 5, "shape": "a,b[c]"},
    {"labels": [["\\" * k + '"],[', "\\" * (k + 1), 1] for k in range(12)] + ROWS},
]


@pytest.mark.parametrize("data", BODIES)
def test_sliced_parse_is_the_whole_body_parse(tiny_slices, monkeypatch, data):
    whole, parse_whole = [], batch_body._whole
    monkeypatch.setattr(batch_body, "_whole", lambda body: whole.append(body) or parse_whole(body))
    for text in (json.dumps(data), json.dumps(data, indent=2), json.dumps(data, separators=(",", ":"))):
        body = text.encode()
        assert sliced(body) == reference(body), text
    if isinstance(data.get("labels"), list) and data["labels"]:  # valid JSON with rows: no whole-body parse
        assert not whole


@pytest.mark.parametrize(
    "text",
    [
        '{"labels": [[1,2,3],,[4,5,6]], "n": 2}',
        '{"labels": [[1,2,3],[4,5,6],], "n": 2}',
        '{"labels": [[1,2,3] [4,5,6]], "n": 2}',
        '{"labels": [[1,2,3],[4,5,6]]',
        '{"labels": [[1,2,3],[4,5,6]]} trailing',
        '{"labels": [[1,2,3],[4,5,6]], "labels": [[7,8,9]]}',
        '{"labels": [[1,2,"3],[4,5,6]]}',
        "[[1,2,3]]",
        "",
        "   ",
        '{"labels": [["\\u005d",2,3],[4,5,6]]}',
    ],
)
def test_broken_bodies_give_the_whole_body_errors(tiny_slices, text):
    got = sliced(text.encode())
    if not text.strip():
        assert got == [((), "missing")]
    else:
        assert got == reference(text.encode()), text


def test_a_large_body_is_parsed_in_short_steps():
    """No step of a 7 MB parse holds the GIL for long: a ticking thread is rarely kept waiting 100 ms (a
    garbage-collector pass or the OS may pause it once or twice), never 500 ms; one whole-body parse would
    hold it for over a second."""
    rows = np.random.default_rng(0).integers(0, 10, (900_000, 3))
    body = json.dumps({"labels": rows.tolist(), "seed": 1}, separators=(",", ":")).encode()
    manifest = ModelStore(None).entry("mnist-wildlife").manifest
    gaps, stop = [], threading.Event()

    def tick() -> None:
        last = time.perf_counter()
        while not stop.is_set():
            time.sleep(0.001)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = threading.Thread(target=tick)
    ticker.start()
    try:
        req, labels = parse_batch_request(body)
        table = explicit_labels(manifest, labels)
    finally:
        stop.set()
        ticker.join()
    assert req.seed == 1 and labels.shape == (900_000, 3)
    assert np.array_equal(table, rows)
    long = sorted(g for g in gaps if g > 0.1)
    assert len(long) <= 2 and max(gaps) < 0.5, f"the ticker waited {long} s"


def test_explicit_labels_resolve_each_value_once_and_name_the_first_bad_cell():
    manifest = ModelStore(None).entry("mnist-wildlife").manifest
    rows = [[3, "red-white stripes", 0], ["seven", 1, "sandy marble"]] * 20_000
    table = explicit_labels(manifest, rows)
    assert table[:2].tolist() == [[3, 0, 0], [7, 1, 1]] and len(table) == 40_000
    bad = rows + [[1, 2, "nowhere"], [1, "nothing", "nowhere"]]
    with pytest.raises(UnknownNameError) as exc:
        explicit_labels(manifest, bad)
    assert exc.value.field == "labels.40000.2" and exc.value.message.startswith("labels[40000][2] (background): ")
    with pytest.raises(InvalidInput) as exc:
        explicit_labels(manifest, [[1, 2, 3]] * 30_000 + [[1, 99, 3]])
    assert exc.value.field == "labels.30000.1"
    assert explicit_labels(manifest, [["3", 3, 3]]).tolist() == [[3, 3, 3]]  # the name "3" and the id 3
