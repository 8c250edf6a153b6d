"""Import every module of a package so that its `@register_*` decorators run.

Verifiers, source adapters and filters are registered units: adding one is adding one file.
"""

from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package: str, *, skip: frozenset[str] = frozenset({"base"})) -> None:
    pkg = importlib.import_module(package)
    for info in sorted(pkgutil.iter_modules(pkg.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in skip:
            continue
        importlib.import_module(f"{package}.{info.name}")
