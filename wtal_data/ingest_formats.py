"""The input layouts ``ingest --format`` reads: one reader per layout, registered by name.

Every reader is a small frozen dataclass of its own options, registered in
:data:`INGEST_FORMATS` (the same :class:`~wtal_common.registry.Registry` style as base
methods and backends).  A reader knows

* ``add_arguments(parser)``: its own argument group on the ``ingest`` command line;
* ``from_args(args, features)``: its options from the parsed command line, checking the
  flags that must come together;
* ``check(features)``: whether it can work with the feature source given;
* ``read(dataset, features)``: the canonical ground truth and the features, in memory.

Where the features come from is shared by all layouts, so it is its own options object,
:class:`FeatureOptions` (one source: packed file, per-video folders, rgb + flow folders,
or none).  :func:`.ingest.ingest` checks, reads and writes.
"""

from __future__ import annotations

import argparse
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, ClassVar, NamedTuple

import numpy as np

from wtal_common.registry import Registry

from .canonical import DatasetError
from .ingest_common import get_preset, logger
from .ingest_features import load_per_video_features, load_rgb_flow_features
from .ingest_um import load_durations, load_um_annotations, read_class_list, read_um_database, um_split_videos
from .ingest_wtalc import VIDEO_LABEL_POLICIES, find_wtalc_features, load_wtalc_annotations, load_wtalc_features


class Ingested(NamedTuple):
    """What a reader gives: the canonical ground truth, the features, and where they came from."""

    gt: dict[str, Any]
    features: dict[str, np.ndarray]
    feature_note: str


def _paths(paths: Sequence[str | Path]) -> tuple[Path, ...]:
    return tuple(Path(p) for p in paths)


@dataclass(frozen=True)
class FeatureOptions:
    """Where the features come from: at most one source, or none (``no_features``).

    Checked on construction, so an object of this class is always a usable choice.
    """

    packed_file: Path | None = None  # --features: W-TALC <Name>-I3D-JOINTFeatures.npy
    features_dirs: Sequence[Path] = ()  # --features-dir: <video>.npy (T, 2048)
    rgb_dirs: Sequence[Path] = ()  # --rgb-dir: <video>.npy (T, 1024)
    flow_dirs: Sequence[Path] = ()  # --flow-dir: <video>.npy (T, 1024)
    feature_dim: int | None = 2048
    no_features: bool = False

    def __post_init__(self) -> None:
        for name in ("features_dirs", "rgb_dirs", "flow_dirs"):
            object.__setattr__(self, name, _paths(getattr(self, name)))
        if self.packed_file is not None:
            object.__setattr__(self, "packed_file", Path(self.packed_file))
        if bool(self.rgb_dirs) != bool(self.flow_dirs):
            raise DatasetError("--rgb-dir and --flow-dir must be given together")
        if self.num_sources > 1:
            raise DatasetError("give one feature source: --features, --features-dir or --rgb-dir/--flow-dir")
        if self.no_features and self.num_sources:
            raise DatasetError("--no-features conflicts with the feature options given")

    @property
    def num_sources(self) -> int:
        return sum([self.packed_file is not None, bool(self.features_dirs), bool(self.rgb_dirs)])

    @property
    def per_video(self) -> bool:
        """Features come from per-video folders (one ``.npy`` per video)."""
        return bool(self.features_dirs or self.rgb_dirs)

    def with_packed_file(self, path: Path) -> FeatureOptions:
        return replace(self, packed_file=path)

    def load(self, video_ids: Sequence[str]) -> tuple[dict[str, np.ndarray], str]:
        """The features of ``video_ids`` and a note on their source (for ``ground_truth.json``)."""
        if self.no_features:
            return {}, "no features"
        if self.packed_file is not None:
            features = load_wtalc_features(self.packed_file, list(video_ids), self.feature_dim)
            return features, f"packed {self.packed_file.name}"
        if self.features_dirs:
            return load_per_video_features(self.features_dirs, video_ids, self.feature_dim), "per-video .npy files"
        features = load_rgb_flow_features(self.rgb_dirs, self.flow_dirs, video_ids, self.feature_dim)
        return features, "per-video rgb + flow .npy files"

    @staticmethod
    def add_arguments(parser: argparse.ArgumentParser) -> None:
        feat = parser.add_argument_group("features (one source, or --no-features)")
        feat.add_argument(
            "--features",
            type=Path,
            help="packed <Name>-I3D-JOINTFeatures.npy (default for wtalc: next to --annotations)",
        )
        feat.add_argument(
            "--features-dir", type=Path, action="append", default=[], help="folder of <video>.npy (T, 2048); repeatable"
        )
        feat.add_argument(
            "--rgb-dir", type=Path, action="append", default=[], help="folder of rgb <video>.npy (T, 1024); repeatable"
        )
        feat.add_argument(
            "--flow-dir",
            type=Path,
            action="append",
            default=[],
            help="folder of flow <video>.npy (T, 1024); repeatable",
        )
        feat.add_argument("--feature-dim", type=int, default=2048, help="expected feature dimension (RGB + flow)")
        feat.add_argument("--no-features", action="store_true", help="write ground_truth.json alone")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> FeatureOptions:
        return cls(
            packed_file=args.features,
            features_dirs=args.features_dir,
            rgb_dirs=args.rgb_dir,
            flow_dirs=args.flow_dir,
            feature_dim=args.feature_dim,
            no_features=args.no_features,
        )


