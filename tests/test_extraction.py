"""I3D feature extraction (`python -m wtal_data extract`): network, flow, driver, CLI.

Random weights of the real architecture, saved and reloaded with the checkpoints' key
names; small mp4 files rendered here with the project's synthetic renderer.  Frames are
resized to 40 and cropped to 32 pixels (the real 256 / 224 would take minutes on 2 cores);
every other step is the one real videos take.
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from wtal_data.canonical import DatasetError
from wtal_data.cli import main as data_cli
from wtal_data.extraction import extract as driver
from wtal_data.extraction.extract import (
    ExtractionError,
    ExtractionSettings,
    centre_crop,
    extract_videos,
    find_videos,
    padded_indices,
    resize_shorter_side,
    rgb_input,
    sample_indices,
)
from wtal_data.extraction.flow import TVL1Flow, scale_flow
from wtal_data.extraction.i3d import InceptionI3d, InceptionModule, Unit3D, load_i3d, same_padding
from wtal_data.ingest_features import load_rgb_flow_features
from wtal_data.synthetic.render import render_video

SMALL = ExtractionSettings(resize=40, crop=32)


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small convolutions run faster on one thread than fighting for shared cores."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def script(word: str, duration: float) -> dict:
    half = duration / 2
    return {
        "duration": duration,
        "events": [
            {"start": 0.0, "end": half, "kind": "phase", "word": word},
            {"start": half, "end": duration + 1, "kind": "background", "word": "grass"},
        ],
    }


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> dict[str, Path]:
    """rgb/flow state dicts of randomly initialised networks.

    Batch-norm statistics are calibrated on random clips (one pass in training mode):
    with PyTorch's default running statistics a random 57-layer network maps every input
    to nearly the same features, and "different videos differ" could not be checked.
    """
    folder = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    paths = {}
    for stream, channels in (("rgb", 3), ("flow", 2)):
        model = InceptionI3d(channels)
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.momentum = None  # cumulative average over the calibration pass
        with torch.no_grad():
            model.train()(torch.rand(4, channels, 16, 32, 32) * 2 - 1)
        paths[stream] = folder / f"{stream}_imagenet.pt"
        torch.save(model.state_dict(), paths[stream])
    return paths


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("videos")
    render_video(script("jump", 1.0), folder / "alpha.mp4", fps=8)  # 8 frames -> 25 at 25 fps -> 2 snippets
    shutil.copy(folder / "alpha.mp4", folder / "alpha_copy.mp4")
    render_video(script("swim", 2.1), folder / "beta.mp4", fps=8)  # 17 -> round(53.1) = 53 -> 4 snippets
    render_video(script("throw", 1.32), folder / "gamma25.mp4", fps=25)  # 33 frames -> 3 snippets
    (folder / "zz_corrupt.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    return folder


EXPECTED_SNIPPETS = {"alpha": 2, "alpha_copy": 2, "beta": 4, "gamma25": 3}


@pytest.fixture(scope="module")
def extracted(tmp_path_factory, videos, weights):
    """One extraction run over all videos: the corrupt one fails, the others are written."""
    out = tmp_path_factory.mktemp("features")
    with pytest.raises(ExtractionError) as error:
        extract_videos(
            find_videos(videos), out, weights["rgb"], weights["flow"], SMALL, "cpu", batch_size=2, progress=False
        )
    return out, str(error.value)


# --- network ------------------------------------------------------------------------


def test_same_padding_is_tensorflow_same():
    assert same_padding(16, 7, 2) == (2, 3)
    assert same_padding(15, 7, 2) == (3, 3)
    assert same_padding(8, 3, 2) == (0, 1)
    assert same_padding(7, 3, 2) == (1, 1)
    assert same_padding(3, 3, 1) == (1, 1)
    assert same_padding(2, 2, 2) == (0, 0)


def test_unit3d_is_conv_then_batch_norm_with_eps_1e3_then_relu():
    unit = Unit3D(1, 1).eval()
    with torch.no_grad():
        unit.conv3d.weight.fill_(2.0)
        unit.bn.running_mean.fill_(1.0)
        unit.bn.running_var.fill_(0.999)  # + eps 1e-3 = 1
        unit.bn.weight.fill_(3.0)
        unit.bn.bias.fill_(5.0)
    x = torch.tensor([-1.0, 0.0, 0.5, 2.0]).reshape(1, 1, 1, 1, 4)
    # (2x - 1) * 3 + 5 = [-4, 2, 5, 14], then ReLU
    assert unit(x).flatten().tolist() == pytest.approx([0.0, 2.0, 5.0, 14.0], abs=1e-5)


def test_inception_module_concatenates_branches_in_order():
    torch.manual_seed(1)
    module = InceptionModule(4, (1, 2, 3, 1, 2, 1)).eval()
    x = torch.randn(1, 4, 2, 3, 3)
    with torch.no_grad():
        out = module(x)
        expected = [module.b0(x), module.b1b(module.b1a(x)), module.b2b(module.b2a(x)), module.b3b(module.b3a(x))]
    assert out.shape == (1, 1 + 3 + 2 + 1, 2, 3, 3)
    torch.testing.assert_close(out, torch.cat(expected, dim=1), rtol=0, atol=0)
    assert [e.shape[1] for e in expected] == [1, 3, 2, 1]


def test_forward_gives_the_average_pooled_mixed_5c():
    torch.manual_seed(2)
    model = InceptionI3d(3).eval()
    x = torch.rand(1, 3, 16, 64, 64) * 2 - 1
    with torch.no_grad():
        features, mixed_5c = model(x), model.mixed_5c(x)
    assert features.shape == (1, 1024)
    assert mixed_5c.shape == (1, 1024, 2, 2, 2)  # 16 / 8, ceil(64 / 32)
    torch.testing.assert_close(features, mixed_5c.mean(dim=(2, 3, 4)))
    flow_model = InceptionI3d(2, num_classes=None).eval()
    with torch.no_grad():
        assert flow_model(torch.zeros(2, 2, 16, 32, 32)).shape == (2, 1024)


def test_state_dict_with_the_checkpoint_key_names_round_trips(weights, tmp_path):
    state = torch.load(weights["rgb"], weights_only=True)
    shapes = {
        "Conv3d_1a_7x7.conv3d.weight": (64, 3, 7, 7, 7),
        "Conv3d_1a_7x7.bn.running_var": (64,),
        "Conv3d_2c_3x3.conv3d.weight": (192, 64, 3, 3, 3),
        "Mixed_3b.b0.conv3d.weight": (64, 192, 1, 1, 1),
        "Mixed_4f.b1b.conv3d.weight": (320, 160, 3, 3, 3),
        "Mixed_5c.b3b.bn.bias": (128,),
        "logits.conv3d.weight": (400, 1024, 1, 1, 1),
        "logits.conv3d.bias": (400,),
    }
    assert {k: tuple(state[k].shape) for k in shapes} == shapes
    loaded = load_i3d(weights["rgb"], "rgb").state_dict()
    assert set(loaded) == set(state)
    for key, value in state.items():
        assert torch.equal(loaded[key], value), key
    # checkpoints saved before PyTorch 0.4.1 have no num_batches_tracked; other logits sizes are fine
    old = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    old["logits.conv3d.weight"], old["logits.conv3d.bias"] = torch.zeros(157, 1024, 1, 1, 1), torch.zeros(157)
    torch.save(old, tmp_path / "charades.pt")
    model = load_i3d(tmp_path / "charades.pt", "rgb")
    assert torch.equal(model.state_dict()["Mixed_5c.b0.bn.running_mean"], state["Mixed_5c.b0.bn.running_mean"])
    assert model.logits.conv3d.out_channels == 157


def test_wrong_weight_files_are_named(weights, tmp_path):
    with pytest.raises(DatasetError, match=r"flow_imagenet\.pt.*swapped"):
        load_i3d(weights["flow"], "rgb")
    state = torch.load(weights["rgb"], weights_only=True)
    del state["Mixed_4d.b2b.conv3d.weight"]
    torch.save(state, tmp_path / "partial.pt")
    with pytest.raises(DatasetError, match=r"partial\.pt.*Mixed_4d\.b2b\.conv3d\.weight"):
        load_i3d(tmp_path / "partial.pt", "rgb")
    with pytest.raises(DatasetError, match="not found"):
        load_i3d(tmp_path / "absent.pt", "flow")


# --- frames and flow -----------------------------------------------------------------


def test_frames_are_sampled_at_25_fps_and_padded_by_repeating_the_last():
    assert sample_indices(25, 25.0).tolist() == list(range(25))
    assert sample_indices(8, 8.0).tolist() == [int((i + 0.5) * 8 / 25) for i in range(25)]
    assert sample_indices(8, 8.0)[:5].tolist() == [0, 0, 0, 1, 1]
    assert sample_indices(10, 50.0).tolist() == [1, 3, 5, 7, 9]
    padded = padded_indices(np.arange(20), 16)
    assert len(padded) == 33 and padded[19:].tolist() == [19] * 14


def test_resize_shorter_side_then_centre_crop():
    frames = np.zeros((1, 60, 80, 3), np.uint8)
    frames[0, :, :, 0] = np.arange(80)[None, :]
    resized = resize_shorter_side(frames, 30)
    assert resized.shape == (1, 30, 40, 3)
    cropped = centre_crop(resized, 30)
    assert cropped.shape == (1, 30, 30, 3)
    np.testing.assert_array_equal(cropped, resized[:, :, 5:35])


def test_rgb_and_flow_scaling():
    assert rgb_input(np.array([0, 51, 255], np.uint8)).tolist() == pytest.approx([-1.0, -0.6, 1.0])
    assert scale_flow(np.array([-30, -20, -10, 0, 5, 25.0])).tolist() == [-1, -1, -0.5, 0, 0.25, 1]


def test_tvl1_flow_points_along_the_motion():
    rng = np.random.default_rng(0)
    import cv2

    texture = cv2.GaussianBlur(rng.integers(0, 256, (64, 64)).astype(np.uint8), (0, 0), 2)
    texture = cv2.normalize(texture, None, 0, 255, cv2.NORM_MINMAX)
    first = np.repeat(texture[:, :, None], 3, axis=2)
    moved = np.roll(first, 2, axis=1)  # content moves 2 pixels right (+x)
    flow = TVL1Flow()(np.stack([first, moved, moved]))
    assert flow.shape == (2, 64, 64, 2) and flow.dtype == np.float32
    inner = flow[0, 12:-12, 12:-12]
    assert np.median(inner[..., 0]) == pytest.approx(2 / 20, abs=0.02)
    assert np.median(inner[..., 1]) == pytest.approx(0.0, abs=0.02)
    assert not flow[1].any()  # identical frames: exactly no motion


# --- driver ---------------------------------------------------------------------------


def test_every_decodable_video_is_extracted_with_ceil_frames_over_16_snippets(extracted, videos):
    import decord

    out, _ = extracted
    for video_id, expected in EXPECTED_SNIPPETS.items():
        reader = decord.VideoReader(str(videos / f"{video_id}.mp4"))
        frames = round(len(reader) * 25 / reader.get_avg_fps())
        assert math.ceil(frames / 16) == expected, video_id
        for stream in ("rgb", "flow"):
            array = np.load(out / stream / f"{video_id}.npy")
            assert array.shape == (expected, 1024) and array.dtype == np.float32, (video_id, stream)
            assert np.isfinite(array).all()


def test_corrupt_video_is_named_and_the_others_are_done(extracted, videos, weights, capsys):
    out, message = extracted
    assert "zz_corrupt" in message and str(videos / "zz_corrupt.mp4") in message
    assert "1 of 5 video(s)" in message
    assert not (out / "rgb" / "zz_corrupt.npy").exists()
    assert not (out / "extraction.json").exists()  # incomplete folder: no manifest
    # through the CLI: the finished videos are kept, only the corrupt one is tried again; exit 2
    code = data_cli(
        ["extract", "--videos", str(videos), "--output", str(out), "--device", "cpu", "--resize", "40", "--crop", "32"]
        + ["--rgb-weights", str(weights["rgb"]), "--flow-weights", str(weights["flow"])]
    )
    assert code == 2 and "zz_corrupt" in capsys.readouterr().err


def test_same_video_gives_identical_features_and_different_videos_differ(extracted):
    out, _ = extracted
    for stream in ("rgb", "flow"):
        alpha, copy = np.load(out / stream / "alpha.npy"), np.load(out / stream / "alpha_copy.npy")
        np.testing.assert_array_equal(alpha, copy)  # two passes over the same frames: bitwise equal
        beta = np.load(out / stream / "beta.npy")
        assert np.abs(alpha - beta[:2]).mean() > 0.05 * alpha.std(), stream


def test_ingest_reads_the_output(extracted):
    out, _ = extracted
    features = load_rgb_flow_features([out / "rgb"], [out / "flow"], list(EXPECTED_SNIPPETS), 2048)
    assert {v: f.shape for v, f in features.items()} == {v: (n, 2048) for v, n in EXPECTED_SNIPPETS.items()}


def test_other_settings_in_the_same_folder_are_refused(extracted, videos, weights):
    out, _ = extracted
    other = ExtractionSettings(resize=40, crop=24)
    with pytest.raises(DatasetError, match="crop"):
        extract_videos(find_videos(videos, video_ids=["alpha"]), out, weights["rgb"], weights["flow"], other, "cpu")


def test_a_killed_run_keeps_finished_videos_and_resumes(videos, weights, tmp_path, monkeypatch):
    subset = find_videos(videos, video_ids=["alpha", "alpha_copy"])
    original, calls = driver.I3DExtractor.video, []

    def killed_on_second(self, path):
        calls.append(path.stem)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as a kill between two videos' writes
        return original(self, path)

    monkeypatch.setattr(driver.I3DExtractor, "video", killed_on_second)
    with pytest.raises(KeyboardInterrupt):
        extract_videos(subset, tmp_path, weights["rgb"], weights["flow"], SMALL, "cpu", progress=False)
    assert sorted(p.name for p in (tmp_path / "rgb").iterdir()) == ["alpha.npy"]  # no partial files
    assert not (tmp_path / "flow" / "alpha_copy.npy").exists()
    finished = (tmp_path / "rgb" / "alpha.npy").stat().st_mtime_ns

    def counted(self, path):
        calls.append(path.stem)
        return original(self, path)

    monkeypatch.setattr(driver.I3DExtractor, "video", counted)
    calls.clear()
    manifest = extract_videos(subset, tmp_path, weights["rgb"], weights["flow"], SMALL, "cpu", progress=False)
    assert calls == ["alpha_copy"]
    assert (tmp_path / "rgb" / "alpha.npy").stat().st_mtime_ns == finished
    assert manifest["videos"] == {"alpha": 2, "alpha_copy": 2}
    assert (tmp_path / "extraction.json").is_file()
