"""Combine shard files into one descriptions file, checked complete against the ground truth.

Duplicates (a video processed by two shard runs) are resolved per key: a successful
row beats a failed one, then the most recent wins.  The merged file must hold exactly
one successful row for every (training video, label, kind) of the ground truth, all
rows of one kind under one prompt hash, backend, model, revision and generation
parameters; otherwise a
:class:`~prior_generation.store.PriorsFileError` lists what is missing, failed or mixed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wtal_data.canonical import load_ground_truth

from .generate import expected_keys
from .store import KEY, PriorsFileError, file_metadata, read_table, write_rows

log = logging.getLogger("prior_generation")

_SHOW = 20


def _listing(items: Sequence[Any]) -> str:
    shown = "\n  ".join(" / ".join(map(str, item)) if isinstance(item, tuple) else str(item) for item in items[:_SHOW])
    more = f"\n  ... and {len(items) - _SHOW} more" if len(items) > _SHOW else ""
    return f"\n  {shown}{more}"


def merge_shards(
    ground_truth: str | Path, shards: Sequence[str | Path], output: str | Path, allow_errors: bool = False
) -> dict[str, Any]:
    """Merge ``shards`` into ``output``; return a small report.  Raise on any gap."""
    if not shards:
        raise PriorsFileError("--shards: no shard files given")
    gt = load_ground_truth(ground_truth)
    best: dict[tuple, dict[str, Any]] = {}
    metadata: dict[str, str] = {}
    for path in shards:
        rows = read_table(path).to_pylist()
        meta = file_metadata(path)
        for key in ("dataset", "mllm_name", "backend", "model"):
            if meta.get(key) and metadata.setdefault(key, meta[key]) != meta[key]:
                raise PriorsFileError(f"{path}: {key} {meta[key]!r} differs from the other shards' {metadata[key]!r}")
        for row in rows:
            key = tuple(row[c] for c in KEY)
            old = best.get(key)
            rank = (row["error"] is None, row["created_at"])
            if old is None or rank > (old["error"] is None, old["created_at"]):
                best[key] = row
    expected = expected_keys(gt)
    expected_set = set(expected)
    missing = [k for k in expected if k not in best]
    extra = sorted(k for k in best if k not in expected_set)
    failed = [k + (best[k]["error"],) for k in expected if k in best and best[k]["error"] is not None]
    problems = []
    if missing:
        problems.append(f"{len(missing)} (video, class, kind) row(s) missing:{_listing(missing)}")
    if extra:
        problems.append(
            f"{len(extra)} row(s) for videos/classes not in the ground truth's training labels:{_listing(extra)}"
        )
    if failed and not allow_errors:
        problems.append(f"{len(failed)} row(s) failed (rerun generate, or pass --allow-errors):{_listing(failed)}")
    for kind in ("key", "complete"):
        combos = {
            (r["prompt_hash"], r["backend"], r["model"], r["model_revision"], r["generation_params"])
            for k, r in best.items()
            if k[2] == kind and k in expected_set
        }
        if len(combos) > 1:
            problems.append(
                f"'{kind}' rows come from {len(combos)} different prompt/backend/model/revision/params "
                "settings; regenerate the stale shards"
            )
    if problems:
        raise PriorsFileError(f"merge into {output} against {ground_truth}:\n" + "\n".join(problems))
    rows = [best[k] for k in sorted(expected)]
    write_rows(rows, output, {**metadata, "shards": str(len(shards))})
    log.info("merged %d shard(s) into %s: %d rows, %d failed", len(shards), output, len(rows), len(failed))
    return {"rows": len(rows), "failed": len(failed), "output": str(output)}
