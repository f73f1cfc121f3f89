"""Training configuration: one validated dataclass, per-dataset and per-method defaults.

Defaults follow the public code of CO2-Net (``run.sh``/``options.py``) and DELU
(``scripts/train_*.sh``/``options.py``); where they differ from the papers the choice is
written in ``docs/method.md``.  Precedence, lowest first: dataclass defaults, the
dataset-family defaults (``configs/defaults.yaml``), ``--config FILE.yaml``, ``--set
key=value``, explicit CLI flags (``--iterations``...).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULTS_FILE = Path(__file__).with_name("configs") / "defaults.yaml"


class ConfigError(ValueError):
    """A bad configuration value; the message names the field."""


@dataclass
class TrainConfig:
    method: str = "delu"
    dataset_family: str = "thumos14"
    # optimisation
    iterations: int = 5000
    lr: float = 5e-5
    weight_decay: float = 1e-3
    batch_size: int = 10
    num_similar: int = 3  # same-class pairs at the head of each batch
    max_seqlen: int = 320  # snippets per training video (random-perturb sampling)
    grad_clip: float = 0.0  # 0 = off (the base methods do not clip)
    mixed_precision: str = "no"  # accelerate: no | bf16 | fp16 (GPU only)
    # base-method hyperparameters (names as in the public code)
    k: float = 7.0  # MIL top-k ratio: k = T // k snippets
    dropout_ratio: float = 0.7
    alpha1: float = 0.8  # attention norm
    alpha2: float = 0.8  # attention guide
    alpha3: float = 1.0  # co-activity
    alpha4: float = 1.0  # RGB/flow mutual
    pool_t: int = 0  # >0: temporal average pool of kernel (max_seqlen // pool_t)|1 (ActivityNet)
    # DELU only
    alpha_edl: float = 1.3
    alpha_uct_guide: float = 0.4
    amplitude: float = 0.7
    rat_atn: float = 9.0
    uct_guide_order: str = "rank"  # rank (intended) | official (the repository's gather)
    edl_form: str = "exp_log"  # evidential loss: exp_log (DELU, THUMOS14) | relu_mse (DELU_ACT, ActivityNet1.2)
    # inference / proposals
    class_threshold: float = 0.2
    video_score_ratio: float = 10.0  # video score: top T//10 of cas*attention
    num_thresholds: int = 20  # attention thresholds linspace(0.1, 0.9, n)
    outer_ratio: float = 0.25
    gamma_oic: float = 0.2
    nms_sigma: float = 0.3
    loc_score_threshold: float = 0.1  # for extras["loc_scores"] proposals
    # which proposals are scored: auto (head when the model has one, else base) | head | base | merge
    proposal_source: str = "auto"
    max_proposals_per_class: int = 200
    min_proposal_length: float = 0.0  # keep segments longer than this (snippets), after soft-NMS; DELU's test.py: 1
    filter_ambiguous: bool = False  # drop predictions overlapping gt["ambiguous"] (CO2/DELU do on THUMOS14)
    tiou_thresholds: list[float] = field(default_factory=lambda: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7])
    # MLLM4WTAL plug-ins (empty = plain base method)
    modules: list[str] = field(default_factory=list)
    mllm4wtal: dict[str, Any] = field(default_factory=dict)  # options passed to the plug-in objective
    # protocol / outputs
    log_every: int = 50
    checkpoint_every: int = 500  # last good checkpoint kept for NaN recovery
    num_timeline_videos: int = 4

    def validate(self) -> TrainConfig:
        from .models import BASE_METHODS

        if self.method not in BASE_METHODS:
            raise ConfigError(f"config 'method': {self.method!r} not one of {sorted(BASE_METHODS)}")
        positive = ("iterations", "lr", "batch_size", "max_seqlen", "k", "rat_atn", "num_thresholds", "nms_sigma")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ConfigError(f"config '{name}' must be > 0, got {getattr(self, name)!r}")
        if self.batch_size < 2 * self.num_similar:
            raise ConfigError(f"config 'batch_size' {self.batch_size} < 2 * num_similar {self.num_similar}")
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"config 'mixed_precision': {self.mixed_precision!r} not in no|bf16|fp16")
        if self.uct_guide_order not in ("rank", "official"):
            raise ConfigError(f"config 'uct_guide_order': {self.uct_guide_order!r} not in rank|official")
        if self.edl_form not in ("exp_log", "relu_mse"):
            raise ConfigError(f"config 'edl_form': {self.edl_form!r} not in exp_log|relu_mse")
        if self.proposal_source not in ("auto", "head", "base", "merge"):
            raise ConfigError(f"config 'proposal_source': {self.proposal_source!r} not in auto|head|base|merge")
        if not 0.0 <= self.dropout_ratio < 1.0:
            raise ConfigError(f"config 'dropout_ratio' must be in [0, 1), got {self.dropout_ratio}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def dataset_family(dataset_name: str) -> str:
    """Map a data set name (``thumos14``, ``thumos14-synth``, ``demo``...) to its defaults family."""
    return "activitynet12" if dataset_name.lower().startswith(("activitynet", "anet")) else "thumos14"


def _coerce(name: str, value: Any, current: Any) -> Any:
    """Turn a ``--set`` string into the type of the field it overrides."""
    if not isinstance(value, str):
        return value
    if isinstance(current, bool):
        if value.lower() in ("1", "true", "yes"):
            return True
        if value.lower() in ("0", "false", "no"):
            return False
        raise ConfigError(f"config '{name}': {value!r} is not a boolean")
    if isinstance(current, (list, dict)):
        parsed = yaml.safe_load(value)
        if not isinstance(parsed, type(current)):
            raise ConfigError(f"config '{name}': {value!r} is not a {type(current).__name__}")
        return parsed
    try:
        return type(current)(value) if current is not None else yaml.safe_load(value)
    except ValueError as exc:
        raise ConfigError(f"config '{name}': {value!r} is not a {type(current).__name__}") from exc


def apply_overrides(config: TrainConfig, overrides: dict[str, Any], source: str) -> TrainConfig:
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    for key, value in overrides.items():
        if key not in names:
            raise ConfigError(f"{source}: unknown config field '{key}'")
        setattr(config, key, _coerce(key, value, getattr(config, key)))
    return config


def build_config(
    method: str,
    dataset_name: str,
    config_file: str | None = None,
    sets: list[str] | None = None,
    **explicit: Any,
) -> TrainConfig:
    """Assemble and validate the configuration for one training command."""
    family = dataset_family(dataset_name)
    config = TrainConfig(method=method, dataset_family=family)
    defaults = yaml.safe_load(DEFAULTS_FILE.read_text())
    apply_overrides(config, defaults.get(family, {}).get("common", {}), f"{DEFAULTS_FILE}[{family}]")
    apply_overrides(config, defaults.get(family, {}).get(method, {}), f"{DEFAULTS_FILE}[{family}][{method}]")
    if config_file:
        loaded = yaml.safe_load(Path(config_file).read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{config_file}: must be a mapping of config fields")
        apply_overrides(config, loaded, config_file)
    for item in sets or []:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key=value")
        key, value = item.split("=", 1)
        apply_overrides(config, {key.strip(): value}, f"--set {item}")
    apply_overrides(config, {k: v for k, v in explicit.items() if v is not None}, "command line")
    config.method = method
    return config.validate()


def config_from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config stored in a checkpoint's metadata."""
    config = TrainConfig()
    return apply_overrides(config, data, "checkpoint config")
