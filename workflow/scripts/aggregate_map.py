"""Summarise per-seed evaluations into one summary JSON and an HTML table.

Reads the documented keys of each seed's eval_map.json (`python -m evaluation` output):
``mAP`` (tIoU -> mAP) and ``average_mAP`` ("low:high" -> mean mAP over that range).  The
summary holds the mean and sample standard deviation over seeds
(:func:`wtal_common.stats.mean_and_std`, as the trainer's results.json; 0 for one seed) of
every value, with the data set, the MLLM and the configuration that produced them.  Run by
the `aggregate_map` rule (Snakemake `script:`); also importable.
"""

import html
import sys
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))  # the repository root (Snakemake runs jobs there): wtal_common

from evaluation.ablation import read_evaluation  # noqa: E402
from wtal_common.errors import InputError  # noqa: E402
from wtal_common.io import atomic_write_json, atomic_write_text  # noqa: E402
from wtal_common.stats import mean_and_std  # noqa: E402

SCHEMA_VERSION = 2


def read_seed_map(path) -> tuple[dict, dict]:
    """(mAP per tIoU key, average mAP per 'low:high' key) of one evaluation output."""
    data = read_evaluation(path)
    return data["mAP"], data["average_mAP"]


def _over_seeds(per_seed: list[dict], keys: list[str]) -> dict:
    table = {}
    for key in keys:
        values = [m[key] for m in per_seed]
        mean, std = mean_and_std(values)
        table[key] = {"mean": mean, "std": std, "per_seed": values}
    return table


def summarise(paths, seeds, dataset, kind, config) -> dict:
    """The summary dict: per-key mean/std over seeds plus the provenance."""
    if len(paths) != len(seeds):
        raise InputError(f"{len(paths)} evaluation files for {len(seeds)} seeds")
    per_seed = [read_seed_map(p) for p in paths]
    keys, avg_keys = list(per_seed[0][0]), list(per_seed[0][1])
    for path, (maps, averages) in zip(paths, per_seed):
        if list(maps) != keys or list(averages) != avg_keys:
            raise InputError(f"{path}: tIoU thresholds differ from {paths[0]}")
    return {
        "schema_version": SCHEMA_VERSION,
        "dataset": dataset,
        "synthetic": kind == "synthetic",
        "mllm": config["mllm"],
        "experiment": config["experiment"],
        "run": config.get("run", config["experiment"]),  # the run folder: <experiment>[-<settings hash>]
        "seeds": list(seeds),
        "map": _over_seeds([m for m, _ in per_seed], keys),
        "average_map": _over_seeds([a for _, a in per_seed], avg_keys),
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
        f"<tr><th>metric</th><th>mean</th><th>std (sample)</th></tr>\n{body}\n</table></body></html>\n"
    )


def main(paths, seeds, dataset, kind, config, out_json, out_html) -> int:
    try:
        summary = summarise(paths, seeds, dataset, kind, config)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    atomic_write_text(out_html, html_table(summary))
    atomic_write_json(out_json, summary, indent=2)
    print(f"summarised {len(paths)} seeds into {out_json}", file=sys.stderr)
    return 0


if __name__ == "__main__" and "snakemake" in globals():
    sm = snakemake  # noqa: F821 (injected by Snakemake)
    sys.stderr = open(sm.log[0], "w", buffering=1)  # the rule's log holds messages and tracebacks
    sys.exit(
        main(
            list(sm.input.maps),
            list(sm.params.seeds),
            sm.wildcards.dataset,
            sm.params.kind,
            dict(sm.params.summary),
            sm.output.json,
            sm.output.table,
        )
    )
