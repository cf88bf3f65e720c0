"""Meta-learners (imported as ``metarl.agents``); importing this package registers them.

Each agent module calls :func:`metarl.runs.register_agent` at import time, so
``metarl train NAME`` finds it. An agent module that fails to import is reported with
a warning and skipped, so one broken agent does not break the others.
"""

import importlib
import importlib.util
import warnings

_AGENT_MODULES = ("maml", "metasgd", "rl2")

for _name in _AGENT_MODULES:
    if importlib.util.find_spec(f"{__name__}.{_name}") is None:
        continue  # not written yet
    try:
        importlib.import_module(f"{__name__}.{_name}")
    except Exception as _exc:  # noqa: BLE001 - keep the other agents usable
        warnings.warn(f"metarl: could not import agent module {__name__}.{_name}: {_exc!r}",
                      stacklevel=2)
