# Inputs and params of the stage rules: the config registries turned into each rule's
# command-line arguments and input files (generation, text priors, training, inference,
# studies, publishing).  Included by common.smk.


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
