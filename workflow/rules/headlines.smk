# What a finished run prints (the Snakefile's onsuccess): each target's headline mAP, the
# reference beside it, and whether the experiment is the paper's method.  Included by
# common.smk.

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
