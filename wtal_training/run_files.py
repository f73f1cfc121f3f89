"""The files one seed's run writes beside its checkpoint: metrics.csv, predictions.json,
map.json, timelines and TensorBoard scalars (the layout: docs/architecture.md, "Training").

Every file is written atomically (``wtal_common.io``), so a killed run never leaves half a
file that a rerun or the workflow would read.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from wtal_common.io import atomic_write_bytes, atomic_write_json

from .data import LoadedData


def write_metrics_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """One row per logged iteration; columns are every key any row has, in first-seen order."""
    if not rows:
        return
    fields = list(dict.fromkeys(k for r in rows for k in r))
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(path, buffer.getvalue().encode())


def write_evaluation(
    output_dir: Path,
    data: LoadedData,
    config: Any,
    outputs: dict,
    predictions: dict,
    metrics: dict | None,
    extra: dict[str, Any],
    source: str = "auto",
) -> None:
    """predictions.json, map.json (unless ``metrics`` is None: scored elsewhere) and a few
    timeline PNGs for one evaluated model (``source``: the proposals it was evaluated with)."""
    from .plots import plot_timelines

    atomic_write_json(output_dir / "predictions.json", predictions)
    plot_timelines(
        output_dir / "timelines",
        data.gt,
        outputs,
        predictions,
        config.output.num_timeline_videos,
        config=config,
        source=source,
    )
    if metrics is None:
        return
    summary = {
        "protocol": "final checkpoint, evaluated once on the test split (no model selection on test)",
        **extra,
        "dataset": data.gt["dataset"],
        "synthetic": bool(data.gt.get("synthetic", False)),
        "mAP": metrics["mAP"],
        "average_mAP": metrics["average_mAP"],
        "per_class": metrics.get("per_class", {}),
    }
    atomic_write_json(output_dir / "map.json", summary)


class TensorBoardLog:
    """A seed's TensorBoard scalars: the events file is opened on the first write and
    flushed after each one, so a killed run leaves no events file without scalars.

    A fresh start removes the events files of an abandoned attempt; a resumed run opens
    with ``purge_step`` so TensorBoard hides what the killed attempt logged after the
    resumed iteration.  Disabled (a no-op) off the main process and when re-evaluating
    a finished run, whose scalars are already there.
    """

    def __init__(self, directory: Path, resumed_at: int, enabled: bool) -> None:
        self.directory, self.resumed_at, self.enabled = directory, resumed_at, enabled
        self.writer = None
        if enabled and resumed_at == 0:
            for stale in directory.glob("events.out.tfevents.*"):
                stale.unlink()

    def scalars(self, values: dict[str, float], step: int) -> None:
        if not self.enabled:
            return
        if self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            purge = self.resumed_at + 1 if self.resumed_at else None
            self.writer = SummaryWriter(log_dir=str(self.directory), purge_step=purge)
        for name, value in values.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
