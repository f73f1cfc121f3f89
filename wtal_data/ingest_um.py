"""Reader for UM's ActivityNet-style layout: ``gt.json`` plus ``split_train.txt`` / ``split_test.txt``.

UM (Pilhyeon/WTAL-Uncertainty-Modeling) ships THUMOS14 as one ``gt.json`` whose
segments are strings and which has no durations, fps or video-level labels; the split
files decide which videos are used (its test split has 210 videos: it leaves out
``video_test_0000270`` and ``video_test_0001496`` of the W-TALC set's 212).  So:

* the split files decide the videos and their role; ``original_subset`` is gt.json's
  ``subset`` field;
* video-level labels are the distinct segment labels, in order of appearance;
* durations come from gt.json's ``duration`` where present, else from ``durations``
  (e.g. an already ingested W-TALC ground truth), else from the features
  (``num_snippets * snippet_seconds``, done by :func:`.ingest.ingest`); with none of
  these the video is an error;
* classes are the given list, or the sorted distinct labels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .canonical import DatasetError, read_json
from .ingest_common import (
    check_label,
    empty_ground_truth,
    get_preset,
    parse_segment,
    require_file,
    unique_in_order,
)


def load_durations(path: str | Path) -> dict[str, float]:
    """Durations in seconds from a JSON file: ``{video: seconds}`` or a canonical/ActivityNet ground truth."""
    path = Path(path)
    raw = read_json(path, "durations file")
    if isinstance(raw, dict) and isinstance(raw.get("database"), dict):
        raw = {v: e.get("duration") for v, e in raw["database"].items()}
    if not isinstance(raw, dict):
        raise DatasetError(f"{path}: expected a JSON object of video -> seconds")
    durations = {}
    for video_id, seconds in raw.items():
        if not isinstance(seconds, (int, float)) or not seconds > 0:
            raise DatasetError(f"{path}: video '{video_id}': duration {seconds!r} must be positive seconds")
        durations[video_id] = float(seconds)
    return durations


def read_class_list(path: str | Path) -> list[str]:
    """One class name per line, in the order that fixes class indices."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"{path}: class list file not found")
    classes = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not classes or len(set(classes)) != len(classes):
        raise DatasetError(f"{path}: class list is empty or has duplicates")
    return classes


def read_split_file(path: str | Path) -> list[str]:
    """One video id per line; blank lines ignored; duplicates are an error."""
    path = require_file(Path(path), "split file")
    videos = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(videos)) != len(videos):
        raise DatasetError(f"{path}: lists a video more than once")
    if not videos:
        raise DatasetError(f"{path}: lists no videos")
    return videos


def read_um_database(gt_json: str | Path) -> dict[str, Any]:
    gt_json = require_file(Path(gt_json), "gt.json")
    try:
        raw = json.loads(gt_json.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{gt_json}: not valid JSON ({exc})") from exc
    database = raw.get("database") if isinstance(raw, dict) else None
    if not isinstance(database, dict):
        raise DatasetError(f"{gt_json}: no 'database' object (ActivityNet-style ground truth expected)")
    return database


def um_split_videos(split_train: str | Path, split_test: str | Path) -> dict[str, str]:
    """Video id -> protocol role, from the two split files."""
    roles = {video: "train" for video in read_split_file(split_train)}
    for video in read_split_file(split_test):
        if video in roles:
            raise DatasetError(f"{split_test}: video '{video}' is also in {split_train}")
        roles[video] = "test"
    return roles


def load_um_annotations(
    gt_json: str | Path,
    split_train: str | Path,
    split_test: str | Path,
    dataset: str,
    durations: Mapping[str, float] | None = None,
    classes: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Convert UM's ``gt.json`` + split files into the canonical ground-truth dict."""
    preset = get_preset(dataset)
    database = read_um_database(gt_json)
    roles = um_split_videos(split_train, split_test)
    source = str(gt_json)

    for video_id in roles:
        if video_id not in database:
            split = split_train if roles[video_id] == "train" else split_test
            raise DatasetError(f"{split}: video '{video_id}' is not in {gt_json}")

    if classes is None:
        classes = sorted({str(a.get("label")) for v in roles for a in database[v].get("annotations", [])})
    class_set = set(classes)
    gt = empty_ground_truth(preset, list(classes), source=f"UM gt.json '{Path(gt_json).name}' + split files")
    durations = durations or {}
    for video_id, role in roles.items():
        entry = database[video_id]
        annotations = []
        for ann in entry.get("annotations", []):
            if not isinstance(ann, dict) or "segment" not in ann or "label" not in ann:
                raise DatasetError(f"{source}: video '{video_id}': annotation {ann!r} lacks 'segment' or 'label'")
            annotations.append(
                {
                    "label": check_label(str(ann["label"]), class_set, source, video_id),
                    "segment": parse_segment(ann["segment"], source, video_id),
                }
            )
        duration = entry.get("duration", durations.get(video_id))
        if duration is None:
            raise DatasetError(
                f"{source}: video '{video_id}': no duration (gt.json has none; give --durations "
                "or features to derive it from)"
            )
        try:
            duration = float(duration)
        except (TypeError, ValueError) as exc:
            raise DatasetError(f"{source}: video '{video_id}': duration {duration!r} is not a number") from exc
        if not duration > 0:
            raise DatasetError(f"{source}: video '{video_id}': duration {duration!r} s must be positive")
        fps = entry.get("fps")
        gt["database"][video_id] = {
            "subset": role,
            "original_subset": str(entry.get("subset", role)),
            "duration": duration,
            "fps": float(fps) if fps is not None else None,
            "labels": unique_in_order(a["label"] for a in annotations),
            "annotations": annotations,
        }
    return gt
