"""The MLLM4WTAL plug-in modules a run's config may name (``modules: [ksm, csr]``).

Each branch class registers itself here with ``@MLLM4WTAL_MODULES.register(name)``, the same
style as base methods, backends and ingest formats, and takes a role of
:mod:`.branches` (match or reconstruction): the objective builds and trains exactly the
switched-on registered branches, and refuses a registered module without a role.  ``dpid``
and ``loc`` are not branches: DPID is implied by KSM/CSR and the localization head has its own
switch (``loc_head``; :mod:`.settings`).
"""

from __future__ import annotations

from torch import nn

from wtal_common.registry import Registry

MLLM4WTAL_MODULES: Registry[type[nn.Module]] = Registry("MLLM4WTAL module", field="config field modules")
