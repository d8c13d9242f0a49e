"""The labels table of a job as CSV: one row per sample, computed from the spec (no shard needs reading)."""

import csv
import io
from collections.abc import Iterator

import numpy as np

from cgn.mechanisms import MECHANISMS
from service.batch.spec import BatchSpec, sample_key, samples

COLUMNS = ["key", "index", *MECHANISMS, *(f"{m}_name" for m in MECHANISMS), *(f"{m}_seed" for m in MECHANISMS)]


def csv_rows(spec: BatchSpec, explicit: np.ndarray | None = None, block: int = 10_000) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(COLUMNS)
    yield buf.getvalue()
    names = [spec.vocabulary.get(m, []) for m in MECHANISMS]
    for start in range(0, spec.n, block):
        p = samples(spec, start, min(spec.n, start + block), explicit)
        buf.seek(0)
        buf.truncate()
        for idx, y, s in zip(p.keys.tolist(), p.labels.tolist(), p.seeds.tolist(), strict=True):
            label_names = [names[m][y[m]] if y[m] < len(names[m]) else str(y[m]) for m in range(3)]
            writer.writerow([sample_key(idx), idx, *y, *label_names, *s])
        yield buf.getvalue()
