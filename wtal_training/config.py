"""Training configuration: nested sections on disk, one flat object in code.

A config document has one section per component -- ``data`` (batch sampling), ``model``
(base-method hyperparameters), ``optimiser``, ``test`` (inference, proposals, evaluation),
``output`` (logging) and ``mllm4wtal`` (plug-in options) -- plus ``method``, ``family`` and
``modules`` at the top.  Its shape and types are ``configs/train_config.schema.yaml``;
every default value is in ``configs/defaults.yaml`` and nowhere else (not in this module,
not in the models).  The trainer code reads one flat :class:`TrainConfig` (``config.lr``,
``config.k``...): field names are unique across sections, so a flat name also says where
it lives, and a config file or ``--set`` may use either spelling (``lr`` or ``optimiser.lr``).

Precedence, lowest first: the layers of ``defaults.yaml`` for the run's method and data-set
family (see that file), ``--config FILE.yaml``, ``--set key=value`` (in order), explicit CLI
flags (``--iterations``, ``--modules``).  Each layer is validated against the schema as it
is read, and the merged result again, before any data loads: an unknown or ill-typed field
is a :class:`ConfigError` (exit 2) naming the dotted field and where it came from.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from wtal_common.errors import ConfigError

CONFIG_DIR = Path(__file__).with_name("configs")
DEFAULTS_FILE = CONFIG_DIR / "defaults.yaml"
SCHEMA_FILE = CONFIG_DIR / "train_config.schema.yaml"
PLUGIN_SECTION = "mllm4wtal"  # an open object: its keys belong to the plug-in objective
LEGACY_FAMILIES = {"activitynet12": "activitynet"}  # checkpoints written before the explicit field

__all__ = [
    "ConfigError",
    "TrainConfig",
    "build_config",
    "check_user_config",
    "config_from_dict",
    "default_config",
    "field_sections",
]


# -- the two files -------------------------------------------------------------------------
@functools.cache
def _read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@functools.cache
def _validator(path: Path) -> Draft202012Validator:
    schema = _read_yaml(path)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def _schema() -> dict[str, Any]:
    return _validator(SCHEMA_FILE).schema


def field_sections() -> dict[str, str | None]:
    """Flat field name -> its section (None for the top-level fields), read from the schema."""
    out: dict[str, str | None] = {}
    for name, node in _schema()["properties"].items():
        children = node.get("properties") if name != PLUGIN_SECTION else None
        if children:
            out.update({child: name for child in children})
        else:
            out[name] = None
    return out


def _node(path: list[str]) -> dict[str, Any] | None:
    """The schema node of a dotted path (``$ref`` resolved), or None when there is none."""
    node: dict[str, Any] = _schema()
    for key in path:
        node = node.get("properties", {}).get(key)
        if node is None:
            return None
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        node = {**_schema()["$defs"][ref.split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


# -- documents: nesting, merging, validation -----------------------------------------------
def nest(doc: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Move flat field names (``lr: 1.0e-4``) into their sections (``optimiser: {lr: ...}``)."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping of fields, got {type(doc).__name__}")
    sections = field_sections()
    out: dict[str, Any] = {}
    for key, value in doc.items():
        section = sections.get(key)
        if section is None:  # a top-level field, a section, or unknown (the schema names it)
            if isinstance(out.get(key), dict) and isinstance(value, Mapping):
                value = {**out[key], **value}
            out[key] = copy.deepcopy(value)
            continue
        target = out.setdefault(section, {})
        if not isinstance(target, dict):  # e.g. "data: 3": leave it for the schema to name
            continue
        given = doc.get(section)
        if key in target or (isinstance(given, Mapping) and key in given):
            raise ConfigError(f"{source}: config field '{section}.{key}' is given twice (as '{key}' too)")
        target[key] = copy.deepcopy(value)
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings key by key, anything else (lists included) replaced."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


def _dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def _describe(error: Any, source: str) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - known)
        sections = field_sections()
        hints = [f" (it belongs in '{sections[k]}.{k}')" if sections.get(k) else "" for k in unknown]
        names = ", ".join(f"'{_dotted([*path, k])}'{hint}" for k, hint in zip(unknown, hints))
        return f"{source}: unknown config field {names}"
    where = _dotted(path) or "(top level)"
    return f"{source}: config field '{where}': {error.message}"


def check_document(doc: Mapping[str, Any], source: str) -> None:
    """Schema check of a (partial) nested document; the first errors, each with its dotted path."""
    errors = sorted(_validator(SCHEMA_FILE).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("; ".join(_describe(e, source) for e in errors[:3]))
    plugin = doc.get(PLUGIN_SECTION)
    if plugin:
        from .mllm4wtal import DEFAULTS as PLUGIN_DEFAULTS  # the plug-in owns its keys and defaults

        unknown = sorted(set(plugin) - set(PLUGIN_DEFAULTS))
        if unknown:
            names = ", ".join(f"'{PLUGIN_SECTION}.{k}'" for k in unknown)
            raise ConfigError(f"{source}: unknown config field {names} (known: {sorted(PLUGIN_DEFAULTS)})")


# -- --set key=value -----------------------------------------------------------------------
def _number(text: str) -> Any:
    """YAML scalar, but "1e-3" is a float (YAML 1.1 wants "1.0e-3")."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _coerce(text: str, node: dict[str, Any] | None, where: str) -> Any:
    """Turn a ``--set`` string into the type the schema asks for (the schema then checks it)."""
    if node is None:  # inside the plug-in section: no schema here, read it as YAML
        return _number(text)
    types = node.get("type", [])
    types = [types] if isinstance(types, str) else list(types)
    if not types and "enum" in node:
        types = sorted({"null" if v is None else "string" for v in node["enum"]})
    lowered = text.strip().lower()
    if "null" in types and lowered in ("null", "none", "~"):
        return None
    try:
        if "boolean" in types:
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(text)
        if "integer" in types:
            return int(text)
        if "number" in types:
            return float(text)
    except ValueError as exc:
        wanted = " or ".join(f"a {t}" if t != "integer" else "an integer" for t in types if t != "null")
        raise ConfigError(f"config field '{where}': {text!r} is not {wanted}") from exc
    if "array" in types or "object" in types:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"config field '{where}': {text!r} is not valid YAML ({exc})") from exc
    return text


