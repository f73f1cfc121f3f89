# Training: one job per (experiment, seed) (separate GPU jobs on a cluster, parallel CPU jobs locally).
# Training knobs are params, so changing one reruns training and evaluation only; the
# priors it reads are inputs, so new priors (another MLLM, another prompt) rerun it too.
# The {experiment} path component is the run folder (common.smk: run_name): the experiment's
# name for config/config.yaml's settings, <experiment>-<hash> for settings changed by --config.


rule train:
    """Train one seed of one experiment; writes its checkpoint, test predictions and timeline
    plots (scored by `evaluate`: one mAP file per run)."""
    input:
        unpack(train_inputs),
    output:
        run="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/run.json",
        predictions="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/predictions.json",
        checkpoint="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/checkpoint.safetensors",
        timelines=report(
            directory("results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/timelines"),
            patterns=["{name}.png"],
            caption="../report/timelines.rst",
            category="Timelines",
            subcategory="{dataset} / {mllm} / {experiment} / seed {seed}",
        ),
    log:
        "logs/train/{dataset}/{mllm}/{experiment}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{mllm}/{experiment}/seed{seed}.tsv"
    wildcard_constraints:
        experiment=runs_of(TRAINED_EXPERIMENTS),
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        gpu=train_gpu,
        mem_mb=lambda wc: 32000 if train_gpu(wc) else 4000,
        runtime=lambda wc: 60 if train_gpu(wc) else 30,
        slurm_partition=lambda wc: slurm_partition(train_gpu(wc)),
    params:
        args=train_params,
        defaults=lambda wc: training_defaults_digest(
            run_training_cfg(wc)["method"], run_training_cfg(wc).get("modules")
        ),
        data=lambda wc: f"data/{wc.dataset}/canonical",
        rundir=lambda wc, output: str(Path(output.run).parent),
    shell:
        "python -m wtal_training train --data {params.data} {params.args} --seeds {wildcards.seed}"
        " --run-dir {params.rundir} --no-progress > {log} 2>&1"


rule reinfer:
    """An inference-only experiment: another experiment's checkpoint of the same seed, run
    again with other proposals (`inference.proposal_source`); no training."""
    input:
        checkpoint=reinferred_checkpoint,
        gt=ground_truth,
        features=lambda wc: canonical(wc.dataset, "features.npy"),
        index=lambda wc: canonical(wc.dataset, "features_index.json"),
    output:
        predictions="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/predictions.json",
        timelines=directory("results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/timelines"),
    log:
        "logs/reinfer/{dataset}/{mllm}/{experiment}/seed{seed}.log",
    wildcard_constraints:
        experiment=runs_of(REINFERRED_EXPERIMENTS),
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
        slurm_partition=lambda wc: slurm_partition(False),
    params:
        data=lambda wc: f"data/{wc.dataset}/canonical",
        source=lambda wc: inference_spec(wc)["proposal_source"],
        outdir=lambda wc, output: str(Path(output.predictions).parent),
    shell:
        "python -m wtal_training evaluate --checkpoint {input.checkpoint} --data {params.data}"
        " --proposal-source {params.source} --no-score --device cpu --output-dir {params.outdir}"
        " > {log} 2>&1"
