"""NAS-Bench-101 lookups without TensorFlow.

The official data file (``nasbench_only108.tfrecord`` or ``nasbench_full.tfrecord``) is read
directly: TFRecord framing, a JSON payload per record and a hand-decoded ``ModelMetrics``
protobuf. :func:`convert` turns it, in one streaming pass, into a compact ``.npz`` table
that :class:`NasBench101Table` loads in about a second and queries by architecture.

Table format (``numpy.savez_compressed``; every array is plain, no pickles):

=====================  ================  =====================================================
key                    shape / dtype     meaning
=====================  ================  =====================================================
``format``             () str            ``"nasforge-nasbench101-v1"``
``hashes``             (N,) ``S32``      module hashes (md5 hex, ASCII), sorted ascending
``num_vertices``       (N,) uint8        vertices of the (pruned) module, 2..7
``adjacency``          (N, 7, 7) uint8   adjacency matrix, zero-padded to 7×7
``ops``                (N, 7) int8       index into :data:`OP_NAMES`; -1 = padding
``parameters``         (N,) int64        trainable parameters
``epochs``             (E,) int64        epoch budgets held, ascending
``train_accuracy``     (E, N, 3) f8      final train accuracy per repeat (NaN = missing)
``validation_accuracy``  (E, N, 3) f8    final validation accuracy per repeat
``test_accuracy``      (E, N, 3) f8      final test accuracy per repeat
``training_time``      (E, N, 3) f8      final training time (seconds) per repeat
=====================  ================  =====================================================

Accuracies are fractions in [0, 1], exactly as stored in the official file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import struct
import sys
from array import array
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasforge.checkpoint import atomic_write_bytes
from nasforge.errors import NasforgeError

DOWNLOAD_URL = "https://storage.googleapis.com/nasbench/nasbench_only108.tfrecord"
FULL_URL = "https://storage.googleapis.com/nasbench/nasbench_full.tfrecord"
TABLE_FORMAT = "nasforge-nasbench101-v1"

INPUT = "input"
OUTPUT = "output"
CONV3X3 = "conv3x3-bn-relu"
CONV1X1 = "conv1x1-bn-relu"
MAXPOOL3X3 = "maxpool3x3"
#: The ops a hidden vertex may carry, in NAS-Bench-101's canonical order (labels 0, 1, 2).
CANONICAL_OPS = (CONV3X3, CONV1X1, MAXPOOL3X3)
#: Op codes used in the table's ``ops`` array.
OP_NAMES = (INPUT, CONV3X3, CONV1X1, MAXPOOL3X3, OUTPUT)
MAX_VERTICES = 7
MAX_EDGES = 9
EPOCH_BUDGETS = (4, 12, 36, 108)
REPEATS = 3
METRICS = ("train_accuracy", "validation_accuracy", "test_accuracy", "training_time")

_MAX_RECORD = 1 << 24  # a real record is ~1 KB; anything this large is a corrupt length


# --------------------------------------------------------------------------- CRC32C

def _crc_table() -> tuple[int, ...]:
    poly = 0x82F63B78  # Castagnoli, reflected
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of ``data``, in pure Python."""
    crc = 0xFFFFFFFF
    table = _CRC_TABLE
    for byte in data:
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc32c(data: bytes) -> int:
    """The masked CRC-32C that TFRecord framing stores."""
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


# --------------------------------------------------------------------------- protobuf

def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("varint runs past the end of the message")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise ValueError("varint longer than 10 bytes")


def _fields(buf: bytes) -> Iterator[tuple[int, int, Any]]:
    """Yield ``(field_number, wire_type, value)`` for each field of a protobuf message."""
    pos = 0
    end = len(buf)
    while pos < end:
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            if pos + 8 > end:
                raise ValueError(f"field {field}: 64-bit value runs past the end")
            value = buf[pos:pos + 8]
            pos += 8
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > end:
                raise ValueError(f"field {field}: length {size} runs past the end")
            value = buf[pos:pos + size]
            pos += size
        elif wire == 5:
            if pos + 4 > end:
                raise ValueError(f"field {field}: 32-bit value runs past the end")
            value = buf[pos:pos + 4]
            pos += 4
        else:
            raise ValueError(f"field {field}: unsupported wire type {wire}")
        yield field, wire, value


def _double(field: int, wire: int, value: Any) -> float:
    if wire != 1:
        raise ValueError(f"field {field}: expected a double (wire type 1), got wire type {wire}")
    return struct.unpack("<d", value)[0]


