"""The experiment protocol: several seeds, each trained for the configured iterations and
evaluated once (final checkpoint) on the test split; a results JSON with per-seed
figures, mean and standard deviation."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wtal_common.errors import ConfigError
from wtal_common.io import atomic_write_json
from wtal_common.stats import mean_and_std

from .config import TrainConfig
from .engine import LoadedData, _averages, load_data, train_seed

log = logging.getLogger("wtal_training")


def make_accelerator(device: str, mixed_precision: str):
    """An accelerate ``Accelerator`` for ``device`` (auto | cpu | cuda)."""
    import torch
    from accelerate import Accelerator

    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: no CUDA device is available")
    cpu = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
    return Accelerator(cpu=cpu, mixed_precision="no" if cpu else mixed_precision)


def check_plugin_config(config: TrainConfig, text_priors_dir: str | None) -> None:
    """Refuse a bad MLLM4WTAL setup before any data is loaded or any seed trained:
    modules without text priors, or a bad ``mllm4wtal`` option (a typo there would
    otherwise be ignored by a baseline run, or fail only once training starts)."""
    if config.modules and text_priors_dir is None:
        raise ConfigError(f"modules {config.modules} need text priors: pass --text-priors DIR")
    if config.modules or config.mllm4wtal:
        from .mllm4wtal import resolve_config

        resolve_config(config)


def load_text_priors(directory: str | None, classes: Sequence[str] | None = None):
    """Text priors with ``tp.classes`` in the data set's label order (``classes``).

    Priors built without ``--ground-truth`` are in sorted class order; loading them with the
    data set's class list reorders them, and a different class set is a ``ClassOrderError``
    (exit 2), so KSM query c and CSR sentences of class c always mean label index c.
    """
    if directory is None:
        return None
    from prior_generation.text_priors import load_text_priors as _load

    return _load(directory, list(classes) if classes is not None else None)


def _prepare(data_dir: str | Path, config: TrainConfig, device: str, text_priors_dir: str | None):
    """What every training command does first: check the plug-in setup, then the
    accelerator, the data on its device and the text priors in the data set's class order."""
    check_plugin_config(config, text_priors_dir)
    accelerator = make_accelerator(device, config.mixed_precision)
    data: LoadedData = load_data(data_dir, accelerator.device)
    text_priors = load_text_priors(text_priors_dir, data.gt["classes"])
    if data.gt.get("synthetic"):
        log.info("data set '%s' is SYNTHETIC (generated); figures are not real-benchmark results", data.gt["dataset"])
    return accelerator, data, text_priors


def run_single_seed(
    data_dir: str | Path,
    config: TrainConfig,
    seed: int,
    run_dir: str | Path,
    device: str = "auto",
    text_priors_dir: str | None = None,
    progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Train one seed straight into ``run_dir`` (no ``seed{n}/`` subfolder) and write the final
    model's test predictions, but no mAP: the workflow runs one job per seed and scores the
    predictions in its evaluation stage, so each run has one mAP file (its ``eval_map.json``).

    ``run_dir/run.json`` records what was trained (seed, iterations, seconds, the config).
    """
    run_dir = Path(run_dir)
    accelerator, data, text_priors = _prepare(data_dir, config, device, text_priors_dir)
    log.info("seed %d: training %s for %d iterations on %s", seed, config.method, config.iterations, accelerator.device)
    result = train_seed(data, config, seed, run_dir, accelerator, text_priors, progress, resume, score=False)
    if not accelerator.is_main_process:
        return {}
    record = {
        "protocol": f"final checkpoint after {config.iterations} iterations; predictions on the test split, "
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
    config: TrainConfig,
    seeds: Sequence[int],
    output_dir: str | Path,
    device: str = "auto",
    text_priors_dir: str | None = None,
    progress: bool = True,
    resume: bool = True,
) -> dict[str, Any]:
    """Train and evaluate every seed; write ``output_dir/seed{n}/...`` and ``results.json``.

    ``resume``: each seed continues from its ``resume.pt`` when there is a matching one
    (see :func:`.engine.train_seed`); ``False`` starts every seed over.
    """
    output_dir = Path(output_dir)
    accelerator, data, text_priors = _prepare(data_dir, config, device, text_priors_dir)
    per_seed: dict[str, Any] = {}
    for seed in seeds:
        log.info(
            "seed %d: training %s for %d iterations on %s", seed, config.method, config.iterations, accelerator.device
        )
        result = train_seed(data, config, seed, output_dir / f"seed{seed}", accelerator, text_priors, progress, resume)
        per_seed[str(seed)] = result
        if "average_mAP" in result:
            log.info("seed %d: average mAP %s, mAP %s", seed, result["average_mAP"], result["mAP"])
    if not accelerator.is_main_process:
        return {}
    thresholds = list(next(iter(per_seed.values()))["mAP"].keys())
    mean, std = {"mAP": {}}, {"mAP": {}}
    for thr in thresholds:
        mean["mAP"][thr], std["mAP"][thr] = mean_and_std([r["mAP"][thr] for r in per_seed.values()])
    mean["average_mAP"], std["average_mAP"] = {}, {}
    for rng in _averages(next(iter(per_seed.values()))):
        mean["average_mAP"][rng], std["average_mAP"][rng] = mean_and_std([_averages(r)[rng] for r in per_seed.values()])
    results = {
        "protocol": f"final checkpoint after {config.iterations} iterations, evaluated once on the test split; "
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