class FormatReader(ABC):
    """One input layout; see the module docstring for the four methods."""

    summary: ClassVar[str]  # one line for ``--format``'s help

    @classmethod
    @abstractmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None: ...

    @classmethod
    @abstractmethod
    def from_args(cls, args: argparse.Namespace, features: FeatureOptions) -> FormatReader: ...

    @abstractmethod
    def check(self, features: FeatureOptions) -> None: ...

    @abstractmethod
    def read(self, dataset: str, features: FeatureOptions) -> Ingested: ...


INGEST_FORMATS: Registry[type[FormatReader]] = Registry("ingest format", field="--format")


@INGEST_FORMATS.register("wtalc")
@dataclass(frozen=True)
class WtalcReader(FormatReader):
    """W-TALC / CO2-Net ``<Name>-Annotations/*.npy``; features packed next to it unless given."""

    summary: ClassVar[str] = "<Name>-Annotations/*.npy"

    annotations: Path
    video_labels: str = "labels_all"

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("W-TALC annotations (--format wtalc, or per-video)")
        group.add_argument("--annotations", type=Path, help="W-TALC <Name>-Annotations folder")
        group.add_argument(
            "--video-labels",
            choices=VIDEO_LABEL_POLICIES,
            default="labels_all",
            help="W-TALC video-level labels: labels_all.npy as published (derived from segments "
            "where empty), the segments' labels, or their union",
        )

    @classmethod
    def from_args(cls, args: argparse.Namespace, features: FeatureOptions) -> WtalcReader:
        if args.annotations is None:
            raise DatasetError(f"--format {args.fmt} needs --annotations DIR (the <Name>-Annotations folder)")
        return cls(args.annotations, args.video_labels)

    def check(self, features: FeatureOptions) -> None:
        if not Path(self.annotations).is_dir():  # before looking for the features next to it
            raise DatasetError(f"{self.annotations}: annotation folder not found")

    def read(self, dataset: str, features: FeatureOptions) -> Ingested:
        if not (features.no_features or features.num_sources):
            features = features.with_packed_file(find_wtalc_features(self.annotations, dataset))
        gt = load_wtalc_annotations(self.annotations, dataset, video_labels=self.video_labels)
        return Ingested(gt, *features.load(list(gt["database"])))


