"""Training configuration: one document of sections, validated against one schema.

A config document has the shared sections every run has -- ``data`` (batch sampling),
``model`` (the hyperparameters the CO2-Net family shares), ``optimiser``, ``test`` (inference,
proposals, evaluation) and ``output`` (logging) -- plus one section named after each base
method holding the settings only that method has (``delu: {alpha_edl: ...}``; a run keeps its
own method's) and one per plug-in objective (``mllm4wtal: {...}``; kept when the run switches
modules on), and ``method``, ``family`` and ``modules`` at the top.  Its shape and types are
``configs/train_config.schema.yaml``; every default value, the plug-ins' included, is in
``configs/defaults.yaml`` and nowhere else (not in this module, not in the models).  In code a
:class:`TrainConfig` holds the sections (``config.optimiser.lr``, ``config.own.alpha_edl`` for
the run's method, ``config.sections["mllm4wtal"]``).

Precedence, lowest first: the layers of ``defaults.yaml`` for the run's method and data-set
family (see that file), ``--config FILE.yaml``, ``--set key=value`` (in order), explicit CLI
flags (``--iterations``, ``--modules``).  A field of a shared section or of the run's method's
section may also be given by its bare name (``lr``, ``alpha_edl``): the names are unique in
that scope.  Each layer is validated against the schema as it is read, and the merged result
again, before any data loads: an unknown or ill-typed field is a :class:`ConfigError` (exit 2)
naming the dotted field and where it came from.  Older spellings (format 1: one flat list of
every method's fields) are moved to their place by :mod:`.config_legacy`.
"""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from wtal_common.errors import ConfigError

from . import config_legacy, config_schema
from .config_schema import (
    CONFIG_DIR,
    TOP_FIELDS,
    check_document,
    dotted,
    field_homes,
    method_names,
    read_yaml,
    schema,
    schema_node,
    section_fields,
    sections_of_kind,
)

DEFAULTS_FILE = CONFIG_DIR / "defaults.yaml"
CONFIG_FORMAT = 2  # 1: the flat form of checkpoints before issue 23 (config_legacy)

log = logging.getLogger("wtal_training")

__all__ = [
    "ConfigError",
    "Section",
    "TrainConfig",
    "build_config",
    "config_from_dict",
    "default_config",
    "user_layers",
]


# -- documents: placing fields, merging, validation ----------------------------------------
def place_fields(doc: Mapping[str, Any], method: str, source: str, *, stored: bool = False) -> dict[str, Any]:
    """Move bare field names (``lr: 1.0e-4``) into their sections (``optimiser: {lr: ...}``)
    and older spellings to where the field lives now (:func:`.config_legacy.place`;
    ``stored``: a checkpoint's config, converted silently)."""
    if not isinstance(doc, Mapping):
        raise ConfigError(f"{source}: a config must be a mapping of fields, got {type(doc).__name__}")
    homes = field_homes(method)
    sections = {name: section_fields(name) for name in schema()["properties"] if name not in TOP_FIELDS}
    methods = sections_of_kind("method")
    out: dict[str, Any] = {}

    def put(section: str, name: str, value: Any, spelled: str) -> None:
        target = out.setdefault(section, {})
        if not isinstance(target, dict):  # e.g. "data: 3": leave it for the schema to name
            return
        if name in target:
            raise ConfigError(f"{source}: config field '{section}.{name}' is given twice (as '{spelled}' too)")
        target[name] = copy.deepcopy(value)

    for key, value in doc.items():
        if key in TOP_FIELDS or (key in sections and not isinstance(value, Mapping)):
            out[key] = copy.deepcopy(value)  # a top-level field, or "data: 3" for the schema to name
        elif key in sections:
            for name, item in value.items():
                home = key
                if name not in sections[key]:
                    home = config_legacy.place(key, name, item, method, homes, sections, methods, source, stored)
                if home == config_legacy.KEEP:
                    home = key
                if home != config_legacy.DROP:
                    put(home, name, item, f"{key}.{name}")
        elif key in homes:
            put(homes[key], key, value, key)
        else:
            home = config_legacy.place(None, key, value, method, homes, sections, methods, source, stored)
            if home == config_legacy.KEEP:
                out[key] = copy.deepcopy(value)  # unknown: the schema names it
            elif home != config_legacy.DROP:
                put(home, key, value, key)
    return out


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: mappings key by key, anything else (lists included) replaced."""
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)
    return base


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


def _coerce(text: str, node: dict[str, Any], where: str) -> Any:
    """Turn a ``--set`` string into the type the schema asks for (the schema then checks it)."""
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
    return text if types else _number(text)


def parse_set(item: str, method: str) -> dict[str, Any]:
    """``--set optimiser.lr=1e-4`` (or the bare ``lr=1e-4``) -> one override layer."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value (e.g. optimiser.lr=1e-4)")
    key, text = item.split("=", 1)
    path = [p.strip() for p in key.strip().split(".")]
    if not all(path):
        raise ConfigError(f"--set {item!r}: empty name in '{key}'")
    homes = field_homes(method)
    if len(path) == 1 and path[0] in homes:
        path = [homes[path[0]], path[0]]
    elif len(path) == 2 and schema_node(path) is None:
        moved = place_fields({path[0]: {path[1]: text}}, method, f"--set {item}")
        if len(moved) == 1 and next(iter(moved)) != path[0]:
            path = [next(iter(moved)), path[1]]
    where = dotted(path)
    node = schema_node(path)
    if node is None:
        home = homes.get(path[-1])
        hint = f" (it belongs in '{home}.{path[-1]}')" if home else ""
        raise ConfigError(f"--set {item}: unknown config field '{where}'{hint}")
    try:
        value = _coerce(text, node, where)
    except ConfigError as exc:
        raise ConfigError(f"--set {item}: {exc}") from exc
    layer: dict[str, Any] = {}
    target = layer
    for part in path[:-1]:
        target = target.setdefault(part, {})
    target[path[-1]] = value
    return layer


