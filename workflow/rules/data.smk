# Data stage: real data sets are ingested from files the user provides; synthetic ones are
# generated.  Synthetic data never stands in for missing real data: a real data set whose
# files are missing stops the run with a message saying which files to put where.


rule ingest_real:
    """Real annotations + I3D features -> the canonical data set."""
    input:
        unpack(real_raw_inputs),
    output:
        gt=canonical("{dataset}", "ground_truth.json"),
        features=canonical("{dataset}", "features.npy"),
        index=canonical("{dataset}", "features_index.json"),
    log:
        "logs/data/{dataset}/ingest.log",
    wildcard_constraints:
        dataset=_alternatives(REAL),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=16000,
        runtime=30,
    params:
        fmt=lambda wc: DATASETS[wc.dataset]["format"],
        outdir=lambda wc, output: str(Path(output.gt).parent),
    shell:
        "python -m wtal_data ingest --format {params.fmt} --dataset {wildcards.dataset}"
        " --annotations {input.annotations:q} --features {input.features:q}"
        " --output {params.outdir} > {log} 2>&1"


rule ingest_structure:
    """Real annotation files only (no features): the structure a synthetic set imitates."""
    input:
        annotations=lambda wc: DATASETS[DATASETS[wc.dataset]["structure"]]["annotations"],
    output:
        gt="data/{dataset}/structure/ground_truth.json",
    log:
        "logs/data/{dataset}/ingest_structure.log",
    wildcard_constraints:
        dataset=_alternatives(SYNTHETIC),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        structure=lambda wc: DATASETS[wc.dataset]["structure"],
        fmt=lambda wc: DATASETS[DATASETS[wc.dataset]["structure"]]["format"],
        outdir=lambda wc, output: str(Path(output.gt).parent),
    shell:
        "python -m wtal_data ingest --format {params.fmt} --dataset {params.structure}"
        " --annotations {input.annotations:q} --no-features --output {params.outdir} > {log} 2>&1"


rule synthesize:
    """Generated features (and scripts of what each video shows) for a synthetic set."""
    input:
        structure="data/{dataset}/structure/ground_truth.json",
        config=config["synthetic_config"],
    output:
        gt=canonical("{dataset}", "ground_truth.json"),
        features=canonical("{dataset}", "features.npy"),
        index=canonical("{dataset}", "features_index.json"),
        scripts=canonical("{dataset}", "scripts.json"),
    log:
        "logs/data/{dataset}/synth.log",
    benchmark:
        "logs/benchmarks/data/{dataset}/synth.tsv"
    wildcard_constraints:
        dataset=_alternatives(SYNTH_NO_VIDEOS),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        args=synth_params,
        outdir=lambda wc, output: str(Path(output.gt).parent.parent),
    shell:
        "TQDM_DISABLE=1 python -m wtal_data synth {params.args} --structure {input.structure}"
        " --output {params.outdir} > {log} 2>&1"


rule synthesize_with_videos:
    """As `synthesize`, plus short mp4 files rendered from each script (the demo)."""
    input:
        structure="data/{dataset}/structure/ground_truth.json",
        config=config["synthetic_config"],
    output:
        gt=canonical("{dataset}", "ground_truth.json"),
        features=canonical("{dataset}", "features.npy"),
        index=canonical("{dataset}", "features_index.json"),
        scripts=canonical("{dataset}", "scripts.json"),
        videos=directory("data/{dataset}/videos"),
    log:
        "logs/data/{dataset}/synth.log",
    benchmark:
        "logs/benchmarks/data/{dataset}/synth.tsv"
    wildcard_constraints:
        dataset=_alternatives(SYNTH_WITH_VIDEOS),
    conda:
        "../../envs/data.yaml"
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        args=synth_params,
        outdir=lambda wc, output: str(Path(output.gt).parent.parent),
    shell:
        "TQDM_DISABLE=1 python -m wtal_data synth {params.args} --structure {input.structure}"
        " --output {params.outdir} --videos > {log} 2>&1"


rule check_videos:
    """Real videos are user-provided: open each one's header now and list every missing,
    empty or unreadable file with its path, before the MLLM starts."""
    input:
        gt=canonical("{dataset}", "ground_truth.json"),
    output:
        "results/checks/{dataset}/videos.json",
    log:
        "logs/data/{dataset}/check_videos.log",
    wildcard_constraints:
        dataset=_alternatives(REAL),
    conda:
        "../../envs/priors.yaml"
    params:
        videos=lambda wc: DATASETS[wc.dataset]["videos"],
        subset="train",
    script:
        "../scripts/check_videos.py"
