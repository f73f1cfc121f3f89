"""The one name -> object registry behind base methods, backends, ingest formats and plug-ins."""

from __future__ import annotations

import pytest

from wtal_common.errors import ConfigError, UserError
from wtal_common.registry import Registry


def make_registry() -> Registry:
    registry: Registry = Registry("widget", field="--widget")

    @registry.register("round")
    class Round:
        pass

    @registry.register("square")
    def square() -> str:
        return "square"

    return registry


def test_register_returns_the_object_and_lookup_finds_it():
    registry = make_registry()
    assert registry["round"].__name__ == "Round"
    assert registry["square"]() == "square"
    assert registry.names() == ("round", "square")  # registration order, not sorted
    assert list(registry) == ["round", "square"] and len(registry) == 2
    assert "round" in registry and "oval" not in registry and ["unhashable"] not in registry


def test_unknown_name_is_a_config_error_listing_the_valid_names():
    registry = make_registry()
    with pytest.raises(ConfigError) as info:
        registry["oval"]
    assert str(info.value) == "--widget: unknown widget 'oval'; choose one of: round, square"
    assert isinstance(info.value, UserError) and isinstance(info.value, ValueError)  # exit 2, ValueError for callers
    with pytest.raises(ConfigError, match=r"unknown widget \['a'\]"):
        registry[["a"]]  # an unhashable value read from a config file


def test_message_without_field_and_empty_registry():
    with pytest.raises(ConfigError, match=r"^unknown gadget 'x'; choose one of: \(none registered\)$"):
        Registry("gadget")["x"]


def test_registering_a_name_twice_is_refused():
    registry = make_registry()
    with pytest.raises(ValueError, match="widget 'round' registered twice"):
        registry.register("round")(object())
    assert registry["round"].__name__ == "Round"  # the first one stays


def test_project_registries_use_it():
    from prior_generation.backends import BACKENDS
    from wtal_data.ingest_formats import INGEST_FORMATS
    from wtal_training.mllm4wtal.plugins import MLLM4WTAL_MODULES
    from wtal_training.models import BASE_METHODS

    assert set(BASE_METHODS.names()) == {"co2net", "delu", "ddgnet", "um", "zhou2023"}
    assert BACKENDS.names() == ("hf", "template", "synthetic", "vllm")
    assert INGEST_FORMATS.names() == ("wtalc", "um", "per-video")
    assert set(MLLM4WTAL_MODULES.names()) == {"ksm", "csr"}
    for registry in (BASE_METHODS, BACKENDS, INGEST_FORMATS, MLLM4WTAL_MODULES):
        assert isinstance(registry, Registry)
        with pytest.raises(ConfigError, match="choose one of"):
            registry["no-such-name"]


def test_selection_by_name_reports_the_valid_names():
    from types import SimpleNamespace

    from prior_generation.backends import make_backend
    from prior_generation.backends.template import TemplateBackend
    from wtal_training.models import build_base_method

    with pytest.raises(
        ConfigError,
        match=r"^config 'method': unknown base method 'co3net'; choose one of: co2net, delu, ddgnet, um, zhou2023$",
    ):
        build_base_method(SimpleNamespace(method="co3net"), 16, 3)
    assert isinstance(make_backend("template"), TemplateBackend)
    with pytest.raises(ConfigError, match=r"^--backend: unknown backend 'gpt'; choose one of: hf, template, synthetic"):
        make_backend("gpt")
