"""Dataset ingest: the real annotation files in data/, the edge cases, and every bad input.

Real files: the copies in data/{thumos14,activitynet12}/raw (small, public annotations).
Features are never real here: bad-input and round-trip cases build a tiny W-TALC layout
in tmp_path the way the real one is laid out (np.save of object arrays, byte strings).
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from wtal_data.canonical import DatasetError, FeatureStore, load_ground_truth
from wtal_data.cli import main
from wtal_data.ingest import (
    FeatureOptions,
    PerVideoReader,
    UmReader,
    WtalcReader,
    ingest,
    load_um_annotations,
    load_wtalc_annotations,
    summarize,
)

ROOT = Path(__file__).resolve().parents[1]
THUMOS = ROOT / "data/thumos14/raw/Thumos14reduced-Annotations"
UM = ROOT / "data/thumos14/raw/um-format"
ANET = ROOT / "data/activitynet12/raw/ActivityNet1.2-Annotations"


def counts(gt):
    videos, segments = Counter(), Counter()
    for entry in gt["database"].values():
        videos[entry["subset"]] += 1
        segments[entry["subset"]] += len(entry["annotations"])
    return dict(videos), dict(segments)


@pytest.fixture(scope="module")
def thumos():
    return load_wtalc_annotations(THUMOS, "thumos14")


# ---------------------------------------------------------------- real annotation files


def test_thumos14_counts_and_conventions(thumos):
    assert counts(thumos) == ({"train": 200, "test": 212}, {"train": 3007, "test": 3358})
    assert len(thumos["classes"]) == 20 and thumos["classes"][0] == "BaseballPitch"
    assert thumos["snippet_seconds"] == pytest.approx(0.64)
    assert (thumos["frames_per_snippet"], thumos["feature_fps"], thumos["synthetic"]) == (16, 25.0, False)
    entry = thumos["database"]["video_validation_0000051"]
    assert entry["original_subset"] == "validation" and entry["subset"] == "train"
    assert entry["fps"] == 30.0 and entry["duration"] == pytest.approx(169.794)
    assert entry["annotations"][0] == {"label": "Billiards", "segment": [67.5, 75.9]}
    assert {e["original_subset"] for e in thumos["database"].values() if e["subset"] == "test"} == {"test"}
    # every name is a str (the files hold byte strings)
    assert all(isinstance(v, str) for v in thumos["database"]) and all(isinstance(c, str) for c in thumos["classes"])


def test_thumos14_edge_cases(thumos):
    db = thumos["database"]
    # 29 segments but an empty labels_all entry: labels derived from the segments
    assert len(db["video_test_0000270"]["annotations"]) == 29
    assert db["video_test_0000270"]["labels"] == ["HammerThrow"]
    # two- and three-label videos, labels_all kept as published
    per_video = Counter(len(e["labels"]) for e in db.values())
    assert per_video[2] == 50 and per_video[3] == 1 and per_video[0] == 0
    assert db["video_validation_0000171"]["labels"] == ["CricketBowling"]
    # segments beyond the duration are kept unchanged (official ground truth)
    assert max(a["segment"][1] for a in db["video_test_0000270"]["annotations"]) == pytest.approx(713.7)
    # ambiguous segments: 99 lines, 3 of them for video_test_0001292 which the set lacks
    assert sum(len(s) for s in thumos["ambiguous"].values()) == 96
    assert "video_test_0001292" not in thumos["ambiguous"]
    assert thumos["ambiguous"]["video_test_0000278"][0] == [0.0, 1.4]


def test_video_label_policies():
    union = load_wtalc_annotations(THUMOS, "thumos14", video_labels="union")
    segs = load_wtalc_annotations(THUMOS, "thumos14", video_labels="annotations")
    assert set(union["database"]["video_validation_0000171"]["labels"]) == {"CricketBowling", "CricketShot"}
    assert segs["database"]["video_test_0001496"]["labels"] == ["CricketShot"]
    with pytest.raises(DatasetError, match="video-labels"):
        load_wtalc_annotations(THUMOS, "thumos14", video_labels="majority")


def test_activitynet12_counts():
    gt = load_wtalc_annotations(ANET, "activitynet12")
    assert counts(gt) == ({"train": 4819, "test": 2383}, {"train": 7151, "test": 3582})
    assert len(gt["classes"]) == 100 and gt["ambiguous"] == {}
    entry = next(iter(gt["database"].values()))
    assert entry["fps"] is None and entry["original_subset"] == "training"
    # zero-length segments are kept, as in the official ground truth
    assert [142.281, 142.281] in [a["segment"] for a in gt["database"]["video_6616"]["annotations"]]


def test_um_matches_wtalc_segments(thumos):
    durations = {v: e["duration"] for v, e in thumos["database"].items()}
    um = load_um_annotations(UM / "gt.json", UM / "split_train.txt", UM / "split_test.txt", "thumos14", durations)
    assert counts(um)[0] == {"train": 200, "test": 210}
    assert set(thumos["database"]) - set(um["database"]) == {"video_test_0000270", "video_test_0001496"}
    assert um["classes"] == sorted(thumos["classes"])
    for video_id, entry in um["database"].items():
        ref = thumos["database"][video_id]
        # same segments; order may differ where a segment has two labels (CliffDiving + Diving)
        key = lambda a: (a["segment"], a["label"])  # noqa: E731
        assert sorted(entry["annotations"], key=key) == sorted(ref["annotations"], key=key), video_id
        assert entry["subset"] == ref["subset"] and entry["duration"] == ref["duration"]


def test_cli_um_with_durations_and_ambiguous(tmp_path, thumos):
    (tmp_path / "gt.json").write_text(json.dumps(thumos))
    rc = main(
        [
            "ingest",
            "--format",
            "um",
            "--dataset",
            "thumos14",
            "--gt-json",
            str(UM / "gt.json"),
            "--split-train",
            str(UM / "split_train.txt"),
            "--split-test",
            str(UM / "split_test.txt"),
            "--durations",
            str(tmp_path / "gt.json"),
            "--ambiguous",
            str(THUMOS / "Ambiguous_test.txt"),
            "--no-features",
            "--output",
            str(tmp_path / "um"),
        ]
    )
    assert rc == 0
    gt = load_ground_truth(tmp_path / "um")
    assert counts(gt) == ({"train": 200, "test": 210}, {"train": 3007, "test": 3311})
    assert gt["ambiguous"]["video_test_0000278"] == thumos["ambiguous"]["video_test_0000278"]


UM_FLAGS = ["--gt-json", str(UM / "gt.json"), "--split-train", str(UM / "split_train.txt")]
UM_FLAGS += ["--split-test", str(UM / "split_test.txt")]


def test_cli_per_video_format_reads_um_annotations(tmp_path, thumos):
    """--format per-video with --gt-json goes through the UM reader (no features needed with --no-features)."""
    (tmp_path / "gt.json").write_text(json.dumps(thumos))
    flags = ["--format", "per-video", *UM_FLAGS, "--durations", str(tmp_path / "gt.json"), "--no-features"]
    assert main(["ingest", "--dataset", "thumos14", "--output", str(tmp_path / "out"), *flags]) == 0
    assert counts(load_ground_truth(tmp_path / "out"))[0] == {"train": 200, "test": 210}


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--format", "um", "--annotations", str(THUMOS), *UM_FLAGS],
            "give either --annotations (W-TALC) or --gt-json",
        ),
        (["--format", "um", "--gt-json", str(UM / "gt.json")], "the UM layout needs --gt-json, --split-train and"),
        (["--format", "um", *UM_FLAGS, "--features", "f.npy"], "--features (packed, videoname.npy order) only goes"),
        (["--format", "wtalc", "--no-features"], "--format wtalc needs --annotations DIR"),
        (["--format", "per-video", "--features-dir", "d"], "--format per-video needs --annotations DIR"),
        (["--format", "per-video", "--annotations", str(THUMOS)], "--format per-video needs --features-dir or"),
        (["--annotations", str(THUMOS), "--rgb-dir", "d"], "--rgb-dir and --flow-dir must be given together"),
        (["--annotations", str(THUMOS), "--features", "f.npy", "--features-dir", "d"], "give one feature source"),
        (["--annotations", str(THUMOS), "--no-features", "--features-dir", "d"], "--no-features conflicts"),
    ],
    ids=["um-both", "um-incomplete", "um-packed", "wtalc-none", "per-video-none", "per-video-packed", "rgb-alone"]
    + ["two-sources", "no-features-and-dir"],
)
def test_cli_flags_that_do_not_go_together(tmp_path, capsys, flags, message):
    rc = main(["ingest", "--dataset", "thumos14", "--output", str(tmp_path / "out"), *flags])
    assert rc == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out" / "ground_truth.json").exists()


def test_um_without_durations_is_an_error():
    with pytest.raises(DatasetError, match=r"gt\.json: video '.*': no duration"):
        load_um_annotations(UM / "gt.json", UM / "split_train.txt", UM / "split_test.txt", "thumos14")


def test_cli_no_features_on_real_annotations(tmp_path, capsys):
    out = tmp_path / "canonical"
    rc = main(
        [
            "ingest",
            "--format",
            "wtalc",
            "--dataset",
            "thumos14",
            "--annotations",
            str(THUMOS),
            "--output",
            str(out),
            "--no-features",
            "--log",
            str(tmp_path / "ingest.log"),
        ]
    )
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["ground_truth.json"]
    assert counts(load_ground_truth(out))[1] == {"train": 3007, "test": 3358}
    assert "video_test_0000270" in (tmp_path / "ingest.log").read_text()
    assert "test         212      3358" in capsys.readouterr().out
    assert main(["summary", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["subsets"]["test"] == {
        "videos": 212,
        "segments": 3358,
        "classes": 20,
        "ambiguous": 96,
        "snippets": None,
    }


# ---------------------------------------------------------------- a tiny fake W-TALC layout


def obj_array(items):
    array = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        array[i] = item
    return array


def make_wtalc(root: Path, lengths=(5, 3, 4), dim=2048, features=True, seed=0):
    """Three videos (2 'validation', 1 'test'), byte strings as in the real files."""
    ann = root / "Thumos14reduced-Annotations"
    ann.mkdir(parents=True)
    names = ["video_validation_0000001", "video_validation_0000002", "video_test_0000001"]
    np.save(ann / "classlist.npy", np.array([b"BaseballPitch", b"Diving", b"HighJump"]))
    np.save(ann / "videoname.npy", np.array([n.encode() for n in names]))
    np.save(ann / "subset.npy", np.array([b"validation", b"validation", b"test"]))
    np.save(ann / "segments.npy", obj_array([[[0.5, 1.5]], [[0.0, 1.0], [1.2, 2.0]], [[0.3, 2.2]]]))
    np.save(ann / "labels.npy", obj_array([["Diving"], ["HighJump", "BaseballPitch"], ["Diving"]]))
    np.save(ann / "labels_all.npy", obj_array([["Diving"], ["HighJump", "BaseballPitch"], ["Diving"]]))
    np.save(ann / "duration.npy", np.array([[n * 0.64] for n in lengths]))
    np.save(ann / "original_fps.npy", np.array([30.0, 25.0, 29.97]))
    (ann / "Ambiguous_test.txt").write_text("video_test_0000001  1.0 1.2\r\n")
    arrays = [
        np.random.default_rng(seed + i).standard_normal((t, dim)).astype(np.float32) for i, t in enumerate(lengths)
    ]
    if features:
        np.save(root / "Thumos14reduced-I3D-JOINTFeatures.npy", obj_array(arrays))
    return ann, names, arrays


def test_wtalc_round_trip_through_feature_store(tmp_path):
    ann, names, arrays = make_wtalc(tmp_path / "raw")
    summary = ingest(tmp_path / "out", "thumos14", WtalcReader(ann))
    assert summary["subsets"]["train"]["snippets"] == 8 and summary["subsets"]["test"]["snippets"] == 4
    store = FeatureStore.open(tmp_path / "out")
    assert store.feature_dim == 2048 and store.modalities == {"rgb": (0, 1024), "flow": (1024, 2048)}
    for name, array in zip(names, arrays):
        np.testing.assert_array_equal(store[name], array)
    gt = load_ground_truth(tmp_path / "out")
    assert gt["database"]["video_validation_0000002"]["labels"] == ["HighJump", "BaseballPitch"]
    assert gt["ambiguous"] == {"video_test_0000001": [[1.0, 1.2]]}
    assert gt["database"]["video_test_0000001"]["fps"] == pytest.approx(29.97)


def expect_error(tmp_path, *patterns, reader, features=None):
    with pytest.raises(DatasetError) as info:
        ingest(tmp_path / "out", "thumos14", reader, features)
    for pattern in patterns:
        assert pattern in str(info.value), str(info.value)
    assert not (tmp_path / "out" / "ground_truth.json").exists()
    return str(info.value)


def test_missing_annotation_file(tmp_path):
    ann, _, _ = make_wtalc(tmp_path / "raw")
    (ann / "duration.npy").unlink()
    expect_error(tmp_path, "duration.npy", "not found", reader=WtalcReader(ann))


def test_missing_annotation_folder_is_named_first(tmp_path):
    expect_error(
        tmp_path,
        str(tmp_path / "Thumos14reduced-Annotations"),
        "annotation folder not found",
        reader=WtalcReader(tmp_path / "Thumos14reduced-Annotations"),
    )


def test_missing_features_file(tmp_path):
    ann, _, _ = make_wtalc(tmp_path / "raw", features=False)
    expect_error(tmp_path, "Thumos14reduced-I3D-JOINTFeatures.npy", "--no-features", reader=WtalcReader(ann))


def test_feature_count_differs_from_video_count(tmp_path):
    ann, _, arrays = make_wtalc(tmp_path / "raw")
    np.save(tmp_path / "raw" / "Thumos14reduced-I3D-JOINTFeatures.npy", obj_array(arrays[:2]))
    expect_error(tmp_path, "JOINTFeatures.npy", "holds 2 feature arrays", "3 videos", reader=WtalcReader(ann))


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda a: a[:, :1000], "feature dimension 1000 != expected 2048"),
        (lambda a: a[:0], "has zero snippets"),
        (lambda a: np.where(np.arange(len(a))[:, None] == 1, np.nan, a), "1 snippet(s) contain NaN"),
    ],
    ids=["wrong-dim", "zero-snippets", "nan"],
)
def test_bad_feature_arrays(tmp_path, corrupt, message):
    ann, _, arrays = make_wtalc(tmp_path / "raw")
    arrays[1] = corrupt(arrays[1])
    np.save(tmp_path / "raw" / "Thumos14reduced-I3D-JOINTFeatures.npy", obj_array(arrays))
    expect_error(tmp_path, "JOINTFeatures.npy", "video 'video_validation_0000002'", message, reader=WtalcReader(ann))


@pytest.mark.parametrize("file", ["labels.npy", "labels_all.npy"])
def test_label_not_in_class_list(tmp_path, file):
    ann, _, _ = make_wtalc(tmp_path / "raw")
    np.save(ann / file, obj_array([["Diving"], ["HighJump", "Cartwheel"], ["Diving"]]))
    expect_error(
        tmp_path,
        file,
        "video 'video_validation_0000002'",
        "'Cartwheel' is not in the class list",
        reader=WtalcReader(ann),
        features=FeatureOptions(no_features=True),
    )


def test_annotation_files_of_different_lengths(tmp_path):
    ann, _, _ = make_wtalc(tmp_path / "raw")
    np.save(ann / "subset.npy", np.array([b"validation", b"test"]))
    expect_error(
        tmp_path, "subset.npy", "has 2 entries", reader=WtalcReader(ann), features=FeatureOptions(no_features=True)
    )


def test_cli_exits_2_without_traceback(tmp_path, capsys):
    ann, _, arrays = make_wtalc(tmp_path / "raw")
    arrays[2] = arrays[2][:0]
    np.save(tmp_path / "raw" / "Thumos14reduced-I3D-JOINTFeatures.npy", obj_array(arrays))
    rc = main(["ingest", "--dataset", "thumos14", "--annotations", str(ann), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and "video 'video_test_0000001'" in err and "zero snippets" in err
    assert "Traceback" not in err


# ---------------------------------------------------------------- per-video feature folders


def test_per_video_folder(tmp_path):
    ann, names, arrays = make_wtalc(tmp_path / "raw", features=False)
    folder = tmp_path / "feat"
    folder.mkdir()
    for name, array in zip(names, arrays):
        np.save(folder / f"{name}.npy", array)
    np.save(folder / "video_unrelated.npy", arrays[0])  # extra files are skipped
    ingest(tmp_path / "out", "thumos14", PerVideoReader(WtalcReader(ann)), FeatureOptions(features_dirs=[folder]))
    store = FeatureStore.open(tmp_path / "out")
    assert store.videos == sorted(names)
    np.testing.assert_array_equal(store[names[1]], arrays[1])


def test_per_video_missing_file(tmp_path):
    ann, names, arrays = make_wtalc(tmp_path / "raw", features=False)
    folder = tmp_path / "feat"
    folder.mkdir()
    np.save(folder / f"{names[0]}.npy", arrays[0])
    expect_error(
        tmp_path,
        str(folder),
        f"video '{names[1]}'",
        "no feature file",
        reader=PerVideoReader(WtalcReader(ann)),
        features=FeatureOptions(features_dirs=[folder]),
    )


def make_rgb_flow(tmp_path, names, lengths):
    rgb, flow = tmp_path / "rgb", tmp_path / "flow"
    rgb.mkdir(), flow.mkdir()
    for i, (name, (t_rgb, t_flow)) in enumerate(zip(names, lengths)):
        np.save(rgb / f"{name}.npy", np.full((t_rgb, 1024), i, np.float32))
        np.save(flow / f"{name}.npy", np.full((t_flow, 1024), -i, np.float32))
    return rgb, flow


def test_rgb_flow_concatenated_and_cropped(tmp_path):
    ann, names, _ = make_wtalc(tmp_path / "raw", features=False)
    rgb, flow = make_rgb_flow(tmp_path, names, [(5, 5), (4, 3), (4, 5)])
    ingest(
        tmp_path / "out",
        "thumos14",
        PerVideoReader(WtalcReader(ann)),
        FeatureOptions(rgb_dirs=[rgb], flow_dirs=[flow]),
    )
    store = FeatureStore.open(tmp_path / "out")
    assert [store[n].shape for n in names] == [(5, 2048), (3, 2048), (4, 2048)]
    assert (store[names[1]][:, :1024] == 1).all() and (store[names[1]][:, 1024:] == -1).all()


def test_rgb_flow_too_far_apart(tmp_path):
    ann, names, _ = make_wtalc(tmp_path / "raw", features=False)
    rgb, flow = make_rgb_flow(tmp_path, names, [(5, 5), (6, 3), (4, 4)])
    expect_error(
        tmp_path,
        "rgb has 6 snippets, flow 3",
        f"video '{names[1]}'",
        reader=PerVideoReader(WtalcReader(ann)),
        features=FeatureOptions(rgb_dirs=[rgb], flow_dirs=[flow]),
    )


def test_um_with_per_video_features_derives_durations(tmp_path):
    ann, names, arrays = make_wtalc(tmp_path / "raw", features=False)
    gt_json = tmp_path / "gt.json"
    gt_json.write_text(
        json.dumps(
            {
                "database": {
                    names[0]: {"subset": "train", "annotations": [{"segment": ["0.5", "1.5"], "label": "Diving"}]},
                    names[2]: {"subset": "test", "annotations": [{"segment": ["0.3", "2.2"], "label": "Diving"}]},
                }
            }
        )
    )
    (tmp_path / "train.txt").write_text(names[0] + "\n")
    (tmp_path / "test.txt").write_text(names[2] + "\n")
    folder = tmp_path / "feat"
    folder.mkdir()
    for name, array in zip(names, arrays):
        np.save(folder / f"{name}.npy", array)
    ingest(
        tmp_path / "out",
        "thumos14",
        UmReader(gt_json, tmp_path / "train.txt", tmp_path / "test.txt"),
        FeatureOptions(features_dirs=[folder]),
    )
    gt = load_ground_truth(tmp_path / "out")
    assert gt["database"][names[2]]["duration"] == pytest.approx(4 * 0.64)
    assert gt["database"][names[0]]["annotations"] == [{"label": "Diving", "segment": [0.5, 1.5]}]
    assert summarize(tmp_path / "out")["subsets"]["test"]["snippets"] == 4
    # a split video missing from gt.json, and a label outside a given class list
    (tmp_path / "test.txt").write_text(names[1] + "\n")
    with pytest.raises(DatasetError, match=rf"test\.txt: video '{names[1]}' is not in .*gt\.json"):
        load_um_annotations(gt_json, tmp_path / "train.txt", tmp_path / "test.txt", "thumos14", {})
    (tmp_path / "test.txt").write_text(names[2] + "\n")
    with pytest.raises(DatasetError, match=rf"gt\.json: video '{names[0]}': label 'Diving' is not in the class list"):
        load_um_annotations(
            gt_json,
            tmp_path / "train.txt",
            tmp_path / "test.txt",
            "thumos14",
            {n: 3.0 for n in names},
            classes=["HighJump"],
        )


def test_bad_input_keeps_an_earlier_folder(tmp_path):
    ann, _, arrays = make_wtalc(tmp_path / "raw")
    ingest(tmp_path / "out", "thumos14", WtalcReader(ann))
    arrays[0][0, 0] = np.inf
    np.save(tmp_path / "raw" / "Thumos14reduced-I3D-JOINTFeatures.npy", obj_array(arrays))
    with pytest.raises(DatasetError, match="NaN or inf"):
        ingest(tmp_path / "out", "thumos14", WtalcReader(ann))
    assert summarize(tmp_path / "out")["subsets"]["train"]["snippets"] == 8


def test_cli_videos_lists_the_annotated_ids_of_a_subset(capsys, thumos):
    """`wtal_data videos` (what the workflow asks before ingest): the folder's sorted ids, all
    of them or one protocol subset's, the same as the ingest reader's roles."""
    assert main(["videos", "--annotations", str(THUMOS), "--dataset", "thumos14", "--subset", "train"]) == 0
    train = json.loads(capsys.readouterr().out)
    assert train == sorted(v for v, e in thumos["database"].items() if e["subset"] == "train")
    assert main(["videos", "--annotations", str(THUMOS), "--dataset", "thumos14"]) == 0
    assert json.loads(capsys.readouterr().out) == sorted(thumos["database"])
