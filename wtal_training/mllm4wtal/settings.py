"""The MLLM4WTAL objective's config resolution: the ``mllm4wtal`` section of a run's config
(defaults: configs/defaults.yaml; shape and ranges: the schema) with the values it leaves to
the run filled in, and the run's ``modules`` turned into branches and switches.

Derived values (null in the section): ``base_lr`` <- ``optimiser.lr``, ``weight_decay`` <-
``optimiser.weight_decay``, ``base_grad_clip`` <- ``optimiser.grad_clip`` and ``k_divisor`` <-
``model.k`` rounded, so a "+modules" run differs from its baseline only in the modules.
Modules: ``loc`` and ``loc_head`` switch the localization head on (it is on unless
``loc_head: false``), ``dpid`` is implied by KSM/CSR; every other name is a registered branch
(:mod:`.branches`).
"""

from __future__ import annotations

from typing import Any

from wtal_common.errors import ConfigError

from .branches import branch_class

SECTION = "mllm4wtal"
HEAD_SWITCHES = ("loc", "loc_head")
SWITCHES = (*HEAD_SWITCHES, "dpid")  # --modules names that are no branch


def resolve_settings(config: Any) -> dict[str, Any]:
    """The resolved settings the objective and its inference model are built from."""
    section = config.sections.get(SECTION)
    if section is None:
        raise ConfigError(f"config: no '{SECTION}' section (the run switches no modules on)")
    cfg = section.to_dict()
    derived = {
        "base_lr": config.optimiser.lr,
        "weight_decay": config.optimiser.weight_decay,
        "base_grad_clip": config.optimiser.grad_clip,
        "k_divisor": max(1, int(round(config.model.k))),
    }
    for key, value in derived.items():
        if cfg[key] is None:
            cfg[key] = value
    modules = list(config.modules)
    if any(m in HEAD_SWITCHES for m in modules):
        cfg["loc_head"] = True
    cfg["modules"] = [m for m in modules if m not in SWITCHES]
    for name in cfg["modules"]:
        branch_class(name)  # registered and wired in, or a ConfigError saying which
    return cfg
