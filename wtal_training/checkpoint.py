"""Checkpoints: safetensors weights with the config, class list and code version in metadata.

Compatibility is decided by ``format_version`` (:data:`CHECKPOINT_FORMAT`), not by
``code_version``: the code version (package version + git commit) changes with every
commit and is recorded for provenance only; the format version changes only when the
file's layout or meaning changes in a way other code cannot read (state-dict keys renamed,
a required metadata field added or redefined, the stored config changing meaning).  This
code reads formats 1 .. :data:`CHECKPOINT_FORMAT`; a checkpoint without the field predates
it and is format 1 (the same layout).  A newer format, or a value that is not a positive
integer, is an incompatible checkpoint: :class:`CheckpointError` (exit 2) naming the file
and the code version that wrote it.
"""

from __future__ import annotations

import json
import os
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from wtal_common.errors import InputError
from wtal_common.io import atomic_output


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit of the checkout (``+dirty`` when modified)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        ver = version("mllm4wtal")
    except PackageNotFoundError:
        ver = "unknown"
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
        if commit:
            ver += f"+g{commit}" + (".dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    return ver


# Bump (and teach the loader the old one) when the layout or the metadata's meaning changes.
# 1: `config` flat (every method's fields; config_legacy.py reads it), `inference_model`
#    "base" | "mllm4wtal";  2: `config` in sections (config.py), `objective` names the
#    registered training objective that rebuilds the inference model.
CHECKPOINT_FORMAT = 2


class CheckpointError(InputError):
    """A checkpoint is missing, unreadable or does not fit the data set; the message names it."""


def save_checkpoint(path: str | os.PathLike, module: torch.nn.Module, metadata: dict[str, Any]) -> Path:
    """Atomically write ``module``'s state dict; metadata values are stored as JSON strings."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}
    meta = {k: json.dumps(v) for k, v in metadata.items()}
    meta["code_version"] = json.dumps(code_version())
    meta["format_version"] = json.dumps(CHECKPOINT_FORMAT)
    with atomic_output(path, suffix=".safetensors") as tmp:
        save_file(state, str(tmp), metadata=meta)
    return path


def load_checkpoint(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            meta = {k: json.loads(v) for k, v in (handle.metadata() or {}).items()}
            state = {k: handle.get_tensor(k) for k in handle.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: not a readable safetensors checkpoint ({exc})") from exc
    check_format(path, meta)
    for key in ("config", "classes", "feature_dim", "method"):
        if key not in meta:
            raise CheckpointError(f"{path}: checkpoint metadata lacks '{key}'")
    return state, meta


def check_format(path: Path, meta: dict[str, Any]) -> None:
    """Refuse a checkpoint whose format this code cannot read (see the module docstring)."""
    found = meta.get("format_version", 1)
    readable = isinstance(found, int) and not isinstance(found, bool) and 1 <= found <= CHECKPOINT_FORMAT
    if not readable:
        raise CheckpointError(
            f"{path}: checkpoint format {found!r} (written by code {meta.get('code_version', 'unknown')}) is not "
            f"one this code reads (formats 1 to {CHECKPOINT_FORMAT}, code {code_version()}): use the code that "
            "wrote it, or train again"
        )
