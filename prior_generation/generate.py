"""Run a backend over every (training video, class, kind) of a shard, resumably.

Work plan: the training videos of the canonical ground truth (sorted), each with its
video-level labels (sorted), each with the two kinds.  ``--shard i/n`` keeps the videos
at positions i, i+n, i+2n, ... of that sorted list: deterministic, balanced, and a
video's frames are decoded once, in one shard.

Resume rule: rows already in the work folder's parts count as done when they succeeded
*and* were produced with the current prompt hash, backend, model, revision and
generation parameters; anything else (failures, stale rows) is generated again.  The
final shard file is rebuilt from the parts, one row per key, and written atomically.
"""

from __future__ import annotations

import datetime as _dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tqdm import tqdm

from wtal_common.errors import ConfigError, PartialFailure
from wtal_data.canonical import DatasetError, load_ground_truth, videos_in_subset

from .backends import Backend, Generation, Request, make_backend
from .frames import VideoFrames, prefetch_videos
from .prompts import KINDS, prompt_hash, render_prompt, validate_template
from .settings import DEFAULTS
from .store import KEY, PartWriter, generation_params_json, write_rows

log = logging.getLogger("prior_generation")

VIDEO_EXTENSIONS = (".mp4", ".mkv", ".webm", ".avi", ".mov")


class GenerationFailed(PartialFailure):
    """Raised with ``--fail-fast`` on the first failed row (exit 1, like a run with failed rows)."""


@dataclass
class GenerateConfig:
    ground_truth: Path
    videos: Path | None
    output: Path
    backend: str = "hf"
    model: str | None = None
    revision: str | None = None
    scripts: Path | None = None
    # generation settings: defaults in settings.py (DEFAULTS), nowhere else
    num_frames: int = DEFAULTS.num_frames
    target_fps: float | None = DEFAULTS.target_fps
    batch_size: int = DEFAULTS.batch_size
    max_new_tokens_key: int = DEFAULTS.max_new_tokens_key
    max_new_tokens_complete: int = DEFAULTS.max_new_tokens_complete
    prompt_key: str = DEFAULTS.prompt_key
    prompt_complete: str = DEFAULTS.prompt_complete
    seed: int = DEFAULTS.seed
    shard: tuple[int, int] = (0, 1)
    mllm_name: str | None = None
    work_dir: Path | None = None
    fail_fast: bool = False
    prefetch: int = DEFAULTS.prefetch
    device: str | None = DEFAULTS.device
    dtype: str | None = DEFAULTS.dtype

    def __post_init__(self) -> None:
        index, count = self.shard
        if not (count >= 1 and 0 <= index < count):
            raise ConfigError(f"--shard {index}/{count}: need 0 <= i < n")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.num_frames < 1:
            raise ConfigError(f"--num-frames must be >= 1, got {self.num_frames}")
        validate_template("key", self.prompt_key)
        validate_template("complete", self.prompt_complete)
        if self.work_dir is None:
            self.work_dir = Path(str(self.output) + ".parts")

    @property
    def templates(self) -> dict[str, str]:
        return {"key": self.prompt_key, "complete": self.prompt_complete}


@dataclass
class Summary:
    total: int = 0
    reused: int = 0
    generated: int = 0
    failures: list[tuple[str, str, str, str]] = field(default_factory=list)  # key + error
    flagged: int = 0
    seconds: float = 0.0
    videos: int = 0
    output: Path | None = None

    @property
    def ok(self) -> bool:
        return not self.failures


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError as exc:
        raise ConfigError(f"--shard {text!r}: expected i/n, e.g. 0/4") from exc
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def plan_work(gt: dict[str, Any], shard: tuple[int, int] = (0, 1)) -> list[tuple[str, list[str]]]:
    """[(video_id, sorted classes)] of the shard, in processing order."""
    index, count = shard
    plan = []
    for position, video_id in enumerate(videos_in_subset(gt, "train")):
        if position % count != index:
            continue
        classes = sorted(set(gt["database"][video_id].get("labels", [])))
        if classes:
            plan.append((video_id, classes))
    return plan


def expected_keys(gt: dict[str, Any], shard: tuple[int, int] = (0, 1)) -> list[tuple[str, str, str]]:
    return [(v, c, k) for v, classes in plan_work(gt, shard) for c in classes for k in KINDS]


