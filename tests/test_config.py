"""Training config (schema, one home for defaults, --set), the canonical data schemas and the
data-set family field."""

import json
import logging
import shutil
from pathlib import Path

import pytest
import yaml
from helpers.toy_data import make_toy_dataset

from prior_generation.backends.hf import HFBackend
from prior_generation.cli import _parser as priors_parser
from prior_generation.generate import GenerateConfig
from prior_generation.settings import DEFAULTS as PRIOR_DEFAULTS
from wtal_common.errors import ConfigError
from wtal_data.canonical import (
    FAMILIES,
    DatasetError,
    FeatureStore,
    dataset_family,
    load_ground_truth,
    validate_ground_truth,
)
from wtal_data.ingest_wtalc import load_wtalc_annotations
from wtal_training import config as config_module
from wtal_training.cli import main as train_main
from wtal_training.config import build_config, config_from_dict, default_config, sections_of_kind
from wtal_training.models import BASE_METHODS, build_base_method

ROOT = config_module.CONFIG_DIR.parents[1]

# The effective defaults before the restructuring (old defaults.yaml over the old dataclass),
# written out by hand: moving values between layers must not change any of them.
PINNED = {
    ("thumos14", "co2net"): dict(
        iterations=5000,
        lr=5e-5,
        weight_decay=1e-3,
        batch_size=10,
        num_similar=3,
        k=7,
        pool_t=0,
        max_seqlen=500,
        alpha1=0.8,
        alpha2=0.8,
        alpha3=1.0,
        alpha4=1.0,
        dropout_ratio=0.7,
        num_thresholds=10,
        min_proposal_length=0.0,
        tiou_thresholds=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
    ),  # fmt: skip
    ("thumos14", "delu"): dict(
        iterations=5000,
        lr=5e-5,
        k=7,
        pool_t=0,
        max_seqlen=320,
        alpha2=0.4,
        alpha_edl=1.3,
        alpha_uct_guide=0.4,
        amplitude=0.7,
        rat_atn=9,
        uct_guide_order="rank",
        num_thresholds=20,
        min_proposal_length=1.0,
    ),  # fmt: skip
    ("activitynet", "co2net"): dict(
        iterations=22000,
        lr=3e-5,
        weight_decay=5e-4,
        batch_size=10,
        k=5,
        pool_t=5,
        max_seqlen=60,
        alpha2=0.8,
        num_thresholds=10,
        min_proposal_length=0.0,
        tiou_thresholds=[0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95],
    ),  # fmt: skip
    ("activitynet", "delu"): dict(
        iterations=22000,
        k=5,
        pool_t=5,
        max_seqlen=60,
        alpha2=0.8,
        alpha_edl=1.2,
        alpha_uct_guide=0.2,
        amplitude=0.2,
        rat_atn=5,
        num_thresholds=20,
        min_proposal_length=1.0,
    ),  # fmt: skip
}


