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


# The rest of the helpers, one job per file (relative to this one).
include: "real_inputs.smk"
include: "params.smk"
include: "headlines.smk"