def find_video(videos_dir: Path | None, video_id: str) -> Path:
    """``{videos}/{video_id}.mp4`` (or another common container); the .mp4 path if none exists."""
    if videos_dir is None:
        return Path(f"{video_id}.mp4")
    for ext in VIDEO_EXTENSIONS:
        candidate = videos_dir / f"{video_id}{ext}"
        if candidate.exists():
            return candidate
    return videos_dir / f"{video_id}.mp4"


class Runner:
    """Holds one run's state: the backend, the per-kind batches waiting, the part writer."""

    def __init__(self, config: GenerateConfig, backend: Backend | None = None):
        self.cfg = config
        self.backend = backend or make_backend(
            config.backend,
            model=config.model,
            revision=config.revision,
            scripts=config.scripts,
            seed=config.seed,
            num_frames=config.num_frames,
            target_fps=config.target_fps,
            max_new_tokens={"key": config.max_new_tokens_key, "complete": config.max_new_tokens_complete},
            device=config.device,
            dtype=config.dtype,
        )
        self.hashes = {k: prompt_hash(t) for k, t in config.templates.items()}
        self.params = {k: generation_params_json(self.backend.generation_params(k)) for k in KINDS}
        self.writer = PartWriter(config.work_dir)
        self.pending: dict[str, list[Request]] = defaultdict(list)
        self.summary = Summary()
        self.progress: tqdm | None = None

    # -- rows -------------------------------------------------------------------------------
    def is_current(self, row: dict[str, Any]) -> bool:
        """A stored row may be reused: it succeeded under the current settings."""
        kind = row["kind"]
        return (
            row["error"] is None
            and kind in KINDS
            and row["prompt_hash"] == self.hashes[kind]
            and row["backend"] == self.backend.name
            and row["model"] == self.backend.model
            and row["model_revision"] == self.backend.revision
            and row["generation_params"] == self.params[kind]
        )

    def make_row(self, req: Request, gen: Generation, seconds: float) -> dict[str, Any]:
        video = req.video
        used_video = video is not None and self.backend.needs_frames
        flags = ",".join(gen.flags) if gen.flags else None
        return {
            "video_id": req.video_id,
            "class_name": req.class_name,
            "kind": req.kind,
            "prompt": req.prompt,
            "prompt_hash": self.hashes[req.kind],
            "text": gen.text if gen.error is None else None,
            "backend": self.backend.name,
            "model": self.backend.model,
            "model_revision": self.backend.revision,
            "generation_params": self.params[req.kind],
            "num_frames": len(video.indices) if used_video else 0,
            "frame_indices": list(video.indices) if used_video else [],
            "fps": video.fps if video is not None else None,
            "seconds": float(seconds),
            "error": gen.error,
            "flags": flags if gen.error is None else None,
            "created_at": _dt.datetime.now(_dt.UTC),
        }

    def persist(self, rows: list[dict[str, Any]]) -> None:
        """Write finished rows as one part (atomic), then account for them."""
        self.writer.write(rows)
        for row in rows:
            self.summary.generated += 1
            if row["error"] is not None:
                self.summary.failures.append((row["video_id"], row["class_name"], row["kind"], row["error"]))
                log.warning("failed: %s / %s / %s: %s", row["video_id"], row["class_name"], row["kind"], row["error"])
            elif row["flags"]:
                self.summary.flagged += 1
                log.info("flagged %s: %s / %s / %s", row["flags"], row["video_id"], row["class_name"], row["kind"])
        if self.progress is not None:
            self.progress.update(len(rows))
            self.progress.set_postfix(failed=len(self.summary.failures), flagged=self.summary.flagged)
        if self.cfg.fail_fast and any(r["error"] is not None for r in rows):
            bad = next(r for r in rows if r["error"] is not None)
            raise GenerationFailed(
                f"--fail-fast: video '{bad['video_id']}' ({bad['class_name']}, {bad['kind']}): {bad['error']}"
            )

    # -- batches ----------------------------------------------------------------------------
    def flush(self, kind: str) -> None:
        requests, self.pending[kind] = self.pending[kind], []
        if not requests:
            return
        start = time.perf_counter()
        try:
            generations = self.backend.generate(requests, kind)
            if len(generations) != len(requests):
                raise RuntimeError(f"backend returned {len(generations)} results for {len(requests)} requests")
        except GenerationFailed:
            raise
        except Exception as exc:
            log.exception("backend failed on a batch of %d %s requests", len(requests), kind)
            generations = [Generation(text=None, error=f"{type(exc).__name__}: {exc}"[:500]) for _ in requests]
        share = (time.perf_counter() - start) / len(requests)
        rows = [self.make_row(r, g, share + r.decode_share) for r, g in zip(requests, generations)]
        self.persist(rows)

    def add_video(self, video: VideoFrames, todo: list[tuple[str, str]]) -> None:
        share = video.decode_seconds / max(1, len(todo))  # decoding cost, spread over the video's rows
        requests = [
            Request(video.video_id, cls, kind, render_prompt(self.cfg.templates[kind], cls), video, share)
            for cls, kind in todo
        ]
        if not video.ok:  # every row of this video fails with the decoding error
            self.persist([self.make_row(r, Generation(text=None, error=video.error), r.decode_share) for r in requests])
            return
        for req in requests:
            self.pending[req.kind].append(req)
            if len(self.pending[req.kind]) >= self.cfg.batch_size:
                self.flush(req.kind)

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> Summary:
        cfg = self.cfg
        started = time.perf_counter()
        gt = load_ground_truth(cfg.ground_truth)
        plan = plan_work(gt, cfg.shard)
        keys = [(v, c, k) for v, classes in plan for c in classes for k in KINDS]
        previous = self.writer.read_latest()
        done = {key for key, row in previous.items() if self.is_current(row)}
        todo_by_video = [(v, [(c, k) for c in classes for k in KINDS if (v, c, k) not in done]) for v, classes in plan]
        todo_by_video = [(v, todo) for v, todo in todo_by_video if todo]
        self.summary.total = len(keys)
        self.summary.reused = sum(1 for k in keys if k in done)
        self.summary.videos = len(plan)
        log.info(
            "shard %d/%d: %d videos, %d rows; %d already done in %s; backend %s, model %r",
            cfg.shard[0],
            cfg.shard[1],
            len(plan),
            len(keys),
            self.summary.reused,
            cfg.work_dir,
            self.backend.name,
            self.backend.model,
        )
        if todo_by_video:
            self.backend.load()
            self.progress = tqdm(
                total=sum(len(t) for _, t in todo_by_video),
                desc=f"priors shard {cfg.shard[0]}",
                unit="row",
                dynamic_ncols=True,
            )
            try:
                todo_map = dict(todo_by_video)
                if self.backend.needs_frames:
                    items = [(v, find_video(cfg.videos, v)) for v, _ in todo_by_video]
                    videos = prefetch_videos(items, cfg.num_frames, cfg.target_fps, depth=cfg.prefetch)
                else:
                    videos = (VideoFrames(video_id=v, path=str(find_video(cfg.videos, v))) for v, _ in todo_by_video)
                try:
                    for video in videos:
                        self.add_video(video, todo_map[video.video_id])
                finally:
                    close = getattr(videos, "close", None)
                    if close is not None:  # stop the decoding thread now, not at garbage collection
                        close()
                for kind in KINDS:
                    self.flush(kind)
            finally:
                self.progress.close()
        self.summary.output = self.finalize(keys, gt)
        self.summary.seconds = time.perf_counter() - started
        return self.summary

    def finalize(self, keys: list[tuple[str, str, str]], gt: dict[str, Any]) -> Path:
        latest = self.writer.read_latest()
        missing = [k for k in keys if k not in latest]
        if missing:  # cannot happen unless parts were deleted under us
            raise RuntimeError(f"{self.cfg.work_dir}: {len(missing)} row(s) missing after the run, e.g. {missing[0]}")
        rows = [latest[k] for k in sorted(keys)]
        self.summary.failures = [
            (r["video_id"], r["class_name"], r["kind"], r["error"]) for r in rows if r["error"] is not None
        ]
        metadata = {
            "dataset": gt.get("dataset", ""),
            "mllm_name": self.cfg.mllm_name or "",
            "backend": self.backend.name,
            "model": self.backend.model,
            "shard": f"{self.cfg.shard[0]}/{self.cfg.shard[1]}",
        }
        return write_rows(rows, self.cfg.output, metadata)


def run_generate(config: GenerateConfig, backend: Backend | None = None) -> Summary:
    return Runner(config, backend).run()


__all__ = [
    "GenerateConfig",
    "Summary",
    "run_generate",
    "plan_work",
    "expected_keys",
    "parse_shard",
    "GenerationFailed",
    "DatasetError",
    "KEY",
]
