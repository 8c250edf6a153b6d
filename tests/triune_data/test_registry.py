"""The discovery rule of the registries: every module but `base` and `common` is a unit and registers."""

import pkgutil

import pytest

import triune_data.sources
import triune_data.verifiers
from triune_data.registry import NOT_UNITS, import_submodules
from triune_data.sources.base import get_source, source_names
from triune_data.verifiers.base import get_verifier, verifier_names


@pytest.mark.parametrize("package", [triune_data.verifiers, triune_data.sources])
def test_helpers_live_in_common_and_are_not_private(package):
    names = {m.name for m in pkgutil.iter_modules(package.__path__)}
    assert names >= NOT_UNITS
    assert not [n for n in names if n.startswith("_")], "shared helpers belong in `common/`"
    common = {m.name for m in pkgutil.iter_modules([f"{package.__path__[0]}/common"])}
    assert common and not [n for n in common if n.startswith("_")]


def test_every_verifier_module_registers_a_verifier():
    units = import_submodules("triune_data.verifiers")
    modules = {get_verifier(n).fn.__module__ for n in verifier_names(builtin=True)}
    assert {f"triune_data.verifiers.{u}" for u in units} == modules


def test_every_source_module_registers_an_adapter():
    units = import_submodules("triune_data.sources")
    modules = {get_source(n).read.__module__ for n in source_names()}
    assert {f"triune_data.sources.{u}" for u in units} == modules