def parse_set(item: str) -> dict[str, Any]:
    """``--set optimiser.lr=1e-4`` (or the flat ``lr=1e-4``) -> one nested override layer."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value (e.g. optimiser.lr=1e-4)")
    key, text = item.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set {item!r}: empty name in '{key}'")
    section = field_sections().get(path[0])
    if len(path) == 1 and section is not None:
        path = [section, path[0]]
    where = _dotted(path)
    if path[0] == PLUGIN_SECTION and len(path) > 1:
        value = _coerce(text, None, where)
    else:
        node = _node(path)
        if node is None:
            home = field_sections().get(path[-1])
            hint = f" (it belongs in '{home}.{path[-1]}')" if home else ""
            raise ConfigError(f"--set {item}: unknown config field '{where}'{hint}")
        try:
            value = _coerce(text, node, where)
        except ConfigError as exc:
            raise ConfigError(f"--set {item}: {exc}") from exc
    layer: dict[str, Any] = {}
    target = layer
    for key in path[:-1]:
        target = target.setdefault(key, {})
    target[path[-1]] = value
    return layer


# -- layers -----------------------------------------------------------------------------------
def default_layers(family: str, method: str) -> list[tuple[str, dict[str, Any]]]:
    """The layers of ``defaults.yaml`` that apply to (family, method), lowest first."""
    doc = _read_yaml(DEFAULTS_FILE)
    families = doc.get("families", {})
    if family not in families:
        raise ConfigError(f"config field 'family': {family!r} is not one of {sorted(families)}")
    layers = [
        (f"{DEFAULTS_FILE}[base]", doc.get("base") or {}),
        (f"{DEFAULTS_FILE}[methods.{method}]", (doc.get("methods") or {}).get(method) or {}),
        (f"{DEFAULTS_FILE}[families.{family}.common]", families[family].get("common") or {}),
        (f"{DEFAULTS_FILE}[families.{family}.{method}]", families[family].get(method) or {}),
    ]
    for source, layer in layers:
        check_document(layer, source)
    return [(source, copy.deepcopy(layer)) for source, layer in layers]


def user_layers(
    config_file: str | Path | None, sets: Iterable[str] | None, explicit: Mapping[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """The user's layers (--config file, each --set, explicit flags), each validated."""
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {path}: not valid YAML ({exc})") from exc
        layers.append((str(path), nest(loaded, str(path))))
    for item in sets or []:
        layers.append((f"--set {item}", parse_set(item)))
    given = {k: v for k, v in (explicit or {}).items() if v is not None}
    if given:
        layers.append(("command line", nest(given, "command line")))
    for source, layer in layers:
        check_document(layer, source)
    return layers


def check_user_config(config_file: str | Path | None, sets: Iterable[str] | None, **explicit: Any) -> None:
    """Validate what the user gave, before the data set is even opened."""
    user_layers(config_file, sets, explicit)


def _base_choice() -> tuple[str, str]:
    base = _read_yaml(DEFAULTS_FILE)["base"]
    return base["family"], base["method"]


