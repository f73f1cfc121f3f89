"""The workflow's `.test/` configuration (the snakemake-workflows convention): what CI runs
to see every stage of the chain work together on a small generated set.

`.test/config/config.yaml` is layered over config/config.yaml with `--configfile`; its data set
`tiny` is the demo's generator with fewer, narrower videos (`.test/config/synthetic.yaml`).
The real run goes from the annotation files to the published mAP file and takes a few
minute on two CPU cores; the dry run checks the plan in seconds.
"""

import json
import shutil

import pytest
from helpers.workflow import REPO, planned_jobs, run, scratch_copy

TARGET = "results/tiny_map.json"
CONFIG = ("--configfile", ".test/config/config.yaml")
CHAIN = {
    "ingest_structure": 1,
    "synthesize": 1,
    "generate_priors_shard": 1,
    "merge_priors": 1,
    "text_priors": 1,
    "train": 2,  # the configured experiment and its untrained reference
    "evaluate": 2,
    "aggregate_map": 2,
    "publish_map": 1,
}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    dest = scratch_copy(tmp_path_factory.mktemp("dottest"))
    shutil.copytree(REPO / ".test", dest / ".test")
    return dest


def test_the_test_config_plans_every_stage(root):
    assert planned_jobs(run(root, "-n", TARGET, *CONFIG).stdout) == CHAIN


def test_the_test_config_runs_the_whole_chain(root):
    run(root, "--cores", "2", TARGET, *CONFIG, timeout=1200)
    published = json.loads((root / TARGET).read_text())
    assert published["dataset"] == "tiny" and published["synthetic"] and published["seeds"] == [0]
    assert 0.0 <= published["average_map"]["0.1:0.7"]["mean"] <= 1.0
    (predictions,) = (root / "results/runs/tiny/synthetic").glob("default*/seed0/predictions.json")
    assert json.loads(predictions.read_text())["results"]  # the trained run detected something to score
    # a second run has nothing left to do
    assert planned_jobs(run(root, "-n", TARGET, *CONFIG).stdout) == {}
