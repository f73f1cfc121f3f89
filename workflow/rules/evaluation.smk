# Evaluation with the ActivityNet protocol, then the summary of each (data set, MLLM,
# experiment), results/summaries/{dataset}/{mllm}/{experiment}_map.json (mean and sample
# std over seeds) with its HTML table for the report, and results/{dataset}_map.json, the
# copy of the configured one.


rule evaluate:
    """mAP at each tIoU of one seed's predictions on the evaluation subset."""
    input:
        gt=ground_truth,
        predictions="results/runs/{dataset}/{mllm}/{experiment}/seed{seed}/predictions.json",
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
    """Mean and sample std of the mAP over seeds per tIoU, with the data set, MLLM and
    configuration; one summary per (data set, MLLM, experiment), so switching the MLLM or
    the experiment keeps the others."""
    input:
        maps=seed_maps,
    output:
        json="results/summaries/{dataset}/{mllm}/{experiment}_map.json",
        table=report(
            "results/summaries/{dataset}/{mllm}/{experiment}_map.html",
            caption="../report/map_table.rst",
            category="mAP",
            subcategory="{dataset}",
            labels={"data set": "{dataset}", "MLLM": "{mllm}", "experiment": "{experiment}"},
        ),
    log:
        "logs/aggregate/{dataset}/{mllm}/{experiment}.log",
    conda:
        "../../envs/workflow.yaml"
    params:
        kind=lambda wc: DATASETS[wc.dataset]["kind"],
        seeds=run_seeds,
        summary=summary_config,
    script:
        "../scripts/aggregate_map.py"


rule publish_map:
    """results/{dataset}_map.json: a copy of the summary of the configured MLLM (`mllm`,
    or the data set's default_mllm) and `experiment`; the `reference_experiment`'s summary
    (e.g. the untrained model) is an input too, so that the run measures and prints it beside."""
    input:
        unpack(publish_inputs),
    output:
        "results/{dataset}_map.json",
    log:
        "logs/aggregate/{dataset}_publish.log",
    conda:
        "../../envs/workflow.yaml"
    script:
        "../scripts/publish_map.py"


rule unknown_dataset:
    """A results/{name}_map.json whose name is no data set: stop with the valid names
    (instead of Snakemake's generic 'No rule to produce')."""
    input:
        unknown_dataset_error,
    output:
        "results/{name}_map.json",
    log:
        "logs/aggregate/{name}_unknown.log",
    wildcard_constraints:
        name=unknown_dataset_pattern(),
    conda:
        "../../envs/workflow.yaml"
    shell:
        "exit 1"


rule ablation:
    """One study of the `ablations` registry: every arm x seed trained (or re-inferred) and
    evaluated as its own job; the tables (mean ± sample std per arm, paired differences
    from each arm's reference with 95% paired t intervals) in JSON and Markdown."""
    input:
        unpack(ablation_maps),
    output:
        json="results/{ablation}_ablation.json",
        table="results/{ablation}_ablation.md",
    log:
        "logs/ablation/{ablation}.log",
    conda:
        "../../envs/workflow.yaml"
    params:
        spec=ablation_spec,
    script:
        "../scripts/ablation_summary.py"
