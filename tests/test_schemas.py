"""The committed JSON Schemas are generated from code (`triune schemas --out schemas`); they must not drift."""

from pathlib import Path

import pytest

from triune_data.schemas_gen import render, schema_names
from triune_train.schemas_gen import all_generators

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
ALL = all_generators()


@pytest.mark.parametrize("name", schema_names(ALL))
def test_committed_schema_is_current(name):
    committed = (SCHEMAS / name).read_text(encoding="utf-8")
    assert committed == render(name, ALL), f"schemas/{name} is stale: run `triune schemas --out schemas`"


def test_no_stray_schema_files():
    assert sorted(p.name for p in SCHEMAS.glob("*.json")) == schema_names(ALL)
