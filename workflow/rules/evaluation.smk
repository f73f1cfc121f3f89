# Evaluation with the ActivityNet protocol, then the per-data-set summary
# results/{dataset}_map.json (mean and std over seeds) and its HTML table for the report.


rule evaluate:
    """mAP at each tIoU of one seed's predictions on the evaluation subset."""
    input:
        gt=ground_truth,
        predictions="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/seed{seed}/predictions.json",
    output:
        "results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/eval_map.json",
    log:
        "logs/evaluate/{dataset}/{mllm}/{experiment}/seed{seed}.log",
    conda:
        "../../envs/evaluation.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        subset=lambda wc: DATASETS[wc.dataset]["eval_subset"],
        tiou=lambda wc: DATASETS[wc.dataset]["tiou"],
    shell:
        "python -m evaluation --ground-truth {input.gt} --predictions {input.predictions}"
        " --subset {params.subset} --tiou {params.tiou:q} --output {output} > {log} 2>&1"


rule aggregate_map:
    """Mean and std mAP over seeds per tIoU, with the data set, MLLM and configuration."""
    input:
        maps=seed_maps,
    output:
        json="results/{dataset}_map.json",
        table=report(
            "results/{dataset}_map.html",
            caption="../report/map_table.rst",
            category="mAP",
            subcategory="{dataset}",
        ),
    log:
        "logs/aggregate/{dataset}.log",
    conda:
        "../../envs/workflow.yaml"
    params:
        dataset="{dataset}",
        kind=lambda wc: DATASETS[wc.dataset]["kind"],
        seeds=lambda wc: training_cfg(wc.dataset)["seeds"],
        summary=summary_config,
    script:
        "../scripts/aggregate_map.py"
