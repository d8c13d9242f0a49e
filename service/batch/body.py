"""A POST /batches body -> BatchRequest, in steps that each hold the GIL for milliseconds.

pydantic parses and validates a body in one call that holds the GIL throughout: for a 7 MB body of 900k
explicit label rows that is about a second, and a worker thread does not help, since the event loop needs
the GIL too. So a large body's `labels` array is cut at its row boundaries (found with numpy; strings,
escapes and nesting respected) and validated in slices of about SLICE bytes, and the rest of the body is
validated as usual with `labels: null`. The result, and every error, is what one pydantic call on the whole
body gives (errors located in the whole body, e.g. labels.850000.1); a body that is not valid JSON is
handed to pydantic whole, for its error message.

The rows come back as one (n, 3) object array, not n lists, and a slice is first read as tuples (which
the garbage collector stops tracking at once): a million lists that live on would make the collector's
full passes, which stop every thread, take hundreds of milliseconds.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import TypeAdapter, ValidationError

from service.schemas import BatchRequest, Label, LabelRow

WHOLE = 256 * 1024  # bodies up to this size are validated in one call (a few ms)
SLICE = 64 * 1024  # bytes of label rows per validation step

_ROWS = TypeAdapter(list[LabelRow])
_TUPLES = TypeAdapter(list[tuple[Label, Label, Label]])  # accepts what _ROWS accepts; its errors are not the same
_FIELD_ORDER = {
    name: i for i, (attr, info) in enumerate(BatchRequest.model_fields.items()) for name in (attr, info.alias) if name
}


class InvalidBody(ValueError):
    """The body is no valid BatchRequest; `errors` are pydantic's, each `loc` from the body's root."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(f"{len(errors)} validation errors")
        self.errors = errors


def parse_batch_request(body: bytes) -> tuple[BatchRequest, np.ndarray | None]:
    """-> the request with `labels` left out, and its label rows as an (n, 3) object array (None without)."""
    if not body.strip():
        raise InvalidBody([{"type": "missing", "loc": (), "msg": "Field required", "input": None}])
    if len(body) > WHOLE:
        labels = _labels_array(body)
        if labels is not None:
            parsed = _sliced(body, *labels)
            if parsed is not None:
                return parsed
    req = _whole(body)
    if req.labels is None:
        return req, None
    return req.model_copy(update={"labels": None}), _table(req.labels)


def _table(rows: list[list[Any]]) -> np.ndarray:
    table = np.empty((len(rows), 3), dtype=object)
    table[:] = rows
    return table


def _errors(exc: ValidationError, prefix: tuple = (), offset: int = 0) -> list[dict[str, Any]]:
    out = []
    for e in exc.errors(include_url=False):
        loc = tuple(e["loc"])
        if offset and loc:
            loc = (loc[0] + offset, *loc[1:])
        out.append({**e, "loc": prefix + loc})
    return out


def _whole(body: bytes) -> BatchRequest:
    try:
        return BatchRequest.model_validate_json(body)
    except ValidationError as exc:
        raise InvalidBody(_errors(exc)) from None


SCAN_BLOCK = 1 << 20  # bytes per step of the structure scan


@dataclass
class _Structure:
    """Positions in a JSON text, outside strings, by nesting depth (1: inside the top-level value)."""

    commas1: list[np.ndarray] = field(default_factory=list)
    colons1: list[np.ndarray] = field(default_factory=list)
    commas2: list[np.ndarray] = field(default_factory=list)
    closes1: list[np.ndarray] = field(default_factory=list)  # closing brackets back at depth 1
    end: int | None = None  # the first closing bracket back at depth 0