# -- schema ----------------------------------------------------------------------------------
def test_unknown_nested_field_is_named_with_its_dotted_path(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  alpah1: 0.5\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml: unknown config field 'model\.alpah1'"):
        build_config("delu", "thumos14", str(bad))
    bad.write_text("data:\n  lr: 0.1\n")  # a real field in the wrong section says where it belongs
    with pytest.raises(ConfigError, match=r"'data\.lr' \(it belongs in 'optimiser\.lr'\)"):
        build_config("delu", "thumos14", str(bad))
    with pytest.raises(ConfigError, match=r"--set test\.nms=0\.1: unknown config field 'test\.nms'"):
        build_config("delu", "thumos14", sets=["test.nms=0.1"])
    with pytest.raises(ConfigError, match=r"unknown config field 'mllm4wtal\.lamda1'"):
        build_config("delu", "thumos14", sets=["mllm4wtal.lamda1=2"])


def test_wrong_types_and_ranges_name_the_dotted_field(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("optimiser: {lr: fast}\n")
    with pytest.raises(ConfigError, match=r"config field 'optimiser\.lr': 'fast' is not of type 'number'"):
        build_config("delu", "thumos14", str(bad))
    bad.write_text("test: {filter_ambiguous: 3}\n")
    with pytest.raises(ConfigError, match=r"'test\.filter_ambiguous'"):
        build_config("delu", "thumos14", str(bad))
    with pytest.raises(ConfigError, match=r"config field 'data\.batch_size': '1\.5' is not an integer"):
        build_config("delu", "thumos14", sets=["data.batch_size=1.5"])
    with pytest.raises(ConfigError, match=r"'optimiser\.iterations': -1 is less than the minimum of 0"):
        build_config("delu", "thumos14", sets=["iterations=-1"])
    with pytest.raises(ConfigError, match=r"'delu\.uct_guide_order'"):
        build_config("delu", "thumos14", sets=["delu.uct_guide_order=sideways"])
    with pytest.raises(ConfigError, match=r"'data\.batch_size' 4 < 2 \* data\.num_similar 3"):
        build_config("delu", "thumos14", sets=["batch_size=4"])
    bad.write_text("lr: 1.0e-4\noptimiser: {lr: 2.0e-4}\n")
    with pytest.raises(ConfigError, match=r"'optimiser\.lr' is given twice"):
        build_config("delu", "thumos14", str(bad))
    with pytest.raises(ConfigError, match=r"config field 'family'.*ground_truth\.json"):
        build_config("delu", "thumos14", sets=["family=activitynet"])


def test_bad_config_exits_2_before_any_data_loads(tmp_path):
    missing = tmp_path / "no-such-dataset"  # would be a DatasetError if the data were read first
    argv = ["train", "--data", str(missing), "--method", "delu", "--output-dir", str(tmp_path / "o")]
    assert train_main([*argv, "--set", "model.alpha9=1", "--log", str(tmp_path / "train.log")]) == 2
    text = (tmp_path / "train.log").read_text()
    assert "unknown config field 'model.alpha9'" in text and "no-such-dataset" not in text


# -- --set -------------------------------------------------------------------------------------
def test_set_accepts_dotted_and_flat_spellings():
    dotted = build_config(
        "delu",
        "thumos14",
        sets=["optimiser.lr=1e-3", "model.k=8", "test.filter_ambiguous=true", "mllm4wtal.lambda1=2", "delu.rat_atn=4"],
        modules=["ksm"],
    )
    flat = build_config(
        "delu",
        "thumos14",
        sets=["lr=1e-3", "k=8", "filter_ambiguous=yes", "mllm4wtal={lambda1: 2.0}", "rat_atn=4"],
        modules=["ksm"],
    )
    assert dotted.optimiser.lr == flat.optimiser.lr == 1e-3 and dotted.model.k == flat.model.k == 8.0
    assert dotted.test.filter_ambiguous is flat.test.filter_ambiguous is True
    assert dotted.sections["mllm4wtal"].lambda1 == flat.sections["mllm4wtal"].lambda1 == 2.0
    assert dotted.own.rat_atn == flat.own.rat_atn == 4.0
    later = build_config(
        "delu", "thumos14", sets=["mllm4wtal.lambda1=2", "mllm4wtal.mu1=0.5", "lr=1e-3", "lr=2e-3"], modules=["ksm"]
    )
    plugin = later.sections["mllm4wtal"]
    assert (plugin.lambda1, plugin.mu1, plugin.lambda2) == (2.0, 0.5, 1.5)  # merged key by key over the defaults
    assert later.optimiser.lr == 2e-3  # last wins
    assert build_config("delu", "thumos14", sets=["test.tiou_thresholds=[0.3, 0.5]"]).test.tiou_thresholds == [0.3, 0.5]
    # explicit flags beat --set, --set beats the file
    assert build_config("delu", "thumos14", sets=["optimiser.iterations=7"], iterations=3).optimiser.iterations == 3


def test_nested_and_flat_config_files_agree(tmp_path):
    nested, flat = tmp_path / "nested.yaml", tmp_path / "flat.yaml"
    nested.write_text("optimiser: {lr: 2.0e-4}\ndata: {max_seqlen: 160}\nmllm4wtal: {text_dim: 128}\n")
    flat.write_text("lr: 2.0e-4\nmax_seqlen: 160\nmllm4wtal: {text_dim: 128}\n")
    a = build_config("co2net", "thumos14", str(nested), modules=["csr"])
    b = build_config("co2net", "thumos14", str(flat), modules=["csr"])
    assert a == b and a.optimiser.lr == 2e-4 and a.data.max_seqlen == 160 and a.sections["mllm4wtal"].text_dim == 128
    assert a.to_dict()["optimiser"]["lr"] == 2e-4 and a.to_dict()["data"]["max_seqlen"] == 160


def test_a_run_keeps_its_own_sections():
    """Shared sections always, its method's own, the plug-in objective's only with modules:
    no nullable field of another method in any config."""
    shared = set(sections_of_kind("shared"))
    for method in BASE_METHODS:
        plain, plugins = build_config(method, "thumos14"), build_config(method, "thumos14", modules=["ksm"])
        assert set(plain.sections) == shared | {method}
        assert set(plugins.sections) == shared | {method} | set(sections_of_kind("objective"))
        for config in (plain, plugins):
            assert all(value is not None for name, section in config.sections.items() if name != "mllm4wtal"
                       for value in section.values())  # fmt: skip


# -- older spellings (format 1) ----------------------------------------------------------------
def test_older_spellings_move_with_a_warning_or_say_why_they_cannot(tmp_path, caplog):
    old = tmp_path / "old.yaml"
    old.write_text("model: {alpha_edl: 1.1, k: 6.0}\ntest: {proposal_source: auto}\n")
    with caplog.at_level(logging.WARNING, logger="wtal_training"):
        config = build_config("delu", "thumos14", str(old))
    assert config.own.alpha_edl == 1.1 and config.model.k == 6.0
    assert "'model.alpha_edl' is spelled 'delu.alpha_edl' now" in caplog.text
    assert "'test.proposal_source' is not a training setting any more" in caplog.text
    with pytest.raises(
        ConfigError, match=r"'model\.alpha_edl' is a setting of ddgnet, delu, not of the run's method um"
    ):
        build_config("um", "thumos14", str(old))
    with pytest.raises(ConfigError, match=r"pass --proposal-source merge to `evaluate` or `predict`"):
        build_config("delu", "thumos14", sets=["test.proposal_source=merge"])
    with pytest.raises(ConfigError, match=r"'mllm4wtal\.modules' is not read any more: give it with --modules"):
        build_config("delu", "thumos14", sets=["mllm4wtal.modules=[ksm]"])
    zhou = build_config("zhou2023", "thumos14", sets=["model.warmup_epochs=3", "optimiser.lr_step_epochs=[1,2,3,4]"])
    assert zhou.own.warmup_epochs == 3 and zhou.own.lr_step_epochs == [1, 2, 3, 4]


def test_another_methods_section_is_not_used(tmp_path, caplog):
    shared = tmp_path / "shared.yaml"
    shared.write_text("um: {r_act: 3.0}\ndelu: {rat_atn: 4.0}\n")
    with caplog.at_level(logging.WARNING, logger="wtal_training"):
        config = build_config("delu", "thumos14", str(shared))
    assert config.own.rat_atn == 4.0 and "um" not in config.sections
    assert "config section 'um' is not used: the run's method is delu" in caplog.text


# -- one home for every default ----------------------------------------------------------------
def _flat(config):
    return {k: v for name, section in config.sections.items() if name != "mllm4wtal" for k, v in section.items()}


@pytest.mark.parametrize(("family", "method"), sorted(PINNED))
def test_defaults_are_the_published_values(family, method):
    values = _flat(build_config(method, family))
    for name, expected in PINNED[(family, method)].items():
        assert values[name] == pytest.approx(expected), name
    if method != "delu":  # DELU's own fields are no field of the others
        assert "alpha_edl" not in values and "uct_guide_order" not in values


def test_no_default_is_written_twice_in_defaults_yaml():
    """Along every (family, method) path, no layer repeats a value a lower layer already gives."""
    doc = yaml.safe_load(config_module.DEFAULTS_FILE.read_text())
    for family in doc["families"]:
        for method in BASE_METHODS:
            seen: dict[tuple[str, ...], tuple[str, object]] = {}
            for source, layer in config_module.default_layers(family, method):
                for path, value in _leaves(layer):
                    if path in seen and seen[path][1] == value:
                        raise AssertionError(f"{path} = {value!r} in {source} repeats {seen[path][0]}")
                    seen[path] = (source, value)


def _leaves(doc, prefix=()):
    for key, value in doc.items():
        if isinstance(value, dict) and value:
            yield from _leaves(value, (*prefix, key))
        elif not isinstance(value, dict):
            yield (*prefix, key), value


def test_every_method_has_a_section_and_every_family_defaults():
    assert set(BASE_METHODS) <= set(sections_of_kind("method"))
    assert set(FAMILIES) == set(yaml.safe_load(config_module.DEFAULTS_FILE.read_text())["families"])


def test_models_and_trainconfig_take_their_values_from_defaults_yaml(tmp_path, monkeypatch):
    """Edit a copy of defaults.yaml: default_config, build_config, the plug-in settings and the
    bare model constructors all follow it, so no default is hidden anywhere else."""
    from wtal_training.mllm4wtal import resolve_settings

    doc = yaml.safe_load(config_module.DEFAULTS_FILE.read_text())
    doc["base"]["model"]["alpha1"] = 0.123
    doc["base"]["test"]["nms_sigma"] = 0.77
    doc["base"]["mllm4wtal"]["lambda2"] = 0.25
    doc["families"]["thumos14"]["delu"]["delu"]["rat_atn"] = 4.5
    doc["families"]["thumos14"]["co2net"]["data"]["max_seqlen"] = 96
    edited = tmp_path / "defaults.yaml"
    edited.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(config_module, "DEFAULTS_FILE", edited)

    base = default_config()
    assert base.model.alpha1 == 0.123 and base.test.nms_sigma == 0.77 and base.own.rat_atn == 4.5
    assert default_config(method="co2net").data.max_seqlen == 96
    assert resolve_settings(build_config("delu", "thumos14", modules=["ksm"]))["lambda2"] == 0.25
    delu = BASE_METHODS["delu"](16, 3)
    assert delu.hp["alpha1"] == 0.123 and delu.hp["rat_atn"] == 4.5
    co2 = BASE_METHODS["co2net"](16, 3)
    assert co2.hp["max_seqlen"] == 96 and len(co2.hp) == len(BASE_METHODS["co2net"].shared_settings)
    config = build_config("delu", "thumos14", sets=["model.alpha3=0.25"])
    built = build_base_method(config, 16, 3)
    assert built.hp == BASE_METHODS["delu"].hyperparameters_of(config)
    assert built.hp["alpha3"] == 0.25 and built.hp["alpha1"] == 0.123 and built.hp["edl_form"] == "exp_log"


def test_defaults_yaml_layers_are_checked_against_the_schema(tmp_path, monkeypatch):
    doc = yaml.safe_load(config_module.DEFAULTS_FILE.read_text())
    doc["families"]["activitynet"]["delu"]["delu"]["alpha_eld"] = 1.0
    edited = tmp_path / "defaults.yaml"
    edited.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(config_module, "DEFAULTS_FILE", edited)
    with pytest.raises(ConfigError, match=r"families\.activitynet\.delu\]: unknown config field 'delu\.alpha_eld'"):
        build_config("delu", "activitynet")


def test_a_field_without_a_default_is_named(tmp_path, monkeypatch):
    doc = yaml.safe_load(config_module.DEFAULTS_FILE.read_text())
    del doc["methods"]["um"]["um"]["nms_iou"]
    edited = tmp_path / "defaults.yaml"
    edited.write_text(yaml.safe_dump(doc))
    monkeypatch.setattr(config_module, "DEFAULTS_FILE", edited)
    with pytest.raises(ConfigError, match=r"no value for config field\(s\) um\.nms_iou"):
        build_config("um", "thumos14")


def test_checkpoint_configs_round_trip_and_old_ones_load():
    config = build_config("co2net", "activitynet", sets=["lr=1e-4"], modules=["ksm"])
    assert config_from_dict(config.to_dict()) == config
    fixture = Path(__file__).parent / "data" / "checkpoints" / "format1_delu.safetensors"
    from safetensors import safe_open

    with safe_open(str(fixture), framework="pt") as handle:
        old = json.loads(handle.metadata()["config"])  # format 1: flat, with other methods' nulls
    assert "alpha_edl" in old and old["r_act"] is None
    old = {**old, "dataset_family": "activitynet12"}
    del old["family"]
    upgraded = config_from_dict(old, config_format=1)
    assert upgraded.family == "activitynet" and upgraded.own.alpha_edl == old["alpha_edl"]
    assert upgraded.data.max_seqlen == old["max_seqlen"] and "um" not in upgraded.sections


def test_prior_generation_defaults_have_one_home():
    args = priors_parser().parse_args(["generate", "--ground-truth", "gt.json", "--output", "o.parquet"])
    cfg = GenerateConfig(ground_truth="gt.json", videos=None, output="o.parquet")
    for name in ("num_frames", "batch_size", "max_new_tokens_key", "max_new_tokens_complete", "seed", "prefetch"):
        assert getattr(args, name) == getattr(cfg, name) == getattr(PRIOR_DEFAULTS, name), name
    assert args.prompt_key == cfg.prompt_key == PRIOR_DEFAULTS.prompt_key
    backend = HFBackend("some/model")
    assert backend.max_new_tokens == PRIOR_DEFAULTS.max_new_tokens() and backend.num_frames == PRIOR_DEFAULTS.num_frames


# -- canonical data schemas -------------------------------------------------------------------
@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    return make_toy_dataset(tmp_path_factory.mktemp("toy"), feature_dim=8, num_train=6, num_test=3)


def test_ground_truth_schema_names_file_video_and_field(toy):
    gt = load_ground_truth(toy)
    source = str(toy / "ground_truth.json")
    with pytest.raises(DatasetError, match=r"ground_truth\.json: missing field 'classes'"):
        validate_ground_truth({k: v for k, v in gt.items() if k != "classes"}, source)
    video = sorted(gt["database"])[0]
    broken = json.loads(json.dumps(gt))
    del broken["database"][video]["duration"]
    with pytest.raises(DatasetError, match=rf"ground_truth\.json: video '{video}': missing field 'duration'"):
        validate_ground_truth(broken, source)
    broken = json.loads(json.dumps(gt))
    broken["database"][video]["annotations"][0]["segment"] = [1.0, "end"]
    with pytest.raises(DatasetError, match=rf"video '{video}': field 'annotations\.0\.segment\.1'"):
        validate_ground_truth(broken, source)
    with pytest.raises(DatasetError, match=r"field 'family': 'charades' is not one of"):
        validate_ground_truth({**gt, "family": "charades"}, source)
    with pytest.raises(DatasetError, match=r"unknown field\(s\) \['fammily'\]"):
        validate_ground_truth({**gt, "fammily": "thumos14"}, source)


def test_features_index_schema_names_file_and_path(toy, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(toy, copy)
    index = json.loads((copy / "features_index.json").read_text())
    video = sorted(index["videos"])[0]
    index["videos"][video] = [0]
    (copy / "features_index.json").write_text(json.dumps(index))
    with pytest.raises(DatasetError, match=rf"features_index\.json: field 'videos\.{video}'"):
        FeatureStore.open(copy)


# -- data-set family ----------------------------------------------------------------------------
def test_family_field_decides_the_defaults_not_the_name(tmp_path):
    data = make_toy_dataset(tmp_path / "anet", feature_dim=8, num_train=6, num_test=3, name="anet-mini")
    assert load_ground_truth(data)["family"] == "thumos14"
    out = tmp_path / "run"
    argv = ["train", "--data", str(data), "--method", "delu", "--iterations", "1", "--device", "cpu"]
    argv += ["--output-dir", str(out), "--no-progress", "--set", "data.max_seqlen=16", "--set", "num_timeline_videos=0"]
    assert train_main(argv) == 0
    config = json.loads((out / "results.json").read_text())["config"]
    assert config["family"] == "thumos14"
    assert config["test"]["tiou_thresholds"] == PINNED[("thumos14", "co2net")]["tiou_thresholds"]
    assert config["optimiser"]["lr"] == 5e-5 and config["delu"]["rat_atn"] == 9.0  # not ActivityNet's
    assert config["model"]["pool_t"] == 0


def test_older_files_without_family_derive_it_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING):
        assert dataset_family({"dataset": "anet-mini"}, "old.json") == "activitynet"
        assert dataset_family({"dataset": "thumos14-synth"}, "old.json") == "thumos14"
    assert "old.json: no 'family' field" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert dataset_family({"dataset": "anet-mini", "family": "thumos14"}) == "thumos14"
    assert not caplog.text


def test_ingest_writes_the_family_of_its_preset():
    anet = load_wtalc_annotations(ROOT / "data/activitynet12/raw/ActivityNet1.2-Annotations", "activitynet12")
    assert anet["family"] == "activitynet"
    thumos = load_wtalc_annotations(ROOT / "data/thumos14/raw/Thumos14reduced-Annotations", "thumos14")
    assert thumos["family"] == "thumos14"