# -- layers -----------------------------------------------------------------------------------
def default_layers(family: str, method: str) -> list[tuple[str, dict[str, Any]]]:
    """The layers of ``defaults.yaml`` that apply to (family, method), lowest first."""
    doc = read_yaml(DEFAULTS_FILE)
    families = doc.get("families", {})
    if family not in families:
        raise ConfigError(f"config field 'family': {family!r} is not one of {sorted(families)}")
    if method not in method_names():
        raise ConfigError(f"config field 'method': {method!r} is not one of {sorted(method_names())}")
    layers = [
        (f"{DEFAULTS_FILE}[base]", doc.get("base") or {}),
        (f"{DEFAULTS_FILE}[methods.{method}]", (doc.get("methods") or {}).get(method) or {}),
        (f"{DEFAULTS_FILE}[families.{family}.common]", families[family].get("common") or {}),
        (f"{DEFAULTS_FILE}[families.{family}.{method}]", families[family].get(method) or {}),
    ]
    for source, layer in layers:
        check_document(layer, source, method)
    return [(source, copy.deepcopy(layer)) for source, layer in layers]


def user_layers(
    config_file: str | Path | None,
    sets: Iterable[str] | None,
    explicit: Mapping[str, Any] | None = None,
    method: str | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """The user's layers (--config file, each --set, explicit flags), each validated.

    ``method``: the run's (bare names of its own section are placed there); the defaults'
    ``base`` method when None."""
    method = method or _base_choice()[1]
    if method not in method_names():
        raise ConfigError(f"--method: {method!r} is not one of {sorted(method_names())}")
    layers: list[tuple[str, dict[str, Any]]] = []
    if config_file:
        path = Path(config_file)
        if not path.is_file():
            raise ConfigError(f"--config {path}: file not found")
        try:
            loaded = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"--config {path}: not valid YAML ({exc})") from exc
        layers.append((str(path), place_fields(loaded, method, str(path))))
    for item in sets or []:
        layers.append((f"--set {item}", parse_set(item, method)))
    given = {k: v for k, v in (explicit or {}).items() if v is not None}
    if given:
        layers.append(("command line", place_fields(given, method, "command line")))
    for source, layer in layers:
        check_document(layer, source, method)
    return layers


def _base_choice() -> tuple[str, str]:
    base = read_yaml(DEFAULTS_FILE)["base"]
    return base["family"], base["method"]


# -- the object the code reads ---------------------------------------------------------------
class Section(Mapping[str, Any]):
    """One validated config section, read-only: by attribute (``config.optimiser.lr``) or key."""

    def __init__(self, name: str, values: Mapping[str, Any]) -> None:
        object.__setattr__(self, "_name", name)
        object.__setattr__(self, "_values", copy.deepcopy(dict(values)))

    def __getattr__(self, key: str) -> Any:
        try:
            return self._values[key]
        except KeyError:
            raise AttributeError(f"config section '{self._name}' has no field '{key}'") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise AttributeError(f"config section '{self._name}' is read-only (build a new config instead)")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return dict(self) == dict(other) if isinstance(other, Mapping) else NotImplemented

    def __repr__(self) -> str:
        return f"Section({self._name!r}, {self._values!r})"

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(self._values)


@dataclass(frozen=True)
class TrainConfig:
    """A validated config: the top-level fields and every section the run has, by name."""

    method: str
    family: str
    modules: list[str]
    sections: dict[str, Section] = field(default_factory=dict)

    @property
    def data(self) -> Section:
        return self.sections["data"]

    @property
    def model(self) -> Section:
        return self.sections["model"]

    @property
    def optimiser(self) -> Section:
        return self.sections["optimiser"]

    @property
    def test(self) -> Section:
        return self.sections["test"]

    @property
    def output(self) -> Section:
        return self.sections["output"]

    @property
    def own(self) -> Section:
        """The run's method's own section (empty for a method without settings of its own)."""
        return self.sections.get(self.method) or Section(self.method, {})

    def to_dict(self) -> dict[str, Any]:
        """The document (format 2): what checkpoints, run.json and resume states store."""
        return {
            "method": self.method,
            "family": self.family,
            "modules": list(self.modules),
            **{name: section.to_dict() for name, section in self.sections.items()},
        }

    def updated(self, layer: Mapping[str, Any], source: str = "update") -> TrainConfig:
        """A new config with ``layer`` (a partial document, bare names allowed) merged in."""
        placed = place_fields(layer, self.method, source)
        check_document(placed, source, self.method)
        return assemble(_merge(self.to_dict(), placed), self.family, self.method)