@INGEST_FORMATS.register("um")
@dataclass(frozen=True)
class UmReader(FormatReader):
    """UM's ``gt.json`` + split files; durations from gt.json, ``durations``, or the features."""

    summary: ClassVar[str] = "gt.json + split files"

    gt_json: Path
    split_train: Path
    split_test: Path
    durations: Mapping[str, float] | None = None  # seconds, for videos gt.json gives none
    classes: Sequence[str] | None = None  # class order; default: the sorted labels

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        group = parser.add_argument_group("UM annotations (--format um, or per-video)")
        group.add_argument("--gt-json", type=Path, help="UM ActivityNet-style gt.json")
        group.add_argument("--split-train", type=Path, help="UM split_train.txt")
        group.add_argument("--split-test", type=Path, help="UM split_test.txt")
        group.add_argument(
            "--durations",
            type=Path,
            help="JSON {video: seconds} or a ground truth with durations (UM gt.json has none)",
        )
        group.add_argument("--classes", type=Path, help="class list, one per line (UM; default: sorted labels)")

    @classmethod
    def from_args(cls, args: argparse.Namespace, features: FeatureOptions) -> UmReader:
        if args.annotations is not None:
            raise DatasetError("give either --annotations (W-TALC) or --gt-json (UM), not both")
        if args.gt_json is None or args.split_train is None or args.split_test is None:
            raise DatasetError("the UM layout needs --gt-json, --split-train and --split-test")
        return cls(
            args.gt_json,
            args.split_train,
            args.split_test,
            durations=load_durations(args.durations) if args.durations else None,
            classes=read_class_list(args.classes) if args.classes else None,
        )

    def check(self, features: FeatureOptions) -> None:
        if features.packed_file is not None:
            raise DatasetError("--features (packed, videoname.npy order) only goes with --annotations")

    def read(self, dataset: str, features: FeatureOptions) -> Ingested:
        snippet_seconds = get_preset(dataset).snippet_seconds
        video_ids = list(um_split_videos(self.split_train, self.split_test))
        loaded, note = features.load(video_ids)
        durations, derived = self._durations(video_ids, loaded, snippet_seconds)
        gt = load_um_annotations(
            self.gt_json, self.split_train, self.split_test, dataset, durations=durations, classes=self.classes
        )
        if derived:
            logger.info(
                "durations of %d video(s) derived from snippet counts (T * %.2f s)", len(derived), snippet_seconds
            )
            gt["source"] += "; durations from features (snippets x snippet_seconds)"
        return Ingested(gt, loaded, note)

    def _durations(
        self, video_ids: Sequence[str], features: Mapping[str, np.ndarray], snippet_seconds: float
    ) -> tuple[dict[str, float], list[str]]:
        """Given durations plus, for videos neither gt.json nor they cover, snippets x snippet_seconds."""
        database = read_um_database(self.gt_json)
        durations = dict(self.durations or {})
        derived = [
            v for v in video_ids if v not in durations and v in features and "duration" not in database.get(v, {})
        ]
        for video_id in derived:
            durations[video_id] = features[video_id].shape[0] * snippet_seconds
        return durations, derived


@INGEST_FORMATS.register("per-video")
@dataclass(frozen=True)
class PerVideoReader(FormatReader):
    """Either annotation layout, features from per-video folders (e.g. UM's own features).

    It has no flags of its own: the annotation source is ``--annotations`` (W-TALC) or
    ``--gt-json`` and the split files (UM), and the folders are feature options.
    """

    summary: ClassVar[str] = "either annotation source, features from per-video folders"

    annotations: WtalcReader | UmReader

    @classmethod
    def add_arguments(cls, parser: argparse.ArgumentParser) -> None:
        pass  # the W-TALC / UM groups and the feature folders

    @staticmethod
    def _require_folders(features: FeatureOptions) -> None:
        if not (features.per_video or features.no_features):
            raise DatasetError("--format per-video needs --features-dir or --rgb-dir/--flow-dir")

    @classmethod
    def from_args(cls, args: argparse.Namespace, features: FeatureOptions) -> PerVideoReader:
        cls._require_folders(features)
        layout = UmReader if args.gt_json is not None else WtalcReader
        return cls(layout.from_args(args, features))

    def check(self, features: FeatureOptions) -> None:
        self._require_folders(features)
        self.annotations.check(features)

    def read(self, dataset: str, features: FeatureOptions) -> Ingested:
        return self.annotations.read(dataset, features)


def add_format_arguments(parser: argparse.ArgumentParser) -> None:
    """``--format`` and every registered reader's own group."""
    parser.add_argument(
        "--format",
        dest="fmt",
        choices=INGEST_FORMATS.names(),
        default="wtalc",
        help="input layout: " + ", ".join(f"{name} ({INGEST_FORMATS[name].summary})" for name in INGEST_FORMATS),
    )
    for name in INGEST_FORMATS:
        INGEST_FORMATS[name].add_arguments(parser)