def _scan(body: bytes) -> _Structure:
    """One pass over the text in blocks (short numpy steps, little memory), carrying string and depth state."""
    b = np.frombuffer(body, dtype=np.uint8)
    out = _Structure()
    in_string, depth0, backslashes = 0, 0, 0  # state at the block start; backslashes: the run just before it
    for lo in range(0, len(b), SCAN_BLOCK):
        x = b[lo : lo + SCAN_BLOCK]
        quote = x == ord('"')
        backslash = x == ord("\\")
        if backslashes or backslash.any():  # a quote after an odd run of backslashes is escaped
            q = np.flatnonzero(quote)
            if len(q):
                index = np.arange(len(x), dtype=np.int32)
                last_plain = np.maximum.accumulate(np.where(backslash, np.int32(-1), index))
                before = last_plain[np.maximum(q - 1, 0)]
                run = np.where(before >= 0, q - 1 - before, q + backslashes)  # q - 1 - (-1): back to the block start
                run[q == 0] = backslashes
                quote[q[run % 2 == 1]] = False
            plain = np.flatnonzero(~backslash)
            backslashes = len(x) - 1 - int(plain[-1]) if len(plain) else backslashes + len(x)
        inside = (np.cumsum(quote, dtype=np.int32) + in_string) & 1  # after each byte
        in_string = int(inside[-1])
        outside = inside == 0  # right for brackets, commas and colons (never quotes themselves)
        opens = ((x == ord("[")) | (x == ord("{"))) & outside
        closes = ((x == ord("]")) | (x == ord("}"))) & outside
        depth = np.cumsum(opens.view(np.int8) - closes.view(np.int8), dtype=np.int32) + depth0  # after each byte
        depth0 = int(depth[-1])
        commas = (x == ord(",")) & outside
        colons = (x == ord(":")) & outside
        out.commas1.append(np.flatnonzero(commas & (depth == 1)) + lo)
        out.colons1.append(np.flatnonzero(colons & (depth == 1)) + lo)
        out.commas2.append(np.flatnonzero(commas & (depth == 2)) + lo)
        out.closes1.append(np.flatnonzero(closes & (depth == 1)) + lo)
        if out.end is None:
            at = np.flatnonzero(closes & (depth == 0))
            out.end = int(at[0]) + lo if len(at) else None
    return out


def _labels_array(body: bytes) -> tuple[int, int, np.ndarray] | None:
    """(index of the `[` and of the `]` of the top-level "labels" array, indices of the commas between its
    rows), or None when the body is no JSON object with exactly one such array (pydantic then has its say)."""
    start = len(body) - len(body.lstrip())
    if start >= len(body) or body[start] != ord("{"):
        return None
    found = _scan(body)
    end = found.end
    if end is None or body[end] != ord("}") or body[end + 1 :].strip():
        return None
    commas1, colons1, commas2, closes1 = (
        np.concatenate(parts) for parts in (found.commas1, found.colons1, found.commas2, found.closes1)
    )
    bounds = [start, *commas1[(commas1 > start) & (commas1 < end)].tolist(), end]
    labels = None
    for lo, hi in zip(bounds, bounds[1:], strict=False):
        at = colons1[(colons1 > lo) & (colons1 < hi)]
        if not len(at):
            return None
        try:
            key = json.loads(body[lo + 1 : at[0]])
        except ValueError:
            return None
        if key != "labels":
            continue
        if labels is not None:  # a repeated key: leave it to pydantic
            return None
        value = body[at[0] + 1 : hi]
        first = int(at[0]) + 1 + len(value) - len(value.lstrip())
        last = hi - 1 - (len(value) - len(value.rstrip()))
        closing = closes1[closes1 > first]
        if body[first] != ord("[") or not len(closing) or closing[0] != last:  # the array ends where the value does
            return None
        labels = (first, last, commas2[(commas2 > first) & (commas2 < last)])
    return labels


def _sliced(body: bytes, first: int, last: int, seps: np.ndarray) -> tuple[BatchRequest, np.ndarray] | None:
    """Validate the labels array in slices of whole rows and the rest with `labels: null`; None when some
    slice is no valid JSON (the body is broken: the whole-body parse says where)."""
    bounds = np.concatenate([[first], seps, [last]])  # row k lies between bounds[k] and bounds[k + 1]
    cuts = np.unique(np.searchsorted(bounds, np.arange(first, last, SLICE), side="left"))
    cuts = np.unique(np.concatenate([[0], cuts, [len(bounds) - 1]]))
    tables: list[np.ndarray] = []
    errors: list[dict[str, Any]] = []
    for k0, k1 in zip(cuts.tolist(), cuts[1:].tolist(), strict=False):
        chunk = b"[" + body[bounds[k0] + 1 : bounds[k1]] + b"]"
        try:
            got = _TUPLES.validate_json(chunk)
        except ValidationError:
            try:
                got = _ROWS.validate_json(chunk)  # for the errors a BatchRequest reports
            except ValidationError as exc:
                if any(e["type"] == "json_invalid" for e in exc.errors()):
                    return None
                errors += _errors(exc, ("labels",), k0)
                continue
        if len(got) != k1 - k0:  # an empty row ("[[1,2,3],,...") reads as none: not JSON
            return None
        if not errors:
            tables.append(_table(got))
    rest = body[:first] + b"null" + body[last + 1 :]
    try:
        req = BatchRequest.model_validate_json(rest)
    except ValidationError as exc:
        if any(e["type"] == "json_invalid" for e in exc.errors()):
            return None
        errors += _errors(exc)
    if errors:  # in the order one pydantic call gives: by field
        errors.sort(key=lambda e: _FIELD_ORDER.get(e["loc"][0], len(_FIELD_ORDER)) if e["loc"] else -1)
        raise InvalidBody(errors)
    return req, np.concatenate(tables)