_EVAL_DOUBLES = {1: "current_epoch", 2: "training_time", 3: "train_accuracy",
                 4: "validation_accuracy", 5: "test_accuracy"}


def _decode_evaluation(buf: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for field, wire, value in _fields(buf):
        if field in _EVAL_DOUBLES:
            out[_EVAL_DOUBLES[field]] = _double(field, wire, value)
        elif field == 6 and wire == 2:
            out["checkpoint_path"] = value.decode("utf-8", errors="replace")
    return out


def decode_model_metrics(buf: bytes) -> dict[str, Any]:
    """Decode a serialized ``ModelMetrics`` protobuf (proto2) by hand."""
    evaluations: list[dict[str, Any]] = []
    out: dict[str, Any] = {"evaluation_data": evaluations}
    for field, wire, value in _fields(buf):
        if field == 1:
            if wire != 2:
                raise ValueError(f"evaluation_data has wire type {wire}, expected 2")
            evaluations.append(_decode_evaluation(value))
        elif field == 2:
            if wire != 0:
                raise ValueError(f"trainable_parameters has wire type {wire}, expected 0")
            value &= 0xFFFFFFFFFFFFFFFF
            out["trainable_parameters"] = value - (1 << 64) if value >= 1 << 63 else value
        elif field == 3:
            out["total_time"] = _double(field, wire, value)
    return out


# --------------------------------------------------------------------------- records

def _missing_file(path: Path) -> NasforgeError:
    return NasforgeError(
        f"NAS-Bench-101 data file not found: {path}; download it from {DOWNLOAD_URL} "
        f"(108-epoch results) or {FULL_URL} (all epoch budgets)")


def _decode_payload(payload: bytes, offset: int, where: str) -> dict[str, Any]:
    try:
        item = json.loads(payload.decode("utf-8"))
        module_hash, epochs, adjacency, ops, metrics_b64 = item
        ops_list = ops.split(",")
        dim = len(ops_list)
        if len(adjacency) != dim * dim or set(adjacency) - {"0", "1"}:
            raise ValueError(f"adjacency string of length {len(adjacency)} does not fit "
                             f"{dim} ops")
        matrix = [[int(adjacency[r * dim + c]) for c in range(dim)] for r in range(dim)]
        metrics = decode_model_metrics(base64.b64decode(metrics_b64, validate=True))
    except (ValueError, TypeError, AttributeError, UnicodeDecodeError, binascii.Error) as exc:
        raise NasforgeError(f"{where}: record at byte offset {offset} is not a NAS-Bench-101 "
                            f"record ({exc})") from None
    return {
        "module_hash": str(module_hash),
        "epochs": int(epochs),
        "adjacency": matrix,
        "ops": ops_list,
        "trainable_parameters": int(metrics.get("trainable_parameters", 0)),
        "total_time": float(metrics.get("total_time", float("nan"))),
        "evaluation_data": metrics["evaluation_data"],
        "offset": offset,
    }


def read_records(path: str | Path, *, verify_crc: bool = True) -> Iterator[dict[str, Any]]:
    """Stream the records of an official NAS-Bench-101 ``.tfrecord`` file, one at a time.

    Each record is a dict: ``module_hash``, ``epochs``, ``adjacency`` (list of 0/1 rows),
    ``ops`` (list of names), ``trainable_parameters``, ``total_time``, ``evaluation_data``
    (list of dicts: ``current_epoch``, ``training_time``, ``train_accuracy``,
    ``validation_accuracy``, ``test_accuracy``, ``checkpoint_path``; index 0 = initial,
    1 = halfway, 2 = final) and ``offset`` (the record's byte offset in the file).

    With ``verify_crc`` (the default) both masked CRC-32C checksums of every record are
    checked; ``verify_crc=False`` skips them (about twice as fast in pure Python).
    """
    path = Path(path)
    if not path.is_file():
        raise _missing_file(path)
    where = str(path)
    with path.open("rb") as fh:
        offset = 0
        while True:
            header = fh.read(12)
            if not header:
                return
            if len(header) < 12:
                raise NasforgeError(
                    f"{where}: truncated record at byte offset {offset} (header has "
                    f"{len(header)} of 12 bytes); the file is incomplete, download it again")
            length_bytes = header[:8]
            (length,) = struct.unpack("<Q", length_bytes)
            (length_crc,) = struct.unpack("<I", header[8:])
            if verify_crc and masked_crc32c(length_bytes) != length_crc:
                raise NasforgeError(
                    f"{where}: corrupt record at byte offset {offset} (length checksum "
                    f"mismatch); the file is damaged, download it again")
            if length > _MAX_RECORD:
                raise NasforgeError(
                    f"{where}: corrupt record at byte offset {offset} (length {length} bytes "
                    f"is implausible); the file is damaged or not a NAS-Bench-101 file")
            body = fh.read(length + 4)
            if len(body) < length + 4:
                raise NasforgeError(
                    f"{where}: truncated record at byte offset {offset} (expected "
                    f"{length + 16} bytes, the file ends after {12 + len(body)}); the file "
                    f"is incomplete, download it again")
            payload = body[:length]
            if verify_crc:
                (payload_crc,) = struct.unpack("<I", body[length:])
                if masked_crc32c(payload) != payload_crc:
                    raise NasforgeError(
                        f"{where}: corrupt record at byte offset {offset} (payload checksum "
                        f"mismatch); the file is damaged, download it again")
            yield _decode_payload(payload, offset, where)
            offset += 16 + length


# --------------------------------------------------------------------------- graphs

def parse_matrix(text: str) -> list[list[int]]:
    """An adjacency matrix typed as text, ``"0110;0001;0001;0000"`` (one string of 0/1 per
    row, ``;`` between rows), as rows of ints; anything else is a user error."""
    rows = [r.strip() for r in text.split(";") if r.strip()]
    if not rows or any(set(r) - {"0", "1"} or len(r) != len(rows) for r in rows):
        raise NasforgeError(f"--matrix {text!r} must be N rows of N digits 0/1 separated by "
                            "';', e.g. 011;001;000")
    return [[int(c) for c in r] for r in rows]


def _as_matrix(matrix: Any) -> list[list[int]]:
    try:
        rows = [list(row) for row in matrix]
    except TypeError:
        raise NasforgeError("the adjacency matrix must be a square list of 0/1 rows") from None
    n = len(rows)
    out: list[list[int]] = []
    for row in rows:
        if len(row) != n:
            raise NasforgeError(f"the adjacency matrix must be square; got {n} rows but a row "
                                f"of length {len(row)}")
        new_row = []
        for x in row:
            if x not in (0, 1):
                raise NasforgeError(f"adjacency entries must be 0 or 1; got {x!r}")
            new_row.append(int(x))
        out.append(new_row)
    return out


def module_hash(matrix: Any, labels: Sequence[int]) -> str:
    """NAS-Bench-101's graph-invariant MD5 fingerprint of a labelled DAG.

    ``labels`` are ints: -1 for the input, -2 for the output and the index into
    :data:`CANONICAL_OPS` for every other vertex. Isomorphic labelled graphs get the same
    hash. Equal to ``nasbench.lib.graph_util.hash_module``.
    """
    m = _as_matrix(matrix)
    n = len(m)
    labels = [int(x) for x in labels]
    if len(labels) != n:
        raise NasforgeError(f"module_hash needs one label per vertex: {n} vertices, "
                            f"{len(labels)} labels")
    out_degree = [sum(m[v]) for v in range(n)]
    in_degree = [sum(m[u][v] for u in range(n)) for v in range(n)]
    preds = [[u for u in range(n) if m[u][v]] for v in range(n)]
    succs = [[w for w in range(n) if m[v][w]] for v in range(n)]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode("utf-8")).hexdigest()

    hashes = [md5(str((out_degree[v], in_degree[v], labels[v]))) for v in range(n)]
    for _ in range(n):
        hashes = [
            md5("".join(sorted(hashes[u] for u in preds[v])) + "|"
                + "".join(sorted(hashes[w] for w in succs[v])) + "|" + hashes[v])
            for v in range(n)
        ]
    return md5(str(sorted(hashes)))


