# Prior generation: the MLLM describes every training video (scattered over
# `priors.shards` jobs with Snakemake's scattergather, then gathered into one Parquet),
# then the descriptions become text priors.
# Paths carry {dataset} and {mllm}; prompts and generation knobs are params, so editing
# a prompt or switching the MLLM reruns this chain and what follows, nothing before it.


rule generate_priors_shard:
    """One shard of the training videos through the MLLM (a GPU job for model backends)."""
    input:
        unpack(video_inputs),
        gt=ground_truth,
    output:
        "results/priors/{dataset}/{mllm}/shards/shard-{scatteritem}.parquet",
    log:
        "logs/priors/{dataset}/{mllm}/generate-{scatteritem}.log",
    benchmark:
        "logs/benchmarks/priors/{dataset}/{mllm}/generate-{scatteritem}.tsv"
    conda:
        "../../envs/priors.yaml"
    threads: 2
    resources:
        gpu=prior_gpu,
        mem_mb=lambda wc: 64000 if prior_gpu(wc) else 4000,
        runtime=lambda wc: 360 if prior_gpu(wc) else 30,
        slurm_partition=lambda wc: slurm_partition(prior_gpu(wc)),
    params:
        args=generate_params,
        videos=lambda wc: videos_dir(wc.dataset),
        shard=shard_arg,
    shell:
        "python -m prior_generation generate --ground-truth {input.gt} --videos {params.videos:q}"
        " {params.args} --shard {params.shard} --output {output} > {log} 2>&1"


rule merge_priors:
    """Gather the shards into one descriptions.parquet per (dataset, MLLM)."""
    input:
        gt=ground_truth,
        shards=gather.priors("results/priors/{{dataset}}/{{mllm}}/shards/shard-{scatteritem}.parquet"),
    output:
        "results/priors/{dataset}/{mllm}/descriptions.parquet",
    log:
        "logs/priors/{dataset}/{mllm}/merge.log",
    conda:
        "../../envs/priors.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "python -m prior_generation merge --ground-truth {input.gt} --shards {input.shards}"
        " --output {output} > {log} 2>&1"


rule text_priors:
    """Tokenise, mask and embed the descriptions; meta.json marks the folder complete."""
    input:
        descriptions="results/priors/{dataset}/{mllm}/descriptions.parquet",
        gt=ground_truth,
    output:
        "results/priors/{dataset}/{mllm}/text_priors/meta.json",
    log:
        "logs/priors/{dataset}/{mllm}/text_priors.log",
    benchmark:
        "logs/benchmarks/priors/{dataset}/{mllm}/text_priors.tsv"
    conda:
        "../../envs/priors.yaml"
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        args=text_prior_params,
        outdir=lambda wc, output: str(Path(output[0]).parent),
    shell:
        "python -m prior_generation.text_priors build --descriptions {input.descriptions}"
        " --ground-truth {input.gt} --output-dir {params.outdir} {params.args}"
        " --no-progress > {log} 2>&1"
