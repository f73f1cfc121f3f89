"""The MLLM4WTAL plug-in modules a run's config may name (``modules: [ksm, csr]``).

Each plug-in class registers itself here with ``@MLLM4WTAL_MODULES.register(name)``, the
same style as base methods, backends and ingest formats; :func:`.objective.resolve_config`
accepts exactly the registered names.  ``dpid`` and ``loc`` are not plug-ins of their own:
DPID is implied by KSM/CSR and the localization head has its own switch (``loc_head``).
"""

from __future__ import annotations

from torch import nn

from wtal_common.registry import Registry

MLLM4WTAL_MODULES: Registry[type[nn.Module]] = Registry("MLLM4WTAL module", field="config field modules")
