"""Summarise per-seed evaluations into results/{dataset}_map.json and an HTML table.

Mean and sample standard deviation (over seeds, ddof=1, as the trainer's results.json; 0 for one seed) of the mAP at every tIoU
and of every tIoU-range average, with the data set, the MLLM and the configuration that
produced them.  Run by the `aggregate_map` rule (Snakemake `script:`); also importable.
"""

import html
import json
import math
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

SCHEMA_VERSION = 1


def _is_threshold(key) -> bool:
    try:
        return 0.0 < float(key) <= 1.0
    except (TypeError, ValueError):
        return False


def _is_range(key) -> bool:
    parts = str(key).split(":")
    return len(parts) == 2 and all(_is_threshold(p) for p in parts)


def _find(obj, test):
    """First dict (depth-first) whose keys all pass `test` and whose values are numbers."""
    if isinstance(obj, dict):
        if obj and all(test(k) and isinstance(v, (int, float)) for k, v in obj.items()):
            return obj
        for value in obj.values():
            found = _find(value, test)
            if found is not None:
                return found
    return None


def read_seed_map(path) -> tuple[dict, dict]:
    """(mAP per tIoU key, averages per 'low:high' key) from one evaluation output."""
    with open(path) as f:
        data = json.load(f)
    per_tiou = _find(data, _is_threshold)
    if per_tiou is None:
        raise ValueError(f"{path}: no mapping of tIoU threshold -> mAP found in the evaluation output")
    averages = _find(data, _is_range) or {}
    return per_tiou, averages


def _mean_std(values):
    mean = sum(values) / len(values)
    if len(values) < 2:
        return mean, 0.0
    return mean, math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def summarise(paths, seeds, dataset, kind, config) -> dict:
    """The summary dict: per-key mean/std over seeds plus the provenance."""
    if len(paths) != len(seeds):
        raise ValueError(f"{len(paths)} evaluation files for {len(seeds)} seeds")
    per_seed = [read_seed_map(p) for p in paths]
    keys = list(per_seed[0][0])
    avg_keys = list(per_seed[0][1])
    for p, (m, a) in zip(paths, per_seed):
        if list(m) != keys or list(a) != avg_keys:
            raise ValueError(f"{p}: tIoU thresholds differ from {paths[0]}")
    table = {}
    for k in keys:
        mean, std = _mean_std([m[k] for m, _ in per_seed])
        table[k] = {"mean": mean, "std": std, "per_seed": [m[k] for m, _ in per_seed]}
    averages = {}
    for k in avg_keys:
        mean, std = _mean_std([a[k] for _, a in per_seed])
        averages[k] = {"mean": mean, "std": std, "per_seed": [a[k] for _, a in per_seed]}
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "synthetic": kind == "synthetic",
        "mllm": config["mllm"],
        "experiment": config["experiment"],
        "seeds": list(seeds),
        "map": table,
        "average_map": averages,
        "sources": [str(p) for p in paths],
        "config": config,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def html_table(summary) -> str:
    """A self-contained HTML table of the summary (for `snakemake --report`)."""
    rows = [(f"mAP@{k}", v) for k, v in summary["map"].items()]
    rows += [(f"avg {k}", v) for k, v in summary["average_map"].items()]
    body = "\n".join(
        f"<tr><td>{html.escape(name)}</td><td>{v['mean']:.4f}</td><td>{v['std']:.4f}</td></tr>" for name, v in rows
    )
    note = " (generated data, not a real data set)" if summary["synthetic"] else ""
    title = html.escape(
        f"{summary['dataset']}{note}: MLLM {summary['mllm']}, experiment "
        f"{summary['experiment']}, seeds {summary['seeds']}"
    )
    return (
        f"<html><body><h3>{title}</h3>\n<table border='1'>\n"
        f"<tr><th>metric</th><th>mean</th><th>std</th></tr>\n{body}\n</table></body></html>\n"
    )


def _atomic_write(path, text):
    tmp = Path(str(path) + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def main(paths, seeds, dataset, kind, config, out_json, out_html, log) -> int:
    try:
        summary = summarise(paths, seeds, dataset, kind, config)
    except (OSError, ValueError) as exc:
        Path(log).write_text(f"error: {exc}\n")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    _atomic_write(out_html, html_table(summary))
    _atomic_write(out_json, json.dumps(summary, indent=2) + "\n")
    Path(log).write_text(f"summarised {len(paths)} seeds into {out_json}\n")
    return 0


if __name__ == "__main__" and "snakemake" in globals():
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    sys.exit(
        main(
            list(sm.input.maps),
            list(sm.params.seeds),
            sm.params.dataset,
            sm.params.kind,
            dict(sm.params.summary),
            sm.output.json,
            sm.output.table,
            sm.log[0],
        )
    )
