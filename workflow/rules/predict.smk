# Prediction: a trained checkpoint run on a data set's test videos with
# `python -m wtal_training predict`, the command a user runs on their own videos.  The
# checkpoint is the first configured seed's (`training.seeds[0]`): one model's detections,
# not an average over seeds.  Inference is cheap, so this is a CPU job.


rule predict:
    """Detections (ActivityNet results, seconds) and timelines of the test videos, from one checkpoint."""
    input:
        # the first configured seed's final checkpoint
        checkpoint=lambda wc: "{run}/seed{s}/seed{s}/checkpoint.safetensors".format(
            run=run_dir(wc.dataset, wc.mllm, wc.experiment), s=training_cfg(wc.dataset)["seeds"][0]
        ),
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
    shell:
        "python -m wtal_training predict --checkpoint {input.checkpoint} --features {params.data}"
        " --subset {params.subset} --device cpu --output {output.predictions}"
        " --timelines {output.timelines} > {log} 2>&1"
