"""Small generated feature sets for tests and benchmarks (marked ``synthetic: true``).

Not a stand-in for any real data set: each class gets a random prototype vector;
action snippets are prototype + noise, background snippets are noise, so a working
method separates them quickly.  Written through the canonical writers so it exercises
the same loading code as real data.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from wtal_data.canonical import SCHEMA_VERSION, write_features, write_ground_truth


def make_toy_dataset(
    directory: str | Path,
    num_classes: int = 3,
    num_train: int = 24,
    num_test: int = 12,
    feature_dim: int = 32,
    length_range: tuple[int, int] = (40, 90),
    snippet_seconds: float = 0.64,
    signal: float = 2.0,
    seed: int = 0,
    name: str = "toy",
    family: str = "thumos14",
) -> Path:
    rng = np.random.default_rng(seed)
    classes = [f"toy_class_{i}" for i in range(num_classes)]
    prototypes = rng.normal(size=(num_classes, feature_dim)).astype(np.float32)
    database, features = {}, {}
    for i in range(num_train + num_test):
        subset = "train" if i < num_train else "test"
        vid = f"toy_{subset}_{i:04d}"
        length = int(rng.integers(*length_range))
        c = i % num_classes
        x = rng.normal(scale=1.0, size=(length, feature_dim)).astype(np.float32)
        annotations = []
        for _ in range(int(rng.integers(1, 3))):
            seg_len = int(rng.integers(max(3, length // 10), max(4, length // 4)))
            start = int(rng.integers(0, length - seg_len))
            x[start : start + seg_len] += signal * prototypes[c]
            annotations.append(
                {
                    "label": classes[c],
                    "segment": [round(start * snippet_seconds, 3), round((start + seg_len) * snippet_seconds, 3)],
                }
            )
        features[vid] = x
        database[vid] = {
            "subset": subset,
            "duration": round(length * snippet_seconds, 3),
            "fps": 25.0,
            "labels": [classes[c]],
            "annotations": annotations,
        }
    gt = {
        "schema_version": SCHEMA_VERSION,
        "dataset": name,
        "family": family,
        "synthetic": True,
        "classes": classes,
        "snippet_seconds": snippet_seconds,
        "frames_per_snippet": 16,
        "feature_fps": 25.0,
        "source": "tests/helpers/toy_data.py (generated)",
        "database": database,
        "ambiguous": {},
    }
    directory = Path(directory)
    write_features(
        directory, features, modalities={"rgb": (0, feature_dim // 2), "flow": (feature_dim // 2, feature_dim)}
    )
    write_ground_truth(directory, gt)
    return directory


def make_activitynet_toy(directory: str | Path, num_classes: int = 3, feature_dim: int = 16, seed: int = 0) -> Path:
    """An ActivityNet-shaped toy set (family ``activitynet``): 1-2 instances per video that
    cover 60-90 % of it, plus the real set's edge cases: a test video whose only extra segment
    is zero-length, and a test segment that ends 0.3 s past the video's duration.

    Built on :func:`make_toy_dataset`'s writers and feature recipe, with the segments (and
    the action signal) rewritten to ActivityNet's proportions."""
    directory = Path(directory)
    rng = np.random.default_rng(seed)
    make_toy_dataset(
        directory,
        num_classes=num_classes,
        num_train=18,
        num_test=9,
        feature_dim=feature_dim,
        length_range=(60, 140),
        signal=0.0,
        seed=seed,
        name="toy-activitynet",
        family="activitynet",
    )
    from wtal_data.canonical import FeatureStore, load_ground_truth

    gt = load_ground_truth(directory)
    store = FeatureStore.open(directory)
    prototypes = rng.normal(size=(num_classes, feature_dim)).astype(np.float32)
    features = {}
    for vid, entry in sorted(gt["database"].items()):
        x = np.array(store[vid], dtype=np.float32)
        length, c = x.shape[0], gt["classes"].index(entry["labels"][0])
        pieces = [(0.05, 0.85)] if rng.random() < 0.5 else [(0.02, 0.40), (0.50, 0.90)]
        entry["annotations"] = []
        for a, b in pieces:
            s, e = int(a * length), int(b * length)
            x[s:e] += 3.0 * prototypes[c]
            entry["annotations"].append(
                {"label": entry["labels"][0], "segment": [round(s * 0.64, 3), round(e * 0.64, 3)]}
            )
        features[vid] = x
    tests = sorted(v for v, e in gt["database"].items() if e["subset"] == "test")
    first, second = gt["database"][tests[0]], gt["database"][tests[1]]
    first["annotations"].append({"label": first["labels"][0], "segment": [0.0, 0.0]})
    features[tests[1]][int(0.9 * len(features[tests[1]])) :] += (
        3.0 * prototypes[gt["classes"].index(second["labels"][0])]
    )
    second["annotations"].append(
        {
            "label": second["labels"][0],
            "segment": [round(0.9 * second["duration"], 3), round(second["duration"] + 0.3, 3)],
        }
    )
    write_features(
        directory, features, modalities={"rgb": (0, feature_dim // 2), "flow": (feature_dim // 2, feature_dim)}
    )
    write_ground_truth(directory, gt)
    return directory
