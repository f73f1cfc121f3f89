"""Generate a synthetic data set folder: canonical ground truth, features, scripts, videos.

The structure (videos, durations, subsets, segments, classes) is copied from a real
canonical ground truth; only what the videos *show* is generated.  Output::

    DIR/canonical/ground_truth.json   dataset "thumos14-synth", "demo" (or the config's
                                      dataset_names), "synthetic": true
    DIR/canonical/features.npy        + features_index.json (canonical.write_features)
    DIR/canonical/scripts.json        what each video shows (schema in .scripts)
    DIR/videos/{video_id}.mp4         rendered from the script (optional)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from collections.abc import Mapping as MappingABC
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits
from tqdm import tqdm

from ..canonical import DatasetError, atomic_write_json, dataset_family, write_features, write_ground_truth
from .generate import FeatureModel
from .scripts import SCRIPTS_FILE, StateTable, Timeline, build_video, class_scripts
from .subsets import SIZES, select_subset_videos, subset_spec

log = logging.getLogger(__name__)
DATASET_NAMES = {"full": "thumos14-synth", "demo": "demo"}


def dataset_name(cfg: Mapping[str, Any], size: str) -> str:
    """The generated set's name: ``dataset_names`` of the config (a second benchmark names its
    own), else :data:`DATASET_NAMES`.  A size the config does not name is an error."""
    names = cfg.get("dataset_names") or DATASET_NAMES
    if size not in names:
        raise DatasetError(
            f"--size {size!r}: config {cfg.get('_path', '?')} generates only {sorted(names)} (field dataset_names)"
        )
    return str(names[size])


def demo_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The generator's config for the demo: narrower features, same signal-to-noise.

    The demo must train on a 2-core laptop CPU in a few minutes, and the base methods'
    widths scale with the feature dimension, so the demo uses ``demo.dim_per_modality``
    dims per modality instead of 1024.  The class signal lives in the 50-d word space and
    reaches the features through a random projection, so a linear read-out's
    signal-to-noise grows with the number of feature dims; scaling the feature-space
    noise by sqrt(D_demo / D_full) keeps it, and so the difficulty, the same.
    """
    narrow = cfg.get("demo", {}).get("dim_per_modality")
    if not narrow:
        return dict(cfg)
    feat = dict(cfg["features"])
    scale = (int(narrow) / int(feat["dim_per_modality"])) ** 0.5
    feat["feature_noise_std"] = float(feat["feature_noise_std"]) * scale
    feat["video_offset_std"] = float(feat["video_offset_std"]) * scale
    feat["dim_per_modality"] = int(narrow)
    return {**cfg, "features": feat}


def select_demo_videos(gt: Mapping[str, Any], train_per_class: int = 1, test_per_class: int = 1) -> list[str]:
    """Deterministic small subset: per class and subset, the shortest unused videos with that label.

    Short videos keep the demo fast to train on a CPU.  Weak supervision needs more than
    one training video per class (the base methods' sampler pairs videos of the same
    class), so the demo takes a few per class for training and one per class for test.
    """
    chosen: list[str] = []
    taken: set[str] = set()
    db = gt["database"]
    for subset, per_class in (("train", train_per_class), ("test", test_per_class)):
        for cls in gt["classes"]:
            candidates = sorted(
                (float(e["duration"]), v)
                for v, e in db.items()
                if e["subset"] == subset
                and v not in taken
                and cls in ({a["label"] for a in e.get("annotations", [])} | set(e.get("labels", [])))
            )
            for _, vid in candidates[:per_class]:
                chosen.append(vid)
                taken.add(vid)
    return sorted(chosen)


