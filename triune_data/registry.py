"""Import every module of a registry package so that its `@register_*` decorators run.

Verifiers, source adapters and filters are registered units: adding one is adding one file.

The discovery rule: every module and subpackage directly inside the package is imported, except
`base` (the contract and the registry itself) and the `common` subpackage (helpers the units
share, which register nothing). Any other module is a unit and is expected to register one.
"""

from __future__ import annotations

import importlib
import pkgutil

NOT_UNITS = frozenset({"base", "common"})


def import_submodules(package: str) -> list[str]:
    """Import the units of `package` (see the module docstring), in name order; returns their names."""
    pkg = importlib.import_module(package)
    names = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name not in NOT_UNITS)
    for name in names:
        importlib.import_module(f"{package}.{name}")
    return names
