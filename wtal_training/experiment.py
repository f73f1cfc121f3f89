"""The experiment protocol of ``train``: several seeds, each trained for the configured
iterations and evaluated once (final checkpoint) on the test split, with a results JSON of
per-seed figures, mean and standard deviation (``--output-dir``); or one seed straight into
its run folder, scored later by the workflow's evaluation stage (``--run-dir``).

The call chain of ``train``: :mod:`.cli` -> :func:`run_experiment` / :func:`run_single_seed`
-> :func:`.training.train_seed` per seed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wtal_common.io import atomic_write_json
from wtal_common.stats import mean_and_std

from .data import LoadedData, load_data, load_text_priors, make_accelerator
from .inference import average_map
from .objectives import check_objective_config
from .training import train_seed

log = logging.getLogger("wtal_training")


def prepare(data_dir: str | Path, config: Any, device: str, text_priors_dir: str | None, gt: dict | None = None):
    """What every training command does first: check the plug-in setup, then the
    accelerator, the data on its device and the text priors in the data set's class order.
    ``gt``: the data set's ground truth when the caller has read it already."""
    check_objective_config(config, text_priors_dir)
    accelerator = make_accelerator(device, config.optimiser.mixed_precision)
    data: LoadedData = load_data(data_dir, accelerator.device, gt)
    text_priors = load_text_priors(text_priors_dir, data.gt["classes"])
    if data.gt.get("synthetic"):
        log.info("data set '%s' is SYNTHETIC (generated); figures are not real-benchmark results", data.gt["dataset"])
    return accelerator, data, text_priors


def run_single_seed(
    data_dir: str | Path,
    config: Any,
    seed: int,
    run_dir: str | Path,
    device: str = "auto",
    text_priors_dir: str | None = None,
    progress: bool = True,
    resume: bool = True,
    gt: dict | None = None,
) -> dict[str, Any]:
    """Train one seed straight into ``run_dir`` (no ``seed{n}/`` subfolder) and write the final
    model's test predictions, but no mAP: the workflow runs one job per seed and scores the
    predictions in its evaluation stage, so each run has one mAP file (its ``eval_map.json``).

    ``run_dir/run.json`` records what was trained (seed, iterations, seconds, the config).
    """
    run_dir = Path(run_dir)
    accelerator, data, text_priors = prepare(data_dir, config, device, text_priors_dir, gt)
    log.info(
        "seed %d: training %s for %d iterations on %s",
        seed,
        config.method,
        config.optimiser.iterations,
        accelerator.device,
    )
    result = train_seed(data, config, seed, run_dir, accelerator, text_priors, progress, resume, score=False)
    if not accelerator.is_main_process:
        return {}
    record = {
        "protocol": f"final checkpoint after {config.optimiser.iterations} iterations; predictions on the test split, "
        "scored by the evaluation stage (no model selection on the test split)",
        "dataset": data.gt["dataset"],
        "synthetic": bool(data.gt.get("synthetic", False)),
        "method": config.method,
        "modules": list(config.modules),
        **result,
        "config": config.to_dict(),
    }
    atomic_write_json(run_dir / "run.json", record)
    return record


def run_experiment(
    data_dir: str | Path,
    config: Any,
    seeds: Sequence[int],
    output_dir: str | Path,
    device: str = "auto",
    text_priors_dir: str | None = None,
    progress: bool = True,
    resume: bool = True,
    gt: dict | None = None,
) -> dict[str, Any]:
    """Train and evaluate every seed; write ``output_dir/seed{n}/...`` and ``results.json``.

    ``resume``: each seed continues from its ``resume.pt`` when there is a matching one
    (see :func:`.training.train_seed`); ``False`` starts every seed over.
    """
    output_dir = Path(output_dir)
    accelerator, data, text_priors = prepare(data_dir, config, device, text_priors_dir, gt)
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        log.info(
            "seed %d: training %s for %d iterations on %s",
            seed,
            config.method,
            config.optimiser.iterations,
            accelerator.device,
        )
        result = train_seed(data, config, seed, output_dir / f"seed{seed}", accelerator, text_priors, progress, resume)
        per_seed[str(seed)] = result
        if "average_mAP" in result:
            log.info("seed %d: average mAP %s, mAP %s", seed, result["average_mAP"], result["mAP"])
    if not accelerator.is_main_process:
        return {}
    mean, std = seed_statistics(list(per_seed.values()))
    results = {
        "protocol": f"final checkpoint after {config.optimiser.iterations} iterations, evaluated once on the test split; "
        "no model selection on the test split",
        "dataset": data.gt["dataset"],
        "synthetic": bool(data.gt.get("synthetic", False)),
        "method": config.method,
        "modules": list(config.modules),
        "seeds": list(seeds),
        "per_seed": per_seed,
        "mean": mean,
        "std": std,
        "config": config.to_dict(),
    }
    atomic_write_json(output_dir / "results.json", results)
    return results


def seed_statistics(results: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Mean and sample std over seeds of each mAP@tIoU and each average mAP range."""
    first = results[0]
    mean: dict[str, Any] = {"mAP": {}, "average_mAP": {}}
    std: dict[str, Any] = {"mAP": {}, "average_mAP": {}}
    for thr in first["mAP"]:
        mean["mAP"][thr], std["mAP"][thr] = mean_and_std([r["mAP"][thr] for r in results])
    for rng in average_map(first):
        mean["average_mAP"][rng], std["average_mAP"][rng] = mean_and_std([average_map(r)[rng] for r in results])
    return mean, std
