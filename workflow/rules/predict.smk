# Prediction: a trained checkpoint run on a data set's test videos with
# `python -m wtal_training predict`, the command a user runs on their own videos.  The
# checkpoint is the experiment's first seed's: one model's detections,
# not an average over seeds.  Inference is cheap, so this is a CPU job.


rule predict:
    """Detections (ActivityNet results, seconds) and timelines of the test videos, from one checkpoint."""
    input:
        # the first configured seed's final checkpoint
        checkpoint=predict_checkpoint,
        gt=ground_truth,
        features=lambda wc: canonical(wc.dataset, "features.npy"),
        index=lambda wc: canonical(wc.dataset, "features_index.json"),
    output:
        predictions="results/predictions/{dataset}/{mllm}/{experiment}.json",
        timelines=directory("results/predictions/{dataset}/{mllm}/{experiment}/timelines"),
    log:
        "logs/predict/{dataset}/{mllm}/{experiment}.log",
    conda:
        "../../envs/training.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=30,
        slurm_partition=lambda wc: slurm_partition(False),
    params:
        data=lambda wc: f"data/{wc.dataset}/canonical",
        subset=lambda wc: DATASETS[wc.dataset]["eval_subset"],
        source=predict_proposal_source,
        keep=predict_filters,
    shell:
        "python -m wtal_training predict --checkpoint {input.checkpoint} --features {params.data} {params.source}"
        " --subset {params.subset} {params.keep} --device cpu --output {output.predictions}"
        " --timelines {output.timelines} > {log} 2>&1"
