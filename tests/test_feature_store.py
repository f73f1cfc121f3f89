"""A truncated features.npy is a named input error (exit 2) in every CLI that reads it."""

import os

import pytest
from helpers.toy_data import make_toy_dataset

from wtal_common.logs import close_file_handlers
from wtal_data.canonical import DatasetError, FeatureStore
from wtal_data.cli import main as data_main
from wtal_training.cli import main as training_main


@pytest.fixture
def truncated(tmp_path):
    directory = make_toy_dataset(tmp_path / "toy", feature_dim=8, num_train=6, num_test=3)
    path = directory / "features.npy"
    full = os.path.getsize(path)
    os.truncate(path, full - 100)  # a copy cut short: header intact, last rows missing
    return directory, full


def test_open_names_the_file_and_both_sizes(truncated):
    directory, full = truncated
    with pytest.raises(DatasetError) as info:
        FeatureStore.open(directory)
    message = str(info.value)
    assert str(directory / "features.npy") in message and "truncated" in message
    assert f"{full - 100} bytes, expected {full} bytes" in message


def test_a_cut_header_is_named_too(truncated):
    directory, _ = truncated
    os.truncate(directory / "features.npy", 20)
    with pytest.raises(DatasetError, match="features.npy: not a readable .npy file"):
        FeatureStore.open(directory, mmap=False)


def test_data_summary_exits_2_with_the_message(truncated, capsys):
    directory, full = truncated
    assert data_main(["summary", str(directory)]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and f"expected {full} bytes" in err and "Traceback" not in err
    close_file_handlers()


def test_train_exits_2_with_the_message(truncated, tmp_path, capsys):
    directory, full = truncated
    args = ["train", "--data", str(directory), "--method", "delu", "--iterations", "2", "--device", "cpu"]
    assert training_main(args + ["--output-dir", str(tmp_path / "out")]) == 2
    close_file_handlers()
    log = (tmp_path / "out" / "train.log").read_text()
    assert "truncated" in log and f"expected {full} bytes" in log and "Traceback" not in log