class LazyFeatures(MappingABC):
    """A read-only mapping video_id -> features computed on access (nothing held in memory).

    ``shapes`` gives every video's (T, D) from its timeline without computing features,
    so ``canonical.write_features`` computes and writes each video once.
    """

    def __init__(self, model: FeatureModel, timelines: Mapping[str, Timeline], seed: int, progress: bool = True):
        self.model, self.timelines, self.seed = model, timelines, seed
        self._bar = tqdm(total=len(timelines), desc="features", unit="video", disable=not progress)

    @property
    def shapes(self) -> dict[str, tuple[int, int]]:
        fps = self.model.frames_per_snippet
        return {vid: (tl.state.shape[0] // fps, self.model.dim) for vid, tl in self.timelines.items()}

    def __getitem__(self, video_id: str) -> np.ndarray:
        self._bar.update(1)
        return self.model.video_features(video_id, self.timelines[video_id], self.seed)

    def __iter__(self) -> Iterator[str]:
        return iter(self.timelines)

    def __len__(self) -> int:
        return len(self.timelines)

    def close(self) -> None:
        self._bar.close()


@dataclass
class ScriptedVideos:
    """What the generator decided each video shows, before any feature is computed."""

    scripts: dict[str, Any]  # per class: its phases (schema in .scripts)
    model: FeatureModel
    records: dict[str, Any]  # per video: instances, labels, snippets (scripts.json "videos")
    timelines: dict[str, Timeline]  # per video: the state of every frame


def _generate_dataset(
    structure: Mapping[str, Any],
    cfg: Mapping[str, Any],
    output: str | Path,
    size: str = "full",
    seed: int | None = None,
    videos: bool | None = None,
    progress: bool = True,
    vectors=None,
) -> dict[str, Any]:
    """Write the synthetic set under ``output``; return a summary (counts, sizes, seconds)."""
    if size not in SIZES:
        raise DatasetError(f"--size {size!r}: must be one of {sorted(SIZES)}")
    name = dataset_name(cfg, size)
    seed = int(cfg["seed"] if seed is None else seed)
    videos = (size == "demo") if videos is None else videos
    output = Path(output)
    canonical_dir = output / "canonical"
    started = time.perf_counter()

    if size == "demo":
        cfg = demo_config(cfg)
    ids = chosen_videos(structure, cfg, size)
    scripted = script_videos(structure, cfg, ids, seed, vectors, progress)
    seconds = {"scripts": time.perf_counter() - started}

    gt = synthetic_ground_truth(structure, cfg, name, seed, ids, scripted.records)
    scripts_doc = scripts_document(cfg, name, seed, scripted)
    # A half-regenerated folder must not look complete: drop the old marker first.
    (canonical_dir / "ground_truth.json").unlink(missing_ok=True)
    write_synthetic_features(canonical_dir, scripted, seed, name, progress)
    seconds["features"] = time.perf_counter() - started - seconds["scripts"]
    atomic_write_json(canonical_dir / SCRIPTS_FILE, scripts_doc)
    # ground truth last: its presence marks a complete canonical folder
    write_ground_truth(canonical_dir, gt)

    seconds["videos"] = render_videos(scripted.records, ids, output, cfg, progress) if videos else 0.0
    seconds["total"] = time.perf_counter() - started
    summary = _summary(structure, name, ids, scripted.records, output, videos, seconds)
    log.info("generated %s", summary)
    return summary


def chosen_videos(structure: Mapping[str, Any], cfg: Mapping[str, Any], size: str) -> list[str]:
    """The videos a size generates: all (``full``), the demo's, or the config's seeded ``subset``."""
    if size == "demo":
        return select_demo_videos(structure, int(cfg["demo"]["train_per_class"]), int(cfg["demo"]["test_per_class"]))
    if size == "subset":
        return select_subset_videos(structure, *subset_spec(cfg))
    return sorted(structure["database"])


def script_videos(
    structure: Mapping[str, Any], cfg: Mapping[str, Any], ids: list[str], seed: int, vectors, progress: bool
) -> ScriptedVideos:
    """Class scripts, the feature model, and each video's script and frame timeline (in ``ids`` order)."""
    classes = list(structure["classes"])
    db = structure["database"]
    scripts = class_scripts(cfg, classes)
    table = StateTable.build(scripts, list(cfg["background_words"]))
    model = FeatureModel.build(cfg, table, classes, seed, vectors=vectors)
    records: dict[str, Any] = {}
    timelines: dict[str, Timeline] = {}
    for vid in tqdm(ids, desc="scripts", unit="video", disable=not progress):
        records[vid], timelines[vid] = build_video(vid, db[vid], scripts, table, cfg, seed)
    return ScriptedVideos(scripts, model, records, timelines)


def synthetic_ground_truth(
    structure: Mapping[str, Any],
    cfg: Mapping[str, Any],
    name: str,
    seed: int,
    ids: list[str],
    records: Mapping[str, Any],
) -> dict[str, Any]:
    """The canonical ground truth: the structure's videos, with the generated instances as segments."""
    db = structure["database"]
    snip = cfg["snippet"]
    return {
        "schema_version": structure.get("schema_version", 1),
        "dataset": name,
        "family": dataset_family(structure, f"structure of {name}"),  # the real set it copies
        "synthetic": True,
        "classes": list(structure["classes"]),
        "snippet_seconds": float(snip["frames_per_snippet"]) / float(snip["feature_fps"]),
        "frames_per_snippet": int(snip["frames_per_snippet"]),
        "feature_fps": float(snip["feature_fps"]),
        "source": (
            f"generated by wtal_data.synthetic (seed {seed}, config {cfg.get('_path')}) "
            f"on the structure of dataset '{structure.get('dataset')}'; features are synthetic"
        ),
        "database": {
            vid: {
                "subset": db[vid]["subset"],
                **({"original_subset": db[vid]["original_subset"]} if "original_subset" in db[vid] else {}),
                "duration": float(db[vid]["duration"]),
                "fps": float(cfg["demo"]["render_fps"]),
                "labels": records[vid]["labels"],
                "annotations": [
                    {"label": a["label"], "segment": list(a["segment"])} for a in records[vid]["instances"]
                ],
            }
            for vid in ids
        },
        # The real ambiguous spans show nothing special here, so none are carried over.
        "ambiguous": {},
    }


def scripts_document(cfg: Mapping[str, Any], name: str, seed: int, scripted: ScriptedVideos) -> dict[str, Any]:
    """``scripts.json``: what each video shows (schema in :mod:`.scripts`)."""
    doc = {
        "schema_version": 1,
        "dataset": name,
        "synthetic": True,
        "seed": seed,
        "word_vectors": cfg.get("word_vectors", "glove-6b-50d"),
        "describer": dict(cfg["describer"]),
        "background_words": list(cfg["background_words"]),
        "classes": scripted.scripts,
        "videos": scripted.records,
    }
    if "video_facts" in cfg:
        doc["video_facts"] = cfg["video_facts"]
    return doc


def write_synthetic_features(
    canonical_dir: Path, scripted: ScriptedVideos, seed: int, dataset: str, progress: bool
) -> None:
    """Compute and write every video's features in one pass (``features.npy`` + index)."""
    model = scripted.model
    lazy = LazyFeatures(model, scripted.timelines, seed, progress)
    try:
        half = model.dim // 2  # RGB half then flow half, also for the narrower demo features
        write_features(
            canonical_dir,
            lazy,
            modalities={"rgb": (0, half), "flow": (half, model.dim)},
            source=f"synthetic features ({dataset})",
            shapes=lazy.shapes,
        )
    finally:
        lazy.close()


def render_videos(
    records: Mapping[str, Any], ids: list[str], output: Path, cfg: Mapping[str, Any], progress: bool
) -> float:
    """Render ``output/videos/{video}.mp4`` from the scripts; return the seconds it took."""
    from .render import render_video

    t0 = time.perf_counter()
    render_fps = float(cfg["demo"]["render_fps"])
    for vid in tqdm(ids, desc="videos", unit="video", disable=not progress):
        render_video(records[vid], output / "videos" / f"{vid}.mp4", render_fps, int(cfg["demo"]["frame_size"]))
    return time.perf_counter() - t0


def _summary(
    structure: Mapping[str, Any],
    name: str,
    ids: list[str],
    records: Mapping[str, Any],
    output: Path,
    videos: bool,
    seconds: Mapping[str, float],
) -> dict[str, Any]:
    """Counts, sizes on disk and seconds per step."""
    db = structure["database"]
    canonical_dir = output / "canonical"
    return {
        "dataset": name,
        "videos": len(ids),
        "train_videos": sum(db[v]["subset"] == "train" for v in ids),
        "test_videos": sum(db[v]["subset"] == "test" for v in ids),
        "segments": sum(len(r["instances"]) for r in records.values()),
        "snippets": sum(r["num_snippets"] for r in records.values()),
        "features_bytes": (canonical_dir / "features.npy").stat().st_size,
        "scripts_bytes": (canonical_dir / SCRIPTS_FILE).stat().st_size,
        "videos_bytes": sum(p.stat().st_size for p in (output / "videos").glob("*.mp4")) if videos else 0,
        "seconds_scripts": round(seconds["scripts"], 3),
        "seconds_features": round(seconds["features"], 3),
        "seconds_videos": round(seconds["videos"], 3),
        "seconds_total": round(seconds["total"], 3),
    }


def generate_dataset(*args: Any, **kwargs: Any) -> dict[str, Any]:
    """Write the synthetic set (see :func:`_generate_dataset`) with one BLAS thread.

    A float32 matrix product's last bits depend on how many threads split it, and
    Snakemake sets each job's thread count; generating on one BLAS thread keeps the
    features byte-identical for a seed on any machine and under any scheduler.
    """
    with threadpool_limits(limits=1, user_api="blas"):
        return _generate_dataset(*args, **kwargs)
