# Training: one job per seed (separate GPU jobs on a cluster, parallel CPU jobs locally).
# Training knobs are params, so changing one reruns training and evaluation only; the
# priors it reads are inputs, so new priors (another MLLM, another prompt) rerun it too.


rule train:
    """Train one seed; writes predictions, checkpoint and timeline plots."""
    input:
        unpack(train_inputs),
    output:
        results="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/results.json",
        predictions="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/seed{seed}/predictions.json",
        checkpoint="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/seed{seed}/checkpoint.safetensors",
        timelines=report(
            directory("results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/seed{seed}/timelines"),
            patterns=["{name}.png"],
            caption="../report/timelines.rst",
            category="Timelines",
            subcategory="{dataset} / {mllm} / seed {seed}",
        ),
    log:
        "logs/train/{dataset}/{mllm}/{experiment}/seed{seed}.log",
    benchmark:
        "logs/benchmarks/train/{dataset}/{mllm}/{experiment}/seed{seed}.tsv"
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
        data=lambda wc: f"data/{wc.dataset}/canonical",
        outdir=lambda wc, output: str(Path(output.results).parent),
    shell:
        "python -m wtal_training train --data {params.data} {params.args} --seeds {wildcards.seed}"
        " --output-dir {params.outdir} --no-progress > {log} 2>&1"
