"""The Parquet file contract of the prior-generation stage, and its crash-safe part files.

One row per (video_id, class_name, kind).  Columns (the text-priors stage reads exactly
these; do not rename):

=================  ====================  ==============================================
column             type                  meaning
=================  ====================  ==============================================
video_id           string                canonical video id
class_name         string                class name as in ground_truth.json "classes"
kind               string                "key" (one sentence) or "complete" (detailed)
prompt             string                the rendered prompt sent to the model
prompt_hash        string                hash of the template (changes when it does)
text               string, null          the generation; null when ``error`` is set
backend            string                hf / template / synthetic / vllm
model              string                model id or local path ("" for template)
model_revision     string, null          hub revision when given
generation_params  string                JSON: max_new_tokens, do_sample, frames, seed, dtype (hf)...
num_frames         int32                 frames shown to the model (0: no video used)
frame_indices      list<int32>           0-based frame numbers decoded, sorted
fps                float64, null         the video's average frame rate
seconds            float64               wall seconds for this row (decode + generate share)
error              string, null          why the row failed; null when fine
flags              string, null          "empty", "truncated" (comma-joined); null when fine
created_at         timestamp[us, UTC]    when the row was produced
=================  ====================  ==============================================

File-level key-value metadata: ``schema_version`` (``"1"``), ``stage``, and whatever the
writer adds (dataset, mllm_name, shard).

Crash safety: a running job writes each finished batch as a small ``part-NNNNNN.parquet``
in its work folder through a temporary file and an atomic rename, so a kill at any
point leaves only complete parts.  Reading the parts back and keeping the latest row per
key gives, on restart, exactly the rows already done; the final file is written the same
way.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from wtal_common.errors import InputError
from wtal_common.io import atomic_output

SCHEMA_VERSION = "1"
KEY = ("video_id", "class_name", "kind")

SCHEMA = pa.schema(
    [
        pa.field("video_id", pa.string(), nullable=False),
        pa.field("class_name", pa.string(), nullable=False),
        pa.field("kind", pa.string(), nullable=False),
        pa.field("prompt", pa.string(), nullable=False),
        pa.field("prompt_hash", pa.string(), nullable=False),
        pa.field("text", pa.string()),
        pa.field("backend", pa.string(), nullable=False),
        pa.field("model", pa.string(), nullable=False),
        pa.field("model_revision", pa.string()),
        pa.field("generation_params", pa.string(), nullable=False),
        pa.field("num_frames", pa.int32(), nullable=False),
        pa.field("frame_indices", pa.list_(pa.int32()), nullable=False),
        pa.field("fps", pa.float64()),
        pa.field("seconds", pa.float64(), nullable=False),
        pa.field("error", pa.string()),
        pa.field("flags", pa.string()),
        pa.field("created_at", pa.timestamp("us", tz="UTC"), nullable=False),
    ]
)
COLUMNS = tuple(SCHEMA.names)

_PART = re.compile(r"^part-(\d{6,})\.parquet$")


class PriorsFileError(InputError):
    """A descriptions Parquet file is missing, malformed or incomplete; names the file."""


def rows_to_table(rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, str] | None = None) -> pa.Table:
    missing = [c for c in COLUMNS if rows and c not in rows[0]]
    if missing:
        raise ValueError(f"row is missing column(s) {missing}")
    table = pa.Table.from_pylist([{c: r[c] for c in COLUMNS} for r in rows], schema=SCHEMA)
    meta = {"schema_version": SCHEMA_VERSION, "stage": "prior_generation"}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    return table.replace_schema_metadata({k.encode(): v.encode() for k, v in meta.items()})


def write_table_atomic(table: pa.Table, path: str | os.PathLike) -> Path:
    """Write ``table`` so that ``path`` is absent, old or complete: never half-written."""
    with atomic_output(path, suffix=".parquet") as tmp:
        pq.write_table(table, tmp, compression="zstd")
    return Path(path)


def write_rows(
    rows: Sequence[Mapping[str, Any]], path: str | os.PathLike, metadata: Mapping[str, str] | None = None
) -> Path:
    return write_table_atomic(rows_to_table(rows, metadata), path)


def read_table(path: str | os.PathLike) -> pa.Table:
    """Read one descriptions file, checking it is ours and of a known schema version."""
    path = Path(path)
    if not path.is_file():
        raise PriorsFileError(f"{path}: descriptions file not found")
    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise PriorsFileError(f"{path}: not a readable Parquet file ({exc})") from exc
    meta = {k.decode(): v.decode() for k, v in (table.schema.metadata or {}).items()}
    if meta.get("schema_version") != SCHEMA_VERSION:
        raise PriorsFileError(f"{path}: schema_version {meta.get('schema_version')!r} != {SCHEMA_VERSION!r}")
    missing = [c for c in COLUMNS if c not in table.column_names]
    if missing:
        raise PriorsFileError(f"{path}: missing column(s) {missing}")
    return table.select(list(COLUMNS)).cast(SCHEMA)


def file_metadata(path: str | os.PathLike) -> dict[str, str]:
    meta = pq.read_schema(path).metadata or {}
    return {k.decode(): v.decode() for k, v in meta.items()}


class PartWriter:
    """Numbered part files in a work folder; each finished batch becomes one part."""

    def __init__(self, work_dir: str | os.PathLike):
        self.work_dir = Path(work_dir)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._next = max((n for n, _ in self.parts()), default=-1) + 1

    def parts(self) -> list[tuple[int, Path]]:
        """Complete parts, in write order.  Temporary files (dot-prefixed) are ignored."""
        found = []
        for path in self.work_dir.iterdir():
            match = _PART.match(path.name)
            if match:
                found.append((int(match.group(1)), path))
        return sorted(found)

    def write(self, rows: Sequence[Mapping[str, Any]]) -> Path | None:
        if not rows:
            return None
        path = self.work_dir / f"part-{self._next:06d}.parquet"
        write_rows(rows, path)
        self._next += 1
        return path

    def read_latest(self) -> dict[tuple[str, str, str], dict[str, Any]]:
        """Every key's latest row over all parts (a later part overrides an earlier one)."""
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for _, path in self.parts():
            for row in read_table(path).to_pylist():
                latest[tuple(row[c] for c in KEY)] = row
        return latest


def generation_params_json(params: Mapping[str, Any]) -> str:
    """Canonical JSON so equal parameters compare equal as strings."""
    return json.dumps(dict(params), sort_keys=True, separators=(",", ":"))
