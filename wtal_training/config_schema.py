"""The training config's schema (``configs/train_config.schema.yaml``): which sections and
fields exist, where a field lives, and the check of a document against it, with errors that
name the dotted field and where it came from.  The files are read through functions keyed by
their paths (:data:`SCHEMA_FILE`), so a test can point the module at an edited copy.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

from wtal_common.errors import ConfigError

CONFIG_DIR = Path(__file__).with_name("configs")
SCHEMA_FILE = CONFIG_DIR / "train_config.schema.yaml"
TOP_FIELDS = ("method", "family", "modules")


@functools.cache
def read_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@functools.cache
def validator(path: Path) -> Draft202012Validator:
    schema = read_yaml(path)
    Draft202012Validator.check_schema(schema)
    return Draft202012Validator(schema)


def schema() -> dict[str, Any]:
    return validator(SCHEMA_FILE).schema


def sections_of_kind(kind: str) -> list[str]:
    """Section names of one kind: ``shared`` (every run), ``method`` or ``objective``."""
    out = []
    for name, node in schema()["properties"].items():
        if name in TOP_FIELDS:
            continue
        if node.get("x-section", "shared") == kind:
            out.append(name)
    return out


def method_names() -> list[str]:
    """Base methods the config knows (each has a section in the schema, maybe empty)."""
    return sections_of_kind("method")


def field_homes(method: str) -> dict[str, str]:
    """Bare field name -> its section, for the shared sections and ``method``'s own."""
    homes: dict[str, str] = {}
    for section in [*sections_of_kind("shared"), method]:
        for name in section_fields(section):
            homes[name] = section
    return homes


def section_fields(section: str) -> list[str]:
    node = schema()["properties"].get(section) or {}
    return list(node.get("properties") or {})


def schema_node(path: list[str]) -> dict[str, Any] | None:
    """The schema node of a dotted path (``$ref`` resolved), or None when there is none."""
    node: dict[str, Any] = schema()
    for key in path:
        node = (node.get("properties") or {}).get(key)
        if node is None:
            return None
    ref = node.get("$ref", "")
    if ref.startswith("#/$defs/"):
        node = {**schema()["$defs"][ref.split("/")[-1]], **{k: v for k, v in node.items() if k != "$ref"}}
    return node


def dotted(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path)


def describe(error: Any, source: str, method: str | None) -> str:
    path = list(error.absolute_path)
    if error.validator == "additionalProperties":
        known = set(error.schema.get("properties", {}))
        unknown = sorted(set(error.instance) - known)
        homes = field_homes(method) if method in method_names() else {}
        hints = [f" (it belongs in '{homes[k]}.{k}')" if homes.get(k) else "" for k in unknown]
        names = ", ".join(f"'{dotted([*path, k])}'{hint}" for k, hint in zip(unknown, hints))
        return f"{source}: unknown config field {names}"
    where = dotted(path) or "(top level)"
    return f"{source}: config field '{where}': {error.message}"


def check_document(doc: Mapping[str, Any], source: str, method: str | None = None) -> None:
    """Schema check of a (partial) document; the first errors, each with its dotted path."""
    errors = sorted(validator(SCHEMA_FILE).iter_errors(doc), key=lambda e: [str(p) for p in e.absolute_path])
    if errors:
        raise ConfigError("; ".join(describe(e, source, method) for e in errors[:3]))
