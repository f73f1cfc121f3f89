"""``python -m wtal_data export``: a canonical data set's videos as per-video ``.npy`` files,
the input ``python -m wtal_training predict --features`` reads for "your own" videos."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.toy_data import make_toy_dataset

from wtal_data.canonical import FeatureStore, load_ground_truth, videos_in_subset
from wtal_data.cli import main
from wtal_training.predict import read_inputs

DIM = 8


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(
        tmp_path_factory.mktemp("toy") / "toy", feature_dim=DIM, num_train=3, num_test=4, length_range=(10, 20)
    )


@pytest.fixture(scope="module")
def test_ids(toy):
    return videos_in_subset(load_ground_truth(toy), "test")


def export(toy, *args) -> int:
    return main(["export", "--data", str(toy), *map(str, args)])


def test_one_video_to_a_named_file_equals_its_features(toy, test_ids, tmp_path, capsys):
    out = tmp_path / "my_video.npy"
    assert export(toy, "--video", test_ids[0], "--output", out) == 0
    array = np.load(out, allow_pickle=False)
    expected = FeatureStore.open(toy)[test_ids[0]]
    assert array.dtype == np.float32 and array.shape == expected.shape and array.shape[1] == DIM
    np.testing.assert_array_equal(array, expected)
    printed = capsys.readouterr().out
    assert f"{test_ids[0]}: {len(array)} snippets x {DIM} dims" in printed and str(out) in printed
    assert [p.name for p in tmp_path.iterdir()] == ["my_video.npy"]  # atomic: no temporary file left
    # what predict reads: the file's stem is the video id, the features unchanged
    inputs = read_inputs([out])
    assert list(inputs.features) == ["my_video"]
    np.testing.assert_array_equal(inputs.features["my_video"], expected)


def test_several_videos_or_a_subset_go_to_a_folder(toy, test_ids, tmp_path):
    assert export(toy, "--video", test_ids[0], "--video", test_ids[1], test_ids[2], "--output", tmp_path / "a") == 0
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [f"{v}.npy" for v in test_ids[:3]]
    assert export(toy, "--subset", "test", "--output", tmp_path / "b") == 0
    assert sorted(p.stem for p in (tmp_path / "b").glob("*.npy")) == test_ids
    store = FeatureStore.open(toy)
    for vid in test_ids:
        np.testing.assert_array_equal(np.load(tmp_path / "b" / f"{vid}.npy"), store[vid])
    assert list(read_inputs([tmp_path / "b"]).features) == test_ids  # a folder of them, for predict
    # the same id twice is exported once
    assert export(toy, "--video", test_ids[0], test_ids[0], "--output", tmp_path / "c") == 0
    assert [p.name for p in (tmp_path / "c").iterdir()] == [f"{test_ids[0]}.npy"]


@pytest.mark.parametrize(
    "case, message",
    [
        ("unknown video", "no video 'no_such_video' in this data set"),
        ("missing data folder", "no such data folder"),
        ("not a data folder", "ground truth file not found"),
        ("one file, several videos", "a .npy file holds one video, but 2 are selected"),
    ],
)
def test_bad_requests_exit_2_naming_what_is_wrong_and_write_nothing(toy, test_ids, tmp_path, capsys, case, message):
    data, output = toy, tmp_path / "out" / "x.npy"
    videos = [test_ids[0]]
    if case == "unknown video":
        videos = [test_ids[0], "no_such_video"]
        output = tmp_path / "out"
    elif case == "missing data folder":
        data = tmp_path / "nowhere"
    elif case == "not a data folder":
        data = tmp_path / "empty"
        data.mkdir()
    else:
        videos = test_ids[:2]
    assert main(["export", "--data", str(data), "--video", *videos, "--output", str(output)]) == 2
    err = capsys.readouterr().err
    assert message in err and str(output if case == "one file, several videos" else data) in err
    if case == "unknown video":
        assert test_ids[0] in err  # the error lists test videos that do exist
    assert not (tmp_path / "out").exists()


def test_video_or_subset_is_required(toy, tmp_path):
    with pytest.raises(SystemExit) as exc:
        export(toy, "--output", tmp_path / "x")
    assert exc.value.code == 2
    with pytest.raises(SystemExit):
        export(toy, "--subset", "valid", "--output", tmp_path / "x")
