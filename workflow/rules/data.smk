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
        fmt=lambda wc: "per-video" if extracts_features(wc.dataset) else DATASETS[wc.dataset]["format"],
        features=ingest_feature_args,
        outdir=lambda wc, output: str(Path(output.gt).parent),
    shell:
        "python -m wtal_data ingest --format {params.fmt} --dataset {wildcards.dataset}"
        " --annotations {input.annotations:q} {params.features}"
        " --output {params.outdir} > {log} 2>&1"


rule extract_features:
    """I3D RGB + flow features from a real data set's videos (`features: extract`); resumes per video."""
    input:
        unpack(extraction_inputs),
    output:
        manifest="data/{dataset}/features/i3d/extraction.json",
    log:
        "logs/data/{dataset}/extract.log",
    wildcard_constraints:
        dataset=_alternatives([name for name in REAL if extracts_features(name)]),
    conda:
        "../../envs/data.yaml"
    resources:
        gpu=lambda wc: 0 if config["feature_extraction"]["device"] == "cpu" else 1,
        mem_mb=32000,
        runtime=lambda wc: config["feature_extraction"]["runtime_minutes"],
        slurm_partition=lambda wc: slurm_partition(config["feature_extraction"]["device"] != "cpu"),
    params:
        device=lambda wc: config["feature_extraction"]["device"],
        batch_size=lambda wc: config["feature_extraction"]["batch_size"],
        outdir=lambda wc, output: str(Path(output.manifest).parent),
    shell:
        "python -m wtal_data extract --videos {input.videos:q} --output {params.outdir}"
        " --rgb-weights {input.rgb_weights:q} --flow-weights {input.flow_weights:q}"
        " --device {params.device} --batch-size {params.batch_size} > {log} 2>&1"


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
        config=synthetic_config,
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
        config=synthetic_config,
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