def _check_raw(matrix: Any, ops: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    m = _as_matrix(matrix)
    ops = [str(op) for op in ops]
    n = len(m)
    if n < 2:
        raise NasforgeError(f"a NAS-Bench-101 cell needs at least 2 vertices (input and "
                            f"output); got {n}")
    if len(ops) != n:
        raise NasforgeError(f"the adjacency matrix has {n} vertices but {len(ops)} ops were "
                            f"given; give one op per vertex")
    for u in range(n):
        for v in range(u + 1):
            if m[u][v]:
                raise NasforgeError(
                    f"the adjacency matrix must be strictly upper-triangular (edges only from "
                    f"a lower to a higher vertex index); entry [{u}][{v}] is 1")
    if ops[0] != INPUT or ops[-1] != OUTPUT:
        raise NasforgeError(f"the first op must be {INPUT!r} and the last {OUTPUT!r}; got "
                            f"{ops[0]!r} and {ops[-1]!r}")
    for op in ops[1:-1]:
        if op not in CANONICAL_OPS:
            raise NasforgeError(f"unknown NAS-Bench-101 op {op!r}; hidden vertices take one of "
                                f"{', '.join(CANONICAL_OPS)}")
    return m, ops


def prune(matrix: Any, ops: Sequence[str]) -> tuple[list[list[int]], list[str]]:
    """Drop the vertices not on an input→output path (and their edges).

    Returns the pruned ``(matrix, ops)``. Raises :class:`NasforgeError` for a malformed
    spec or when no path leads from the input to the output.
    """
    m, ops = _check_raw(matrix, ops)
    n = len(m)
    from_input = {0}
    stack = [0]
    while stack:
        u = stack.pop()
        for v in range(u + 1, n):
            if m[u][v] and v not in from_input:
                from_input.add(v)
                stack.append(v)
    to_output = {n - 1}
    stack = [n - 1]
    while stack:
        v = stack.pop()
        for u in range(v):
            if m[u][v] and u not in to_output:
                to_output.add(u)
                stack.append(u)
    keep = sorted(from_input & to_output)
    if not keep:
        raise NasforgeError("the cell has no path from the input (vertex 0) to the output "
                            f"(vertex {n - 1}); connect them")
    return [[m[u][v] for v in keep] for u in keep], [ops[v] for v in keep]


def _spec_hash(matrix: Any, ops: Sequence[str]) -> tuple[str, list[list[int]], list[str]]:
    m, pruned_ops = prune(matrix, ops)
    n = len(m)
    if n > MAX_VERTICES:
        raise NasforgeError(f"the cell has {n} vertices after pruning; NAS-Bench-101 allows at "
                            f"most {MAX_VERTICES}")
    edges = sum(map(sum, m))
    if edges > MAX_EDGES:
        raise NasforgeError(f"the cell has {edges} edges after pruning; NAS-Bench-101 allows at "
                            f"most {MAX_EDGES}")
    labels = [-1] + [CANONICAL_OPS.index(op) for op in pruned_ops[1:-1]] + [-2]
    return module_hash(m, labels), m, pruned_ops


def hash_of(matrix: Any, ops: Sequence[str]) -> str:
    """Validate and prune a cell, then return its NAS-Bench-101 module hash."""
    return _spec_hash(matrix, ops)[0]


# --------------------------------------------------------------------------- convert

def convert(tfrecord_path: str | Path, out_path: str | Path, *,
            epochs: Iterable[int] | None = (108,), progress: bool = False,
            verify_crc: bool = True) -> dict[str, Any]:
    """Read the official file once and write the compact ``.npz`` table to ``out_path``.

    ``epochs`` selects the epoch budgets kept (``None`` keeps every budget found). Per
    module hash the table holds adjacency, ops, parameters and, per budget, the final
    train/validation/test accuracy and training time of each of the 3 repeats. The file is
    written atomically. Returns counts: ``records`` (read), ``kept``, ``architectures``,
    ``epochs`` (budgets written) and ``path``.
    """
    wanted = None if epochs is None else sorted({int(e) for e in epochs})
    if wanted is not None and not wanted:
        raise NasforgeError("convert needs at least one epoch budget (NAS-Bench-101 has "
                            f"{', '.join(map(str, EPOCH_BUDGETS))})")
    index: dict[str, int] = {}
    hashes: list[str] = []
    adjacency: list[list[list[int]]] = []
    op_codes: list[list[int]] = []
    params: list[int] = []
    rec_arch = array("q")
    rec_epoch = array("q")
    rec_values = array("d")
    total = 0
    where = str(tfrecord_path)
    for record in read_records(tfrecord_path, verify_crc=verify_crc):
        total += 1
        if progress and total % 100_000 == 0:
            print(f"nasbench101: {total:,} records read, {len(hashes):,} architectures",
                  file=sys.stderr, flush=True)
        ep = record["epochs"]
        if wanted is not None and ep not in wanted:
            continue
        evals = record["evaluation_data"]
        if len(evals) < 3:
            raise NasforgeError(f"{where}: record at byte offset {record['offset']} has "
                                f"{len(evals)} evaluation entries; expected 3 (init, "
                                f"halfway, final)")
        final = evals[2]
        key = record["module_hash"]
        i = index.get(key)
        if i is None and (len(key) != 32 or not all(c in "0123456789abcdef" for c in key)):
            raise NasforgeError(f"{where}: record at byte offset {record['offset']} has module "
                                f"hash {key!r}; expected 32 lowercase hex digits")
        if i is None:
            ops = record["ops"]
            n = len(ops)
            if n > MAX_VERTICES or ops[0] != INPUT or ops[-1] != OUTPUT or any(
                    op not in CANONICAL_OPS for op in ops[1:-1]):
                raise NasforgeError(f"{where}: record at byte offset {record['offset']} has "
                                    f"an invalid cell (ops {','.join(ops)})")
            i = index[key] = len(hashes)
            hashes.append(key)
            adjacency.append(record["adjacency"])
            op_codes.append([OP_NAMES.index(op) for op in ops])
            params.append(record["trainable_parameters"])
        rec_arch.append(i)
        rec_epoch.append(ep)
        rec_values.extend(float(final.get(name, float("nan"))) for name in METRICS)

    n_arch = len(hashes)
    budgets = sorted(set(rec_epoch)) if wanted is None else wanted
    arch = np.frombuffer(rec_arch, dtype=np.int64) if rec_arch else np.zeros(0, np.int64)
    ep_arr = np.frombuffer(rec_epoch, dtype=np.int64) if rec_epoch else np.zeros(0, np.int64)
    values = (np.frombuffer(rec_values, dtype=np.float64).reshape(-1, len(METRICS))
              if rec_values else np.zeros((0, len(METRICS))))
    ep_idx = np.searchsorted(np.asarray(budgets, dtype=np.int64), ep_arr)
    # Repeat slot of each record: its rank, in file order, among records of the same
    # (budget, architecture).
    order = np.lexsort((np.arange(len(arch)), arch, ep_idx))
    group = ep_idx[order] * max(n_arch, 1) + arch[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = group[1:] != group[:-1]
    first = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    slot = np.empty(len(order), dtype=np.int64)
    slot[order] = np.arange(len(order)) - first
    if len(slot) and slot.max() >= REPEATS:
        bad = int(order[np.argmax(slot[order] >= REPEATS)])
        raise NasforgeError(f"{where}: more than {REPEATS} records for module "
                            f"{hashes[int(arch[bad])]} at {int(ep_arr[bad])} epochs; "
                            "this is not an official NAS-Bench-101 file")

    sort = np.argsort(np.asarray(hashes, dtype="S32"), kind="stable")
    rank = np.empty(n_arch, dtype=np.int64)
    rank[sort] = np.arange(n_arch)
    tables = {name: np.full((len(budgets), n_arch, REPEATS), np.nan) for name in METRICS}
    for k, name in enumerate(METRICS):
        tables[name][ep_idx, rank[arch], slot] = values[:, k]

    adj = np.zeros((n_arch, MAX_VERTICES, MAX_VERTICES), dtype=np.uint8)
    ops_arr = np.full((n_arch, MAX_VERTICES), -1, dtype=np.int8)
    nv = np.zeros(n_arch, dtype=np.uint8)
    for i, (m, codes) in enumerate(zip(adjacency, op_codes, strict=True)):
        r = rank[i]
        n = len(codes)
        nv[r] = n
        adj[r, :n, :n] = m
        ops_arr[r, :n] = codes
    buf = io.BytesIO()
    np.savez_compressed(
        buf,
        format=np.asarray(TABLE_FORMAT),
        hashes=np.asarray(hashes, dtype="S32")[sort] if n_arch else np.zeros(0, "S32"),
        num_vertices=nv,
        adjacency=adj,
        ops=ops_arr,
        parameters=np.asarray(params, dtype=np.int64)[sort] if n_arch else np.zeros(0, np.int64),
        epochs=np.asarray(budgets, dtype=np.int64),
        **tables,
    )
    out = atomic_write_bytes(out_path, buf.getvalue())
    if progress:
        print(f"nasbench101: {total:,} records read, {len(arch):,} kept, {n_arch:,} "
              f"architectures -> {out}", file=sys.stderr, flush=True)
    return {"records": total, "kept": len(arch), "architectures": n_arch,
            "epochs": [int(e) for e in budgets], "path": str(out)}


# --------------------------------------------------------------------------- table

def _nanmean(values: np.ndarray) -> float:
    values = values[~np.isnan(values)]
    return float(values.mean()) if len(values) else float("nan")


class NasBench101Table:
    """The converted NAS-Bench-101 table: query a cell by adjacency matrix and ops."""

    def __init__(self, arrays: dict[str, np.ndarray], source: str = "<memory>") -> None:
        self.source = source
        self._hashes = arrays["hashes"]
        self._num_vertices = arrays["num_vertices"]
        self._adjacency = arrays["adjacency"]
        self._ops = arrays["ops"]
        self._parameters = arrays["parameters"]
        self.epochs = tuple(int(e) for e in arrays["epochs"])
        self._metrics = {name: arrays[name] for name in METRICS}

    @classmethod
    def load(cls, path: str | Path) -> NasBench101Table:
        path = Path(path)
        if not path.is_file():
            raise NasforgeError(
                f"NAS-Bench-101 table not found: {path}; build it once with `nasforge bench "
                f"nb101-convert TFRECORD --out {path}` from the official file ({DOWNLOAD_URL})")
        needed = ("format", "hashes", "num_vertices", "adjacency", "ops", "parameters",
                  "epochs", *METRICS)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in needed if k not in data.files]
                if missing:
                    raise ValueError(f"missing arrays {', '.join(missing)}")
                if str(data["format"]) != TABLE_FORMAT:
                    raise ValueError(f"format {str(data['format'])!r}, expected "
                                     f"{TABLE_FORMAT!r}")
                arrays = {k: data[k] for k in needed}
        except (OSError, ValueError, KeyError) as exc:
            raise NasforgeError(f"{path} is not a NAS-Bench-101 table written by convert "
                                f"({exc}); rebuild it with convert()") from None
        return cls(arrays, source=str(path))

    def __len__(self) -> int:
        return len(self._hashes)

    def __contains__(self, module: str) -> bool:
        return self._find(module) is not None

    def hash_of(self, matrix: Any, ops: Sequence[str]) -> str:
        """The module hash of a cell (validated and pruned first)."""
        return hash_of(matrix, ops)

    def _find(self, module: str) -> int | None:
        key = module.encode("ascii", errors="replace")
        i = int(np.searchsorted(self._hashes, key))
        if i < len(self._hashes) and self._hashes[i] == key:
            return i
        return None

    def query(self, matrix: Any, ops: Sequence[str], epochs: int = 108) -> dict[str, Any]:
        """Look up a cell: returns the hash, parameters and accuracies at ``epochs``."""
        module, _, _ = _spec_hash(matrix, ops)
        return self.query_hash(module, epochs=epochs)

    def query_hash(self, module: str, epochs: int = 108) -> dict[str, Any]:
        """Look up a module by its NAS-Bench-101 hash."""
        if int(epochs) not in self.epochs:
            raise NasforgeError(f"epoch budget {epochs} is not in the table {self.source}; it "
                                f"holds {', '.join(map(str, self.epochs))} (NAS-Bench-101 has "
                                f"{', '.join(map(str, EPOCH_BUDGETS))}; convert with "
                                "epochs=... to add budgets)")
        i = self._find(module)
        if i is None:
            raise NasforgeError(f"architecture {module} is not in the table {self.source}; "
                                "NAS-Bench-101 holds every valid cell with at most "
                                f"{MAX_VERTICES} vertices and {MAX_EDGES} edges")
        e = self.epochs.index(int(epochs))
        n = int(self._num_vertices[i])
        out: dict[str, Any] = {
            "hash": module,
            "epochs": int(epochs),
            "adjacency": self._adjacency[i, :n, :n].astype(int).tolist(),
            "ops": [OP_NAMES[c] for c in self._ops[i, :n]],
            "parameters": int(self._parameters[i]),
        }
        for name in METRICS:
            row = self._metrics[name][e, i]
            out[name] = _nanmean(row)
            out[name + "_repeats"] = [float(x) for x in row if not np.isnan(x)]
        out["repeats"] = len(out["test_accuracy_repeats"])
        if out["repeats"] == 0:
            raise NasforgeError(f"architecture {module} has no results at {epochs} epochs in "
                                f"the table {self.source}")
        return out
