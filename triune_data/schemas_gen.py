"""The committed JSON Schemas in `schemas/` are generated from code; this writes them.

Each schema is generated next to what it describes (the sample in `schema`, recipes in `recipe`,
reward items and results in `verifiers.common.wire`, filter recipes in `filters.recipe`); this module only collects them and adds what
needs the registries: the sample schema's `reward.verifier` and a recipe source's
`reward.verifier` enumerate the verifiers shipped in `triune_data.verifiers`. The training side's
schemas are added by `triune_train.schemas_gen` (no `triune_data` module imports `triune_train`).
`triune schemas --out schemas` regenerates the files; tests/test_schemas.py fails when they drift.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from triune_data import atomic


def sample_json_schema() -> dict[str, Any]:
    """`schema.json_schema()` with the registered verifier names as the enum of `reward.verifier`."""
    from triune_data.schema import json_schema
    from triune_data.verifiers import verifier_names

    schema = json_schema()
    schema["$defs"]["RewardSpec"]["properties"]["verifier"]["enum"] = verifier_names(builtin=True)
    return schema


def recipe_json_schema() -> dict[str, Any]:
    """`recipe.recipe_json_schema()` with the registered verifier names as the enum of a source's
    `reward.verifier` (loading a recipe checks the name against the registry itself)."""
    from triune_data.recipe import recipe_json_schema as generic
    from triune_data.verifiers import verifier_names

    schema = generic()
    verifier = schema["$defs"]["RewardOverride"]["properties"]["verifier"]
    verifier["anyOf"] = [{"enum": verifier_names(builtin=True), "type": "string"}, {"type": "null"}]
    return schema


Generators = Mapping[str, Callable[[], dict[str, Any]]]
"""Schema file name -> the function that builds that schema."""


def data_generators() -> dict[str, Callable[[], dict[str, Any]]]:
    """The data and reward schemas, by file name."""
    from triune_data.filters.recipe import filter_recipe_json_schema
    from triune_data.recipe import prompts_json_schema
    from triune_data.verifiers.common.wire import request_json_schema, response_json_schema

    return {
        "sample.schema.json": sample_json_schema,
        "recipe.schema.json": recipe_json_schema,
        "filter-recipe.schema.json": filter_recipe_json_schema,
        "prompts.schema.json": prompts_json_schema,
        "reward_request.schema.json": request_json_schema,
        "reward_response.schema.json": response_json_schema,
    }


def render(name: str, generators: Generators | None = None) -> str:
    """The committed text of schema `name` (from `generators`, the data side's by default)."""
    schema = (data_generators() if generators is None else generators)[name]()
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def schema_names(generators: Generators | None = None) -> list[str]:
    return sorted(data_generators() if generators is None else generators)


def write_schemas(out: str | Path, generators: Generators | None = None) -> list[Path]:
    """Write every schema of `generators` (the data side's by default) into `out`."""
    generators = data_generators() if generators is None else generators
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name in schema_names(generators):
        path = out / name
        atomic.write_bytes(path, render(name, generators).encode("utf-8"))
        written.append(path)
    return written
