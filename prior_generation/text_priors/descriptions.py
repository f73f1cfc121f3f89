"""Read the descriptions Parquet of the prior-generation stage and keep the usable rows.

Rules (each exclusion is counted, never silent):

* rows with a non-null, non-empty ``error`` are excluded (``excluded_error``);
* rows whose text is null/blank, or whose ``flags`` contain ``empty``, are excluded
  (``excluded_empty``); a ``truncated`` generation flag is kept and carried along;
* exact duplicates of (video_id, class_name, kind, whitespace-normalised text) are
  dropped, first one kept (``duplicates_removed``).

A missing file, an unreadable file, a missing column, an unknown ``kind`` or a null video
id / class name is an input error (:class:`TextPriorsError`), not a row to skip.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import KINDS, TextPriorsError

REQUIRED_COLUMNS = ("video_id", "class_name", "kind", "text")
OPTIONAL_COLUMNS = ("error", "flags", "model", "backend")


@dataclass
class DescriptionRow:
    video_id: str
    class_name: str
    kind: str
    text: str
    generation_flags: str | None
    model: str | None


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _flag_set(flags: Any) -> set[str]:
    if flags is None:
        return set()
    if isinstance(flags, (list, tuple)):
        return {str(f).strip().lower() for f in flags}
    return {f.strip().lower() for f in str(flags).replace(";", ",").split(",") if f.strip()}


def read_descriptions(path: str | os.PathLike) -> tuple[list[DescriptionRow], dict[str, int], dict[str, Any]]:
    """Return (usable rows in file order, counts, source info)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = Path(path)
    if not path.is_file():
        raise TextPriorsError(f"{path}: descriptions file not found")
    try:
        table = pq.read_table(path)
    except (pa.ArrowException, OSError) as exc:
        raise TextPriorsError(f"{path}: not a readable Parquet file ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in table.column_names]
    if missing:
        raise TextPriorsError(f"{path}: missing column(s) {missing}; has {table.column_names}")
    columns = {c: table.column(c).to_pylist() for c in REQUIRED_COLUMNS + OPTIONAL_COLUMNS if c in table.column_names}
    n = table.num_rows
    counts = {"input_rows": n, "excluded_error": 0, "excluded_empty": 0, "duplicates_removed": 0}
    rows: list[DescriptionRow] = []
    seen: set[tuple[str, str, str, str]] = set()
    for i in range(n):
        video_id, class_name, kind = columns["video_id"][i], columns["class_name"][i], columns["kind"][i]
        if not isinstance(video_id, str) or not video_id:
            raise TextPriorsError(f"{path}: row {i}: video_id is null or empty")
        if not isinstance(class_name, str) or not class_name:
            raise TextPriorsError(f"{path}: row {i} (video {video_id}): class_name is null or empty")
        if kind not in KINDS:
            raise TextPriorsError(f"{path}: row {i} (video {video_id}): kind {kind!r} is not one of {KINDS}")
        error = columns.get("error", [None] * n)[i]
        if error is not None and str(error).strip():
            counts["excluded_error"] += 1
            continue
        flags = columns.get("flags", [None] * n)[i]
        text = columns["text"][i]
        text = " ".join(str(text).split()) if text is not None else ""
        if not text or "empty" in _flag_set(flags):
            counts["excluded_empty"] += 1
            continue
        key = (video_id, class_name, kind, text)
        if key in seen:
            counts["duplicates_removed"] += 1
            continue
        seen.add(key)
        flag_text = None if flags is None else (",".join(sorted(_flag_set(flags))) or None)
        model = columns.get("model", [None] * n)[i]
        rows.append(DescriptionRow(video_id, class_name, kind, text, flag_text, model))
    models = sorted({str(m) for m in columns.get("model", []) if m is not None})
    source = {"path": str(path), "sha256": file_sha256(path), "rows": n, "models": models}
    return rows, counts, source