def assemble(doc: dict[str, Any], family: str, method: str) -> TrainConfig:
    """The merged document -> a :class:`TrainConfig`: checked against the schema, every field
    of the run's sections given, other methods' sections dropped (with a warning), objective
    sections kept when modules are on."""
    doc = {**doc, "family": family, "method": method}
    check_document(doc, "config", method)
    modules = list(doc.get("modules") or [])
    kept: dict[str, Section] = {}
    for name in sections_of_kind("shared") + [method] + (sections_of_kind("objective") if modules else []):
        values = doc.get(name) or {}
        missing = [f"{name}.{f}" for f in section_fields(name) if f not in values]
        if missing:
            raise ConfigError(f"config: no value for config field(s) {', '.join(missing)} (configs/defaults.yaml)")
        kept[name] = Section(name, {key: _typed(name, key, value) for key, value in values.items()})
    for name in sections_of_kind("method"):
        if name != method and doc.get(name):
            log.warning("config section '%s' is not used: the run's method is %s", name, method)
    config = TrainConfig(method, family, modules, kept)
    data = config.data
    if data.batch_size < 2 * data.num_similar:
        raise ConfigError(
            f"config: config field 'data.batch_size' {data.batch_size} < 2 * data.num_similar {data.num_similar}"
        )
    return config


def _typed(section: str, name: str, value: Any) -> Any:
    """An integer field's value as an int: JSON Schema counts 100.0 as an integer, range() does not."""
    node = schema_node([section, name]) or {}
    types = node.get("type", [])
    if "integer" in ([types] if isinstance(types, str) else types) and isinstance(value, float):
        return int(value)
    return value


@functools.cache
def _merged_defaults(family: str, method: str, defaults: Path, schema: Path) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    for _, layer in default_layers(family, method):
        _merge(doc, layer)
    return doc


def default_config(family: str | None = None, method: str | None = None, modules: Iterable[str] = ()) -> TrainConfig:
    """The defaults of (family, method); the base family and method of defaults.yaml when None.
    With ``modules``, the plug-in objectives' sections are in too."""
    base_family, base_method = _base_choice()
    family, method = family or base_family, method or base_method
    doc = copy.deepcopy(_merged_defaults(family, method, DEFAULTS_FILE, config_schema.SCHEMA_FILE))
    doc["modules"] = list(modules)
    return assemble(doc, family, method)


def build_config(
    method: str,
    family: str,
    config_file: str | Path | None = None,
    sets: list[str] | None = None,
    *,
    layers: list[tuple[str, dict[str, Any]]] | None = None,
    **explicit: Any,
) -> TrainConfig:
    """Assemble and validate the configuration of one training command.

    ``family`` is the data set's (``ground_truth.json``'s ``family``); ``method`` and
    ``family`` come from the command and the data, so a config layer may not contradict them.
    ``layers``: the user's layers already read by :func:`user_layers` (then ``config_file``,
    ``sets`` and ``explicit`` are not read again).
    """
    users = layers if layers is not None else user_layers(config_file, sets, explicit, method)
    for source, layer in users:
        for name, given in (("method", method), ("family", family)):
            if name in layer and layer[name] != given:
                raise ConfigError(
                    f"{source}: config field '{name}' is {layer[name]!r}, but the run's {name} is {given!r} "
                    f"({'--method' if name == 'method' else 'the data set ground_truth.json'} decides it)"
                )
    doc: dict[str, Any] = {}
    for _, layer in [*default_layers(family, method), *users]:
        _merge(doc, layer)
    return assemble(doc, family, method)


def config_from_dict(data: Mapping[str, Any], config_format: int = CONFIG_FORMAT) -> TrainConfig:
    """Rebuild a config stored in a checkpoint's metadata or a run record: format 2 (this
    module's document), or format 1 (flat, every method's fields; :mod:`.config_legacy`)."""
    data = dict(data)
    if config_format < CONFIG_FORMAT:
        data = config_legacy.upgrade(data)
    base_family, base_method = _base_choice()
    family, method = data.get("family") or base_family, data.get("method") or base_method
    if method not in method_names():
        raise ConfigError(f"config field 'method': {method!r} is not one of {sorted(method_names())}")
    placed = place_fields(data, method, "stored config", stored=config_format < CONFIG_FORMAT)
    check_document(placed, "stored config", method)
    doc: dict[str, Any] = {}
    for _, layer in [*default_layers(family, method), ("stored config", placed)]:
        _merge(doc, layer)
    return assemble(doc, family, method)
