"""Meta-learners (imported as ``metarl.agents``); importing this package registers them.

Each agent module calls :func:`metarl.runs.register_agent` at import time, so
``metarl train NAME`` finds it. An agent module that fails to import fails loudly,
naming the module, with the original error chained (a broken ``rl2.py`` must not read as
"unknown agent rl2" later).
"""

import importlib

_AGENT_MODULES = ("maml", "metasgd", "reptile", "cavia", "rl2", "varibad", "baselines")

for _name in _AGENT_MODULES:
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except Exception as _exc:
        raise ImportError(f"metarl: agent module {__name__}.{_name} failed to import: "
                          f"{type(_exc).__name__}: {_exc}") from _exc