# -- the object the code reads ---------------------------------------------------------------
def _default(name: str) -> Any:
    """Dataclass default of one field: its value in defaults.yaml for the base family and method."""
    return field(default_factory=lambda: default_config().get(name))


def default_config(family: str | None = None, method: str | None = None) -> dict[str, Any]:
    """Flat defaults of (family, method); the base family and method of defaults.yaml when None."""
    base_family, base_method = _base_choice()
    return copy.deepcopy(_merged_defaults(family or base_family, method or base_method, DEFAULTS_FILE))


@functools.cache
def _merged_defaults(family: str, method: str, path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _, layer in default_layers(family, method):
        _merge(doc, layer)
    doc["family"], doc["method"] = family, method
    return _flatten(doc)


def _flatten(doc: Mapping[str, Any]) -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for name, section in field_sections().items():
        holder = doc.get(section, {}) if section else doc
        if name in holder:
            value = copy.deepcopy(holder[name])
            node = _node([section, name] if section else [name]) or {}
            if node.get("type") == "integer" and isinstance(value, float):
                value = int(value)  # JSON Schema counts 100.0 as an integer; range() does not
            flat[name] = value
    return flat


@dataclass
class TrainConfig:
    """Flat view of a validated config; ``TrainConfig()`` is the base family and method of
    defaults.yaml (no value is written here).  Sections: see :func:`field_sections`."""

    method: str = _default("method")
    family: str = _default("family")
    modules: list[str] = _default("modules")
    # data
    batch_size: int = _default("batch_size")
    num_similar: int = _default("num_similar")
    max_seqlen: int = _default("max_seqlen")
    # model (names as in the public code; fields of one method are None for the others)
    k: float = _default("k")
    dropout_ratio: float = _default("dropout_ratio")
    alpha1: float = _default("alpha1")
    alpha2: float = _default("alpha2")
    alpha3: float = _default("alpha3")
    alpha4: float = _default("alpha4")
    pool_t: int = _default("pool_t")
    alpha_edl: float | None = _default("alpha_edl")
    alpha_uct_guide: float | None = _default("alpha_uct_guide")
    amplitude: float | None = _default("amplitude")
    rat_atn: float | None = _default("rat_atn")
    uct_guide_order: str | None = _default("uct_guide_order")
    edl_form: str | None = _default("edl_form")
    alpha5: float | None = _default("alpha5")
    alpha6: float | None = _default("alpha6")
    action_threshold: float | None = _default("action_threshold")
    background_threshold: float | None = _default("background_threshold")
    similarity_threshold: float | None = _default("similarity_threshold")
    graph_top_k_rat: float | None = _default("graph_top_k_rat")
    fc_temperature: float | None = _default("fc_temperature")
    feature_mix: float | None = _default("feature_mix")
    r_act: float | None = _default("r_act")
    r_bkg: float | None = _default("r_bkg")
    um_alpha: float | None = _default("um_alpha")
    um_beta: float | None = _default("um_beta")
    um_margin: float | None = _default("um_margin")
    gaussians: int | None = _default("gaussians")
    em_iterations: int | None = _default("em_iterations")
    walk_weight: float | None = _default("walk_weight")
    cosine_scale: float | None = _default("cosine_scale")
    memory_slots: int | None = _default("memory_slots")
    frame_mix: float | None = _default("frame_mix")
    pseudo_mix: float | None = _default("pseudo_mix")
    spl_temperature: float | None = _default("spl_temperature")
    fore_weight: float | None = _default("fore_weight")
    back_weight: float | None = _default("back_weight")
    att_weight: float | None = _default("att_weight")
    spl_weights: list[float] | None = _default("spl_weights")
    distill_weight: float | None = _default("distill_weight")
    distill_growth: float | None = _default("distill_growth")
    distill_max: float | None = _default("distill_max")
    warmup_epochs: int | None = _default("warmup_epochs")
    snapshot_epochs: list[int] | None = _default("snapshot_epochs")
    snapshot_temperatures: list[float] | None = _default("snapshot_temperatures")
    snapshot_dropout: bool | None = _default("snapshot_dropout")
    delta_epochs: list[int] | None = _default("delta_epochs")
    delta_scales: list[float] | None = _default("delta_scales")
    train_max_snippets: int | None = _default("train_max_snippets")
    # optimiser
    iterations: int = _default("iterations")
    lr: float = _default("lr")
    weight_decay: float = _default("weight_decay")
    grad_clip: float = _default("grad_clip")
    mixed_precision: str = _default("mixed_precision")
    lr_step_epochs: list[int] | None = _default("lr_step_epochs")
    lr_step_factors: list[float] | None = _default("lr_step_factors")
    # test: inference, proposals, evaluation
    class_threshold: float = _default("class_threshold")
    video_score_ratio: float = _default("video_score_ratio")
    num_thresholds: int = _default("num_thresholds")
    outer_ratio: float = _default("outer_ratio")
    gamma_oic: float = _default("gamma_oic")
    nms_sigma: float = _default("nms_sigma")
    loc_score_threshold: float = _default("loc_score_threshold")
    loc_decode: str = _default("loc_decode")
    proposal_source: str = _default("proposal_source")
    max_proposals_per_class: int = _default("max_proposals_per_class")
    min_proposal_length: float = _default("min_proposal_length")
    filter_ambiguous: bool = _default("filter_ambiguous")
    tiou_thresholds: list[float] = _default("tiou_thresholds")
    upsample_scale: int | None = _default("upsample_scale")
    cas_thresholds: list[float] | None = _default("cas_thresholds")
    magnitude_thresholds: list[float] | None = _default("magnitude_thresholds")
    nms_iou: float | None = _default("nms_iou")
    fusion_temperature: float | None = _default("fusion_temperature")
    # output
    log_every: int = _default("log_every")
    checkpoint_every: int = _default("checkpoint_every")
    checkpoint_minutes: float | None = _default("checkpoint_minutes")
    num_timeline_videos: int = _default("num_timeline_videos")
    # plug-in options (keys and defaults: wtal_training.mllm4wtal.objective)
    mllm4wtal: dict[str, Any] = _default("mllm4wtal")

    def to_dict(self) -> dict[str, Any]:
        """Flat fields (what checkpoints store and the plug-in objective reads)."""
        return dataclasses.asdict(self)

    def to_nested(self) -> dict[str, Any]:
        """The same values in their sections, as a config file would write them."""
        doc: dict[str, Any] = {}
        for name, section in field_sections().items():
            value = copy.deepcopy(getattr(self, name))
            if section:
                doc.setdefault(section, {})[name] = value
            else:
                doc[name] = value
        return doc

    def validate(self, source: str = "config") -> TrainConfig:
        """Schema, registry and cross-field checks; each error names the dotted field."""
        from .models import BASE_METHODS

        check_document(self.to_nested(), source)
        if self.method not in BASE_METHODS:
            raise ConfigError(f"{source}: config field 'method': {self.method!r} is not one of {sorted(BASE_METHODS)}")
        sections = field_sections()
        for name in BASE_METHODS[self.method].hyperparameters:
            if getattr(self, name) is None:
                raise ConfigError(
                    f"{source}: config field '{sections[name]}.{name}' is null, but method {self.method} needs it"
                )
        if self.batch_size < 2 * self.num_similar:
            raise ConfigError(
                f"{source}: config field 'data.batch_size' {self.batch_size} < 2 * data.num_similar {self.num_similar}"
            )
        from .mllm4wtal import resolve_config

        try:
            resolve_config(self.to_dict())
        except ValueError as exc:  # the plug-in's own checks of its section
            raise ConfigError(f"{source}: {exc}") from exc
        return self


def _assemble(layers: list[tuple[str, dict[str, Any]]], family: str, method: str) -> TrainConfig:
    doc: dict[str, Any] = {}
    for _, layer in layers:
        _merge(doc, layer)
    doc["family"], doc["method"] = family, method
    check_document(doc, "config")
    return TrainConfig(**_flatten(doc)).validate()


def build_config(
    method: str,
    family: str,
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    **explicit: Any,
) -> TrainConfig:
    """Assemble and validate the configuration of one training command.

    ``family`` is the data set's (``ground_truth.json``'s ``family``); ``method`` and
    ``family`` come from the command and the data, so a config layer may not contradict them.
    """
    users = user_layers(config_file, sets, explicit)
    for source, layer in users:
        for name, given in (("method", method), ("family", family)):
            if name in layer and layer[name] != given:
                raise ConfigError(
                    f"{source}: config field '{name}' is {layer[name]!r}, but the run's {name} is {given!r} "
                    f"({'--method' if name == 'method' else 'the data set ground_truth.json'} decides it)"
                )
    return _assemble([*default_layers(family, method), *users], family, method)


def config_from_dict(data: Mapping[str, Any]) -> TrainConfig:
    """Rebuild a config stored in a checkpoint's metadata (flat, or nested; older ones too)."""
    data = dict(data)
    if "dataset_family" in data:  # before the explicit family field
        legacy = data.pop("dataset_family")
        data.setdefault("family", LEGACY_FAMILIES.get(legacy, legacy))
    doc = nest(data, "checkpoint config")
    base_family, base_method = _base_choice()
    family, method = doc.get("family") or base_family, doc.get("method") or base_method
    return _assemble([*default_layers(family, method), ("checkpoint config", doc)], family, method)
