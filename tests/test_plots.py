"""Timelines (wtal_training/plots.py): what each figure draws, checked on its matplotlib
artists (lanes, colours, colorbar, legend, panels), not on pixels; and the files written."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib import colormaps

from wtal_training import plots
from wtal_training.config import build_config
from wtal_training.postprocess import predictions_from_outputs

CLASSES = ["Jump", "Throw", "Swim"]
PNG = b"\x89PNG\r\n\x1a\n"


def make_gt(count: int = 5) -> dict:
    database = {}
    for i in range(count):
        entry = {"subset": "test", "duration": 20.0, "labels": [CLASSES[i % 3]]}
        if i != count - 1:  # the last one: ground truth unknown (predict on a feature file)
            entry["annotations"] = [{"label": CLASSES[i % 3], "segment": [2.0 + i, 6.0 + i]}]
        database[f"v{i}"] = entry
    return {"classes": CLASSES, "snippet_seconds": 0.5, "database": database, "synthetic": True}


def make_outputs(gt: dict, head: bool = True) -> dict:
    rng = np.random.default_rng(0)
    outputs = {}
    for vid in gt["database"]:
        t = 40
        out = {"cas": rng.normal(size=(t, len(CLASSES) + 1)), "attention": rng.uniform(size=t)}
        if head:
            out["loc_scores"] = rng.uniform(size=(t, len(CLASSES)))
            out["loc_offsets"] = rng.uniform(1, 6, size=(t, 2))
        outputs[vid] = out
    return outputs


def detections(count: int, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    items = []
    for _ in range(count):
        a = float(rng.uniform(0, 15))
        items.append({"label": CLASSES[int(rng.integers(3))], "score": float(rng.uniform()), "segment": [a, a + 3]})
    return sorted(items, key=lambda d: -d["score"])


def axes_named(fig, name):
    return [ax for ax in fig.axes if ax.get_label() == name]


def legend_texts(fig) -> list[str]:
    return [t.get_text() for legend in fig.legends for t in legend.get_texts()]


def colorbar_axes(fig):
    return [ax for ax in fig.axes if ax.get_ylabel() == "detection score"]


@pytest.fixture
def gt():
    return make_gt()


def test_detections_each_on_a_lane_coloured_by_score_with_colorbar_and_legend(gt):
    dets = detections(8)
    fig = plots.timeline_figure(gt, "v0", make_outputs(gt, head=False)["v0"], dets, top=5)
    (det,) = axes_named(fig, "det")
    bars = det.patches
    assert len(bars) == 5  # the top 5 of 8, one lane each: no bar hides another
    assert [b.get_y() + b.get_height() / 2 for b in bars] == [0, 1, 2, 3, 4]
    assert det.get_ylim()[0] > det.get_ylim()[1]  # lane 0, the best, on top
    labels = [t.get_text() for t in det.get_yticklabels()]
    assert labels == [f"{d['label']} {d['score']:.3g}" for d in dets[:5]]
    norm = plots.score_norm(dets[:5])
    cmap = colormaps[plots.SCORE_CMAP]
    for bar, d in zip(bars, dets):
        np.testing.assert_allclose(bar.get_facecolor(), cmap(norm(d["score"])))
        assert bar.get_x() == pytest.approx(d["segment"][0])
    (cbar,) = colorbar_axes(fig)
    assert cbar.get_ylim() == pytest.approx((norm.vmin, norm.vmax))
    assert {"ground truth", "detection (colour: score)", "attention (base method)"} <= set(legend_texts(fig))
    assert not axes_named(fig, "head") and not axes_named(fig, "base")
    (truth,) = axes_named(fig, "gt")
    assert [t.get_text() for t in truth.get_yticklabels()] == ["Jump"] and len(truth.patches) == 1
    assert plots.figure_png(fig).startswith(PNG)


def test_head_and_base_proposals_on_rows_of_their_own_given_the_config(gt):
    config = build_config("delu", "thumos14")
    outputs = make_outputs(gt)
    by_source, final = plots.detections_by_source(outputs, gt, config, ["v0", "v1"])
    assert final == "head" and set(by_source) == {"head", "base"}
    for source in ("head", "base"):
        expected = predictions_from_outputs({v: outputs[v] for v in ("v0", "v1")}, gt, config, source)["results"]
        assert by_source[source] == expected
    final_dets = predictions_from_outputs(outputs, gt, config)["results"]["v0"]
    assert final_dets == by_source["head"]["v0"]  # auto with a head: the detections are the head's
    sources = {s: by_source[s]["v0"] for s in by_source}
    fig = plots.timeline_figure(gt, "v0", outputs["v0"], final_dets, by_source=sources, final_source=final)
    for source in ("head", "base"):
        (ax,) = axes_named(fig, source)
        assert len(ax.patches) == min(plots.TOP_PER_SOURCE, len(sources[source])) > 0
        np.testing.assert_allclose(
            ax.patches[0].get_facecolor()[:3], colormaps["tab10"](0 if source == "base" else 1)[:3]
        )
    texts = legend_texts(fig)
    assert {"head proposal", "base proposal"} <= set(texts)
    assert f"head score ({final_dets[0]['label']})" in texts
    (signals,) = axes_named(fig, "signals")
    assert len(signals.lines) == 2  # attention and the head's score
    assert "from the head proposals" in axes_named(fig, "det")[0].get_title(loc="left")
    plots.figure_png(fig)


def test_without_the_config_a_head_shows_as_its_score_curve(gt):
    outputs = make_outputs(gt)
    assert plots.detections_by_source(outputs, gt, None, ["v0"]) == (None, None)
    fig = plots.timeline_figure(gt, "v4", outputs["v4"], [])
    assert not axes_named(fig, "head") and any(t.startswith("head score (") for t in legend_texts(fig))
    (truth,) = axes_named(fig, "gt")
    assert [t.get_text() for t in truth.texts] == ["ground truth unknown"]
    (det,) = axes_named(fig, "det")
    assert [t.get_text() for t in det.texts] == ["no detections"] and colorbar_axes(fig)
    assert "ground truth unknown" in fig.get_suptitle()
    plots.figure_png(fig)


def test_overview_has_one_panel_per_video_a_colorbar_and_a_legend(gt):
    ids = ["v0", "v1", "v4"]
    predictions = {"results": {v: detections(6, seed=i) for i, v in enumerate(ids)}}
    fig = plots.overview_figure(gt, ids, predictions)
    panels = [ax for ax in fig.axes if ax.get_label() in ids]
    assert [ax.get_label() for ax in panels] == ids
    for ax, vid in zip(panels, ids):
        known = "annotations" in gt["database"][vid]
        assert len(ax.patches) == int(known) + plots.OVERVIEW_TOP  # its ground truth, then its best detections
        assert ax.get_title().startswith(vid)
    assert colorbar_axes(fig)
    assert {"ground truth", f"top {plots.OVERVIEW_TOP} detections (colour: score)"} <= set(legend_texts(fig))
    plots.figure_png(fig)


def test_plot_timelines_writes_count_videos_and_the_overview(gt, tmp_path, monkeypatch):
    outputs = make_outputs(gt, head=False)
    predictions = {"results": {v: detections(4, seed=i) for i, v in enumerate(outputs)}}
    panels = []
    overview_figure = plots.overview_figure

    def record(gt, video_ids, predictions, **kwargs):
        panels.append(list(video_ids))
        return overview_figure(gt, video_ids, predictions, **kwargs)

    monkeypatch.setattr(plots, "overview_figure", record)
    paths = plots.plot_timelines(tmp_path / "a", gt, outputs, predictions, 2)
    assert [p.name for p in paths] == ["v0.png", "v1.png", "overview.png"] and panels == [["v0", "v1"]]
    assert all(p.read_bytes().startswith(PNG) for p in paths)
    # None: every annotated video (v4's ground truth is unknown); predict plots all it is given
    assert len(plots.plot_timelines(tmp_path / "b", gt, outputs, predictions, None)) == 4 + 1
    paths = plots.plot_timelines(tmp_path / "c", gt, outputs, predictions, None, annotated_only=False)
    assert len(paths) == 5 + 1 and panels[-1] == ["v0", "v1", "v2", "v3", "v4"]
    assert plots.plot_timelines(tmp_path / "d", gt, outputs, predictions, 0) == [] and not (tmp_path / "d").exists()


def test_a_video_called_overview_keeps_its_own_timeline(tmp_path):
    gt = make_gt(2)
    gt["database"] = {"overview": gt["database"]["v0"], "_overview": gt["database"]["v1"]}
    outputs = {v: {"attention": np.full(40, 0.5)} for v in gt["database"]}
    paths = plots.plot_timelines(tmp_path, gt, outputs, {"results": {}}, None, annotated_only=False)
    assert sorted(p.name for p in paths) == ["__overview.png", "_overview.png", "overview.png"]


def test_the_number_of_plotted_videos_is_a_setting():
    assert build_config("delu", "thumos14").output.num_timeline_videos == 4
    assert build_config("delu", "thumos14", sets=["output.num_timeline_videos=20"]).output.num_timeline_videos == 20
    assert build_config("delu", "thumos14", sets=["num_timeline_videos=7"]).output.num_timeline_videos == 7
