"""From per-snippet outputs to scored segments in seconds: the one place where a video's
detections are assembled.

Per video (:func:`video_detections`): the base method says which classes the video shows
and scores them (``video_class_scores``, ``kept_classes``), and gives its own proposals
(``video_proposals``: CO2-Net/DELU's multiple-threshold recipe by default, UM's and Zhou et
al. 2023's own; ``models/*``); the localization head's proposals, when the model has a head,
are added here (:mod:`.head_proposals`), for the same classes.  Which proposals are scored is
the ``source``, an inference choice (``evaluate``/``predict --proposal-source``), not a
training setting: ``auto`` (default) = the head's alone when the model has one (the paper's
§3.4: at inference "only the prior-guided localization head needs to be executed"), else
the base method's; ``head``; ``base``; ``merge`` = both, each score replaced by its quantile
among all proposals of its source on the evaluated split (OIC scores are logit-scale
differences, head scores sigmoid-based: raw, every base proposal would outrank every head
proposal).

Then per (video, class) the method's suppression (Gaussian soft-NMS by default, batched
across all groups at once), the ``min_proposal_length`` filter (DELU: 1 snippet; CO2-Net:
none) and the conversion to seconds with the data set's ``snippet_seconds`` (once, at the
end; all segment arithmetic before is in snippets).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from wtal_common.errors import ConfigError

from .head_proposals import head_proposals
from .models.base import BASE_METHODS, BaseMethod
from .proposals import Proposals, concatenate, quantile_normalise

PROPOSAL_SOURCES = ("auto", "head", "base", "merge")


def has_head_outputs(outputs: Mapping[str, Mapping[str, np.ndarray]]) -> bool:
    """Whether every video has the localization head's outputs (``loc_scores``, ``loc_offsets``)."""
    return bool(outputs) and all(
        o.get("loc_scores") is not None and o.get("loc_offsets") is not None for o in outputs.values()
    )


def resolve_proposal_source(source: str, has_head: bool) -> str:
    """``source`` with ``auto`` resolved; ``head``/``merge`` need head outputs."""
    if source not in PROPOSAL_SOURCES:
        raise ConfigError(f"--proposal-source: {source!r} not in {'|'.join(PROPOSAL_SOURCES)}")
    if source == "auto":
        return "head" if has_head else "base"
    if source in ("head", "merge") and not has_head:
        raise ConfigError(f"--proposal-source: {source!r} needs a localization head (loc_scores outputs)")
    return source


def video_detections(method: type[BaseMethod], output: Mapping[str, np.ndarray], config: Any, source: str) -> Proposals:
    """All candidate proposals of one video (before suppression), raw scores, from
    ``source`` (``base``, ``head`` or ``merge``; already resolved).

    The kept classes come from the base method in every case; the head's proposals, made in
    the snippet steps the network saw, are mapped to snippets of the original video
    (``video_length`` of a resampled video) and prepared by the method
    (:meth:`~.models.base.BaseMethod.prepare_head_proposals`)."""
    class_scores = method.video_class_scores(output, config)
    classes = method.kept_classes(class_scores, config)
    found = []
    if source in ("base", "merge"):
        found.append(method.video_proposals(output, config, classes, class_scores))
    if source in ("head", "merge"):
        head = head_proposals(output["loc_scores"], output["loc_offsets"], classes, config.test, class_scores)
        steps = output["attention"].shape[0]
        unit = float(output.get("video_length", steps)) / steps  # original snippets per network step
        head = Proposals(head.start * unit, head.end * unit, head.score, head.label, head.source)
        found.append(method.prepare_head_proposals(head, config))
    return concatenate(found)


def predictions_from_outputs(
    outputs: Mapping[str, Mapping[str, np.ndarray]],
    gt: Mapping[str, Any],
    config: Any,
    source: str = "auto",
) -> dict[str, Any]:
    """Official ActivityNet results JSON from per-video raw outputs.

    ``outputs[video_id]`` holds ``cas`` (T, C+1), ``attention`` (T,), the method's
    ``test_outputs`` and, with a localization head, ``loc_scores``/``loc_offsets``.  Segments
    are converted to seconds with the data set's ``snippet_seconds`` and clipped to the video
    duration.
    """
    classes = gt["classes"]
    seconds = float(gt["snippet_seconds"])
    source = resolve_proposal_source(source, has_head_outputs(outputs))
    method = BASE_METHODS[config.method]  # its proposal and suppression hooks (models/base.py)
    per_video = {vid: video_detections(method, out, config, source) for vid, out in outputs.items()}
    if source == "merge" and per_video:
        flat = quantile_normalise(
            np.concatenate([p.score for p in per_video.values()]),
            np.concatenate([p.source for p in per_video.values()]),
        )
        offset = 0
        for props in per_video.values():
            props.score, offset = flat[offset : offset + len(props.score)], offset + len(props.score)
    groups, keys = [], []
    for vid, props in per_video.items():
        for c in np.unique(props.label):
            sel = props.label == c
            groups.append((props.start[sel], props.end[sel], props.score[sel]))
            keys.append((vid, int(c)))
    decayed = method.suppress(groups, config)
    min_length = float(config.test.min_proposal_length)
    results: dict[str, list[dict[str, Any]]] = {vid: [] for vid in outputs}
    for (vid, c), (st, en, _), sc in zip(keys, groups, decayed):
        duration = float(gt["database"][vid]["duration"])
        keep = ((en - st) > min_length) & np.isfinite(sc)  # after NMS, in snippets, as DELU's test.py
        start_s, end_s = np.minimum(st[keep] * seconds, duration), np.minimum(en[keep] * seconds, duration)
        inside = end_s > start_s  # snippets past the annotated duration (0.64 s steps overrun it) are no detection
        for a, b, p in zip(start_s[inside], end_s[inside], sc[keep][inside]):
            results[vid].append(
                {"label": classes[c], "score": float(p), "segment": [round(float(a), 3), round(float(b), 3)]}
            )
    for vid in results:
        results[vid].sort(key=lambda r: -r["score"])
    return {"version": "ActivityNet-style detection results", "results": results, "external_data": {"used": False}}
