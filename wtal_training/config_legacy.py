"""Older config spellings (format 1) read into the current document (format 2).

Format 1, written by checkpoints and run records before issue 23: one flat list of every
method's fields (``alpha_edl``, ``r_act``, ``gaussians``...; null, or another method's value,
for the fields the run's method does not read), method-specific fields inside the shared
sections (``model.alpha_edl``, ``test.cas_thresholds``, ``optimiser.lr_step_epochs``), the
inference choice ``test.proposal_source`` and only the user's overrides under ``mllm4wtal``.

Format 2 (:mod:`.config`): a method's own fields in the section named after it, the plug-in
options complete under ``mllm4wtal``, no ``proposal_source``.  A stored format-1 config is
converted silently (its other methods' fields are dropped, its ``proposal_source`` becomes the
checkpoint's default proposal source); a user's config file or ``--set`` in an older spelling
is moved with a warning naming the new one, or refused with a message saying why.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from wtal_common.errors import ConfigError

log = logging.getLogger("wtal_training")

LEGACY_FAMILIES = {"activitynet12": "activitynet"}  # `dataset_family` of checkpoints before `family`
FORMAT1_SECTIONS = ("model", "test", "optimiser")  # where format 1 kept the method-specific fields
DROP = "__drop__"  # place(): the field is not kept
KEEP = "__keep__"  # place(): left where it was given, for the schema to name
_warned: set[str] = set()


def upgrade(data: Mapping[str, Any]) -> dict[str, Any]:
    """A format-1 stored config, flat or sectioned, with what format 2 has no place for taken
    out (``dataset_family`` becomes ``family``; ``proposal_source``: see
    :func:`stored_proposal_source`); the rest is placed by :func:`.config.place_fields`."""
    data = {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in data.items()}
    if "dataset_family" in data:  # before the explicit family field
        legacy = data.pop("dataset_family")
        data.setdefault("family", LEGACY_FAMILIES.get(legacy, legacy))
    data.pop("proposal_source", None)
    if isinstance(data.get("test"), dict):
        data["test"].pop("proposal_source", None)
    return data


def stored_proposal_source(data: Mapping[str, Any]) -> str:
    """The ``proposal_source`` a format-1 config stored (``auto`` when it stored none): it
    stays the checkpoint's default proposal source for ``evaluate`` and ``predict``."""
    test = data.get("test") if isinstance(data.get("test"), Mapping) else {}
    return str(data.get("proposal_source") or test.get("proposal_source") or "auto")


def place(
    section: str | None,
    name: str,
    value: Any,
    method: str,
    homes: Mapping[str, str],
    sections: Mapping[str, list[str]],
    method_sections: list[str],
    source: str,
    stored: bool,
) -> str:
    """Where a field given as ``section.name`` (``section`` None: a bare name) that is not
    spelled as format 2 spells it goes: a section name, :data:`DROP` or :data:`KEEP`.

    ``homes``: bare name -> section for the run's shared and own sections; ``sections``:
    every section's field names; ``method_sections``: the base methods' sections; ``stored``: a checkpoint's config (convert silently) rather
    than the user's (warn or refuse)."""
    spelled = f"{section}.{name}" if section else name
    if name == "proposal_source" and section in (None, "test"):
        if stored or value in (None, "auto"):
            _warn(stored, f"{source}: config field '{spelled}' is not a training setting any more: ignored")
            return DROP
        raise ConfigError(
            f"{source}: config field '{spelled}' is not a training setting any more: pass --proposal-source "
            f"{value} to `evaluate` or `predict` (the model trains the same either way)"
        )
    if section in sections and name in ("modules", "seed") and name not in sections[section]:
        if stored:
            return DROP
        where = "--modules (or the top-level 'modules')" if name == "modules" else "--seeds"
        raise ConfigError(f"{source}: config field '{spelled}' is not read any more: give it with {where}")
    if homes.get(name) == method and section in (None, *FORMAT1_SECTIONS):
        _warn(stored, f"{source}: config field '{spelled}' is spelled '{method}.{name}' now")
        return method
    owners = sorted(s for s in method_sections if name in sections[s] and s != section)
    if owners and section in (None, *FORMAT1_SECTIONS):
        if stored:
            return DROP  # a format-1 checkpoint stores every method's fields
        raise ConfigError(
            f"{source}: config field '{spelled}' is a setting of {', '.join(owners)}, not of the run's method {method}"
        )
    return KEEP


def _warn(stored: bool, message: str) -> None:
    if not stored and message not in _warned:
        _warned.add(message)
        log.warning(message)
